#include "sqlite/retention_task.hpp"

#include <algorithm>

#include "telemetryd/log.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::sqlite {

RetentionTask::RetentionTask(SqliteStore& store, RetentionSettings settings,
                             metrics::Registry& metrics, std::chrono::milliseconds interval)
    : store_(store),
      settings_(settings),
      interval_(interval),
      deleted_(metrics.counter("embedded_retention_deleted_total",
                               "Rows deleted by retention (embedded.retention_days, "
                               "embedded.max_size_mb).",
                               {"table"})),
      bytes_(metrics.gauge("embedded_database_bytes",
                           "SQLite file pages in use and on the free list (reused before the "
                           "file grows), in bytes.",
                           {"pages"})),
      batch_seconds_(metrics
                         .histogram("embedded_retention_batch_seconds",
                                    "How long one retention statement held the database (the "
                                    "processor's writes wait at most this long).")
                         .with({})),
      failures_(metrics
                    .counter("embedded_retention_failures_total",
                             "Retention passes that failed (retried at the next interval).")
                    .with({})) {}

RetentionTask::~RetentionTask() {
  stop();
}

Result<RetentionPass> RetentionTask::run_once(std::int64_t now_ms) {
  Result<RetentionPass> result = store_.enforce_retention(settings_, now_ms);
  if (!result) {
    failures_.Increment();
    log::warn("embedded", "retention pass failed; retrying later",
              {{"error", result.error().message}});
    return result;
  }
  const RetentionPass& pass = result.value();
  deleted_.with({"gpu_metrics"}).Increment(static_cast<double>(pass.gpu_metrics));
  deleted_.with({"token_usage"}).Increment(static_cast<double>(pass.token_usage));
  deleted_.with({"cost_windows"}).Increment(static_cast<double>(pass.cost_windows));
  deleted_.with({"placements"}).Increment(static_cast<double>(pass.placements));
  bytes_.with({"used"}).Set(static_cast<double>(pass.file_bytes - pass.free_bytes));
  bytes_.with({"free"}).Set(static_cast<double>(pass.free_bytes));
  double longest = 0;
  for (const double seconds : pass.batch_seconds) {
    batch_seconds_.Observe(seconds);
    longest = std::max(longest, seconds);
  }
  const std::int64_t rows =
      pass.gpu_metrics + pass.token_usage + pass.cost_windows + pass.placements;
  if (rows > 0 || (pass.over_size && !warned_over_size_)) {
    const auto level = pass.over_size ? log::Level::kWarn : log::Level::kInfo;
    log::write(level, "embedded",
               pass.over_size ? "retention pass: over embedded.max_size_mb with only the last "
                                "hour (or unpriced cost windows) left; keeping them"
                              : "retention pass",
               {{"gpu_metrics", pass.gpu_metrics},
                {"token_usage", pass.token_usage},
                {"cost_windows", pass.cost_windows},
                {"placements", pass.placements},
                {"cutoff", pass.cutoff_ms > 0 ? rfc3339_utc(std::chrono::system_clock::time_point(
                                                    std::chrono::milliseconds(pass.cutoff_ms)))
                                              : ""},
                {"file_bytes", pass.file_bytes},
                {"free_bytes", pass.free_bytes},
                {"statements", static_cast<std::int64_t>(pass.batch_seconds.size())},
                {"longest_statement_ms", longest * 1000},
                {"more", pass.more}});
  }
  warned_over_size_ = pass.over_size;
  return result;
}

void RetentionTask::start() {
  if (settings_.max_age_ms <= 0 && settings_.max_bytes <= 0) return;  // keep everything
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void RetentionTask::stop() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void RetentionTask::run(std::stop_token stop) {
  while (!stop.stop_requested()) {
    Result<RetentionPass> pass = run_once(unix_ms(std::chrono::system_clock::now()));
    // A pass that ran out of statements goes on soon, the writer having had its turns between
    // them; a failed one waits for the next interval.
    const auto wait = pass && pass.value().more ? std::chrono::milliseconds(100) : interval_;
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, stop, wait, [] { return false; });
  }
}

}  // namespace telemetryd::sqlite
