#pragma once
// Prices cost windows from what is stored (docs/cost.md): every processor stores its events
// and marks their windows; once a window has had no new event for `settle`, whichever
// processor finds it first reads the window back, prices it (cost::price_window) and writes
// the cost block onto its usage documents. The result depends only on what is stored, so it is
// the same whichever processor consumed which partition, and the same after a restart.
// Spend reaches /metrics here, once per document (a re-pricing adds only its increase).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cost/cost_model.hpp"
#include "cost/price_catalog.hpp"
#include "processor/tenant_labels.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/result.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::processor {

struct PricerSettings {
  cost::Settings model;
  std::chrono::milliseconds settle{10000};
  bool key_by_deployment = false;  // processor_cost_per_token_usd's label: deployment or model
  std::size_t tenant_series = 20;
  std::vector<std::string> tenants;
  std::size_t windows_per_round = 16;
  std::size_t minutes_per_round = 64;  // usage minutes rolled up per round
};

struct RepriceReport {
  std::size_t windows = 0;
  std::size_t documents = 0;
  std::size_t changed = 0;
};

struct PricedWindow {
  std::size_t documents = 0;
  std::size_t changed = 0;
};

class CostPricer {
 public:
  CostPricer(PricerSettings settings, Store& store, cost::PriceCatalog prices,
             metrics::Registry& metrics, TenantLabels& tenants);
  ~CostPricer();
  CostPricer(const CostPricer&) = delete;
  CostPricer& operator=(const CostPricer&) = delete;

  /// Prices the windows settled at `now_ms` (up to windows_per_round); how many it priced.
  Result<std::size_t> run_once(std::int64_t now_ms);
  /// Rolls up the usage minutes settled at `now_ms` (up to minutes_per_round); how many.
  Result<std::size_t> roll_up_once(std::int64_t now_ms);
  /// Re-prices every window with usage in [from, to): `telemetryd reprice`. With dry_run nothing
  /// is written; on_change sees each document whose cost changes (its stored and new cost).
  Result<RepriceReport> reprice(
      std::int64_t from_ms, std::int64_t to_ms, bool dry_run,
      const std::function<void(const cost::UsageRow&, const cost::UsageCost&)>& on_change);

  /// Runs run_once on a thread of its own until stop().
  void start();
  void stop();

  const PricerSettings& settings() const { return settings_; }

 private:
  Result<PricedWindow> price(
      std::int64_t start_ms, const std::optional<CostWindowMark>& mark, bool dry_run,
      const std::function<void(const cost::UsageRow&, const cost::UsageCost&)>& on_change);
  void count_spend(const std::vector<const cost::UsageRow*>& rows,
                   const std::vector<const cost::UsageCost*>& priced);
  void note_unpriced(const cost::WindowResult& result);
  void run();
  bool stop_requested();

  PricerSettings settings_;
  Store& store_;
  cost::PriceCatalog prices_;
  TenantLabels& tenants_;

  metrics::Family<metrics::Counter>& model_cost_;
  metrics::Family<metrics::Counter>& tenant_cost_;
  metrics::Family<metrics::Gauge>& cost_per_token_;
  metrics::Family<metrics::Gauge>& unpriced_gpus_;
  metrics::Counter& windows_priced_;
  metrics::Counter& minutes_rolled_;
  metrics::Counter& rollup_failures_;
  metrics::Counter& failures_;
  std::map<std::string, std::set<std::string>> unpriced_;  // model -> GPU uuids

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace telemetryd::processor
