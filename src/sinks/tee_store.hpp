#pragma once
// Several sinks as one store (processor.sinks with more than one name): a batch is done only once
// every sink acknowledged it; queries and cost windows come from the primary, the first sink in
// the list that serves queries (SinkRegistry::build).

#include <memory>
#include <vector>

#include "telemetryd/sink.hpp"

namespace telemetryd::sinks {

/// Writes each batch to `primary` (queried) and then `secondary` (written only; a TeeStore itself
/// for three sinks or more). A batch the primary acknowledged is not written to it again when the
/// same batch is retried because the secondary failed, so the primary does not count the retry
/// as duplicates.
class TeeStore final : public Store {
 public:
  TeeStore(std::unique_ptr<Store> primary, std::unique_ptr<Store> secondary);
  Result<bool> prepare(const events::GpuCatalog& catalog) override;
  Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const UsageQuery& query) override;
  Result<std::string> gpu_series_json(const query::SeriesQuery& query) override;
  Result<std::string> devices_json() override;
  bool supports_queries() const override { return primary_->supports_queries(); }
  // The latest view is the primary's; a write that moved it moves this store's generation.
  bool keeps_latest_view() const override { return primary_->keeps_latest_view(); }
  Result<std::vector<query::LatestSample>> latest_samples() override {
    return primary_->latest_samples();
  }
  // So do the usage rollups: the primary's write() marks them, its roll-up keeps them.
  bool keeps_usage_rollups() const override { return primary_->keeps_usage_rollups(); }
  Result<std::size_t> roll_up_usage(std::int64_t marked_before_ms, std::size_t limit) override {
    return primary_->roll_up_usage(marked_before_ms, limit);
  }
  Result<std::vector<query::UsageRollupRow>> usage_minutes(std::int64_t from_ms,
                                                           std::int64_t to_ms) override {
    return primary_->usage_minutes(from_ms, to_ms);
  }
  Result<std::vector<query::UsageRollupRow>> usage_hours(std::int64_t from_ms,
                                                         std::int64_t to_ms) override {
    return primary_->usage_hours(from_ms, to_ms);
  }
  Result<std::vector<std::int64_t>> marked_usage_minutes() override {
    return primary_->marked_usage_minutes();
  }
  // Costs live beside the queried documents, in the primary.
  bool supports_costs() const override { return primary_->supports_costs(); }
  Result<bool> mark_cost_windows(const std::vector<std::int64_t>& starts_ms,
                                 std::int64_t marked_at_ms, std::int64_t nonce) override {
    return primary_->mark_cost_windows(starts_ms, marked_at_ms, nonce);
  }
  Result<std::vector<CostWindowMark>> settled_cost_windows(std::int64_t marked_before_ms,
                                                           std::int64_t now_ms,
                                                           std::size_t limit) override {
    return primary_->settled_cost_windows(marked_before_ms, now_ms, limit);
  }
  Result<bool> claim_cost_window(CostWindowMark& mark, std::int64_t token, std::int64_t now_ms,
                                 std::int64_t until_ms) override {
    return primary_->claim_cost_window(mark, token, now_ms, until_ms);
  }
  Result<cost::WindowInputs> cost_window_inputs(std::int64_t start_ms, std::int64_t end_ms,
                                                std::int64_t lookback_ms) override {
    return primary_->cost_window_inputs(start_ms, end_ms, lookback_ms);
  }
  Result<bool> write_costs(const std::vector<cost::UsageCost>& costs,
                           const std::optional<CostWindowMark>& clear) override {
    return primary_->write_costs(costs, clear);
  }
  Result<bool> upsert_placements(const std::vector<cost::PlacementRow>& placements) override {
    return primary_->upsert_placements(placements);
  }
  Result<std::vector<std::int64_t>> usage_window_starts(std::int64_t from_ms, std::int64_t to_ms,
                                                        std::int64_t window_ms) override {
    return primary_->usage_window_starts(from_ms, to_ms, window_ms);
  }

 private:
  std::unique_ptr<Store> primary_;
  std::unique_ptr<Store> secondary_;
  // The primary's outcome of the last batch it acknowledged, by the batch's event ids.
  std::uint64_t acknowledged_fingerprint_ = 0;
  std::optional<WriteOutcome> acknowledged_;
};

}  // namespace telemetryd::sinks
