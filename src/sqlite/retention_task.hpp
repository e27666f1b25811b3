#pragma once
// Runs the embedded store's retention (SqliteStore::enforce_retention) on a thread of its own:
// a pass at start, then every interval, at once again while a pass left work; counts what it
// deleted on /metrics and logs one line per pass that deleted or hit the size bound.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "sqlite/sqlite_store.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::sqlite {

class RetentionTask {
 public:
  RetentionTask(SqliteStore& store, RetentionSettings settings, metrics::Registry& metrics,
                std::chrono::milliseconds interval = std::chrono::seconds(60));
  ~RetentionTask();
  RetentionTask(const RetentionTask&) = delete;
  RetentionTask& operator=(const RetentionTask&) = delete;

  /// One pass at now_ms, counted and logged.
  Result<RetentionPass> run_once(std::int64_t now_ms);
  void start();
  void stop();

 private:
  void run(std::stop_token stop);

  SqliteStore& store_;
  RetentionSettings settings_;
  std::chrono::milliseconds interval_;
  metrics::Family<metrics::Counter>& deleted_;
  metrics::Family<metrics::Gauge>& bytes_;
  metrics::Histogram& batch_seconds_;
  metrics::Counter& failures_;
  bool warned_over_size_ = false;

  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::jthread thread_;
};

}  // namespace telemetryd::sqlite
