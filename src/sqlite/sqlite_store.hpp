#pragma once
// The embedded `all` role's store: one SQLite file with the same documents the processor keeps
// in MongoDB (the same JSON comes back from the API), idempotent by event id, plus a
// dead_letters table standing in for the dead-letter topics.

#include <sqlite3.h>

#include <chrono>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "telemetryd/sink.hpp"

namespace telemetryd::sqlite {

// What retention keeps (README, the `all` role): an age, a size bound, and what neither may
// delete. Each delete is one statement of at most batch_rows rows, its own transaction, so the
// writer waits for one batch at most.
struct RetentionSettings {
  std::int64_t max_age_ms = 0;  // 0: keep forever
  std::int64_t max_bytes = 0;   // pages in use; 0: no bound
  // The size bound never deletes newer data, nor inside a cost window not yet priced (nor the
  // GPU samples the pricer reads before it: lookback_ms).
  std::int64_t keep_recent_ms = 3600000;
  std::int64_t lookback_ms = 60000;
  // A placement last seen before a cutoff still serves windows this long after it.
  std::int64_t placement_ttl_ms = 86400000;
  std::int64_t batch_rows = 1000;
  // Between statements, so a waiting writer gets the mutex (std::mutex is not fair).
  std::chrono::milliseconds pause{5};
  int max_batches = 200;    // per pass; the next pass goes on (RetentionPass::more)
  int vacuum_pages = 1024;  // pages given back per PRAGMA incremental_vacuum
};

struct RetentionPass {
  // Rows deleted, per table.
  std::int64_t gpu_metrics = 0;
  std::int64_t token_usage = 0;
  std::int64_t cost_windows = 0;
  std::int64_t placements = 0;
  std::int64_t cutoff_ms = 0;         // events before this are gone; 0 when nothing was due
  std::int64_t file_bytes = 0;        // page_count * page_size, after the pass
  std::int64_t free_bytes = 0;        // of which on the free list (reused before the file grows)
  bool over_size = false;             // still above max_bytes with only protected data left
  bool more = false;                  // stopped at max_batches with work left
  std::vector<double> batch_seconds;  // how long each statement held the database
};

class SqliteStore final : public Store, public DeadLetterSink {
 public:
  /// Opens (creating) the file; throws StartupError when it cannot.
  explicit SqliteStore(const std::string& path);
  ~SqliteStore() override;

  Result<bool> prepare(const events::GpuCatalog& catalog) override;
  Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const UsageQuery& query) override;
  Result<std::string> gpu_series_json(const query::SeriesQuery& query) override;
  Result<std::string> devices_json() override;
  bool keeps_latest_view() const override { return true; }
  bool keeps_usage_rollups() const override { return true; }
  Result<std::size_t> roll_up_usage(std::int64_t marked_before_ms, std::size_t limit) override;
  Result<std::vector<query::UsageRollupRow>> usage_minutes(std::int64_t from_ms,
                                                           std::int64_t to_ms) override;
  Result<std::vector<query::UsageRollupRow>> usage_hours(std::int64_t from_ms,
                                                         std::int64_t to_ms) override;
  Result<std::vector<std::int64_t>> marked_usage_minutes() override;
  Result<std::vector<query::LatestSample>> latest_samples() override;
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

  bool send(const DeadLetter& letter) override;
  bool flush(std::chrono::milliseconds) override { return true; }

  /// One retention pass at now_ms (sqlite_retention.cpp): the age, then the size bound, then
  /// freed pages back to the file system where the file allows it.
  Result<RetentionPass> enforce_retention(const RetentionSettings& settings, std::int64_t now_ms);

 private:
  // For retention: the first column of the first row (nullopt for none or NULL), and a
  // statement's changes, timed into pass.batch_seconds; each takes mutex_ on its own.
  Result<std::optional<std::int64_t>> query_int(const std::string& sql,
                                                std::initializer_list<std::int64_t> args);
  Result<std::int64_t> timed_change(const std::string& sql,
                                    std::initializer_list<std::int64_t> args, RetentionPass& pass);
  Result<bool> exec(const char* sql);
  std::string error_message() const;
  // Marks minutes for the roll-up, inside the caller's transaction (mutex_ held).
  Result<bool> mark_usage_minutes(const std::set<std::int64_t>& minutes);
  Result<bool> add_cost_columns();
  // Retention's part of the rollups: those of the minutes and hours before `before_ms` go, in
  // one transaction, and the cut hour is rolled up again.
  Result<bool> trim_usage_rollups(std::int64_t before_ms);
  Result<std::vector<query::UsageRollupRow>> rollup_rows(const char* table, const char* start,
                                                         std::int64_t from_ms, std::int64_t to_ms);

  std::string path_;
  sqlite3* db_ = nullptr;
  // One connection in serialized mode: writes (processor thread) and queries (HTTP pool) take
  // turns; the embedded role's volume does not need more.
  std::mutex mutex_;
};

}  // namespace telemetryd::sqlite
