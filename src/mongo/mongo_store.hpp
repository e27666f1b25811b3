#pragma once
// The processor's MongoDB store (libmongoc, pooled): gpu_metrics, token_usage and gpus with the
// event id as _id, unordered bulk inserts in which a duplicate key counts as already stored.
// Cost (docs/cost.md): cost_windows holds the marks of windows to price ({_id: window start ms,
// marked_at, nonce}, and claim_token and claim_until once a pricer claimed one), placements the
// learned deployment -> GPU/host targets, and the priced block is written back as `cost` on each
// token_usage document.
// Usage rollups (mongo_usage_rollup.hpp): usage_minutes holds the per-minute sums /v1/usage
// reads, usage_marks the minutes changed since they were last rolled up.

#include <mongoc/mongoc.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mongo/mongo_uri.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::mongo {

struct MongoStoreSettings {
  MongoConnection connection;  // connection_from(config): URI, TLS, credentials
  std::string database;
  std::string write_concern = "majority";  // or "1"
  std::int64_t ttl_days = 0;               // 0: keep forever
};

class MongoStore final : public Store {
 public:
  /// Throws StartupError for an invalid URI (never quoting it).
  explicit MongoStore(MongoStoreSettings settings);
  ~MongoStore() override;

  Result<bool> prepare(const events::GpuCatalog& catalog) override;
  Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const UsageQuery& query) override;
  Result<std::string> gpu_series_json(const query::SeriesQuery& query) override;
  Result<std::string> devices_json() override;
  bool keeps_latest_view() const override { return true; }
  Result<std::vector<query::LatestSample>> latest_samples() override;

  bool keeps_usage_rollups() const override { return true; }
  Result<std::size_t> roll_up_usage(std::int64_t marked_before_ms, std::size_t limit) override;
  Result<std::vector<query::UsageRollupRow>> usage_minutes(std::int64_t from_ms,
                                                           std::int64_t to_ms) override;
  Result<std::vector<query::UsageRollupRow>> usage_hours(std::int64_t from_ms,
                                                         std::int64_t to_ms) override;
  Result<std::vector<std::int64_t>> marked_usage_minutes() override;

  Result<bool> mark_cost_windows(const std::vector<std::int64_t>& starts_ms,
                                 std::int64_t marked_at_ms, std::int64_t nonce) override;
  Result<std::vector<CostWindowMark>> settled_cost_windows(std::int64_t marked_before_ms,
                                                           std::int64_t now_ms,
                                                           std::size_t limit) override;
  Result<bool> claim_cost_window(CostWindowMark& mark, std::int64_t token, std::int64_t now_ms,
                                 std::int64_t until_ms) override;
  Result<cost::WindowInputs> cost_window_inputs(std::int64_t start_ms, std::int64_t end_ms,
                                                std::int64_t lookback_ms) override;
  Result<bool> write_costs(const std::vector<cost::UsageCost>& costs,
                           const std::optional<CostWindowMark>& clear) override;
  Result<bool> upsert_placements(const std::vector<cost::PlacementRow>& placements) override;
  Result<std::vector<std::int64_t>> usage_window_starts(std::int64_t from_ms, std::int64_t to_ms,
                                                        std::int64_t window_ms) override;

 private:
  class Client;  // a pooled client, returned on scope exit
  Result<bool> ensure_indexes(mongoc_client_t* client);

  MongoStoreSettings settings_;
  mongoc_client_pool_t* pool_ = nullptr;
};

}  // namespace telemetryd::mongo
