#pragma once
// The one run loop between a transport and a BatchStage: when a batch is due (size or age),
// flush it; until it is done, pause the transport, back off exponentially and retry the same
// batch, never dropping it; resume on success; one last attempt when stopping. The processor's
// and the worker's Kafka consumer (kafka::ConsumerLoop) and the `all` role's in-process queue
// (app/embedded_pipeline.cpp) both drive their stage through it; they keep only what differs:
// how messages arrive, how done positions are kept, and how a pause is made.
// Not thread-safe, but for the stall accessors: the transport's thread drives it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/batch_stage.hpp"
#include "telemetryd/readiness.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::core {

struct BatchDriverSettings {
  /// Log stage and readiness check, e.g. "processor".
  std::string name;
  /// What the readiness check says while batches are stored.
  std::string ready_reason = "consuming";
  std::size_t batch_size = 500;
  std::chrono::milliseconds batch_timeout{200};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{5000};
};

/// What the transport does for the driver.
class BatchInput {
 public:
  virtual ~BatchInput() = default;
  /// Moves the transport past messages now done (Kafka: stores offset + 1 per partition).
  virtual void commit(const DoneOffsets& done) = 0;
  /// Stops or resumes taking new messages while the stage cannot store them.
  virtual void set_paused(bool paused) = 0;
  /// Waits up to `duration` while the transport stays alive (Kafka: keeps polling, taking a
  /// message fetched before the pause); returns early once stopping().
  virtual void wait(std::chrono::milliseconds duration) = 0;
  virtual bool stopping() const = 0;
};

class BatchDriver {
 public:
  BatchDriver(BatchDriverSettings settings, BatchStage& stage, BatchInput& input,
              Readiness& readiness);

  const BatchDriverSettings& settings() const { return settings_; }
  /// The pending batch is full, or its oldest message waited the batch timeout.
  bool due() const;
  /// One attempt; on success commits what is done.
  Result<bool> flush_once();
  /// Flushes until the batch is done or the transport stops. A failure pauses the input
  /// (again on every failure, so what a rebalance assigned meanwhile is held too), waits with
  /// exponential backoff, and retries the same batch; success resumes it.
  void flush_until_done();
  /// Stopping: up to `attempts` tries, backoff_initial apart; false when the batch is still
  /// not done (it is redelivered, or lost where the transport cannot redeliver).
  bool final_flush(int attempts);
  /// The stage could not store the last batch: the input is paused.
  bool paused() const { return paused_; }

  // Read from other threads (/ready's stall guard): steady-clock ms, 0 for none.
  std::int64_t in_store_call_since_ms() const { return in_store_call_since_ms_.load(); }
  std::int64_t progress_ms() const { return progress_ms_.load(); }
  /// Marks progress without a store call (e.g. caught up: nothing waits).
  void note_progress();

 private:
  BatchDriverSettings settings_;
  BatchStage& stage_;
  BatchInput& input_;
  Readiness& readiness_;
  bool paused_ = false;
  std::atomic<std::int64_t> in_store_call_since_ms_{0};
  std::atomic<std::int64_t> progress_ms_{0};
};

}  // namespace telemetryd::core
