#pragma once
// The embedded `all` role's store: one SQLite file with the same documents the processor keeps
// in MongoDB (the same JSON comes back from the API), idempotent by event id, plus a
// dead_letters table standing in for the dead-letter topics.

#include <sqlite3.h>

#include <mutex>
#include <string>

#include "processor/dead_letters.hpp"
#include "processor/store.hpp"

namespace telemetryd::sqlite {

class SqliteStore final : public processor::Store, public processor::DeadLetterSink {
 public:
  /// Opens (creating) the file; throws StartupError when it cannot.
  explicit SqliteStore(const std::string& path);
  ~SqliteStore() override;

  Result<bool> prepare(const processor::GpuCatalog& catalog) override;
  Result<processor::WriteOutcome> write(const std::vector<processor::StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const processor::GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const processor::UsageQuery& query) override;
  Result<std::string> gpu_series_json(const processor::SeriesQuery& query) override;
  Result<std::string> devices_json() override;
  Result<bool> mark_cost_windows(const std::vector<std::int64_t>& starts_ms,
                                 std::int64_t marked_at_ms, std::int64_t nonce) override;
  Result<std::vector<processor::CostWindowMark>> settled_cost_windows(std::int64_t marked_before_ms,
                                                                      std::int64_t now_ms,
                                                                      std::size_t limit) override;
  Result<bool> claim_cost_window(processor::CostWindowMark& mark, std::int64_t token,
                                 std::int64_t now_ms, std::int64_t until_ms) override;
  Result<cost::WindowInputs> cost_window_inputs(std::int64_t start_ms, std::int64_t end_ms,
                                                std::int64_t lookback_ms) override;
  Result<bool> write_costs(const std::vector<cost::UsageCost>& costs,
                           const std::optional<processor::CostWindowMark>& clear) override;
  Result<bool> upsert_placements(const std::vector<cost::PlacementRow>& placements) override;
  Result<std::vector<std::int64_t>> usage_window_starts(std::int64_t from_ms, std::int64_t to_ms,
                                                        std::int64_t window_ms) override;

  bool send(const processor::DeadLetter& letter) override;
  bool flush(std::chrono::milliseconds) override { return true; }

 private:
  Result<bool> exec(const char* sql);
  std::string error_message() const;

  std::string path_;
  sqlite3* db_ = nullptr;
  // One connection in serialized mode: writes (processor thread) and queries (HTTP pool) take
  // turns; the embedded role's volume does not need more.
  std::mutex mutex_;
};

}  // namespace telemetryd::sqlite
