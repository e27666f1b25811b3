#pragma once
// The worker's stage: decode gpu.metadata.v1 with the processor's decoder, transform, write the
// log and the device states idempotently, dead-letter what is invalid or refused, and report
// what is done so the consumer loop can move offsets. Not thread-safe: the consumer thread
// drives it.

#include <chrono>
#include <string>
#include <vector>

#include "core/batch_stage.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/sink.hpp"
#include "worker/metadata_store.hpp"

namespace telemetryd::worker {

struct WorkerSettings {
  std::string topic = "gpu-metadata";
  std::chrono::milliseconds dead_letter_timeout{30000};
};

class WorkerCore final : public core::BatchStage {
 public:
  WorkerCore(WorkerSettings settings, MetadataStore& store, DeadLetterSink& dead_letters,
             metrics::Registry& metrics);

  bool accept(const core::IncomingMessage& message) override;
  std::size_t pending() const override { return pending_messages_; }
  std::chrono::steady_clock::time_point oldest_pending() const override { return oldest_pending_; }
  /// Log, then device states, then dead letters of refused documents; a retryable failure
  /// resumes at the step that failed, so nothing is written or counted twice by this process.
  Result<bool> flush(core::DoneOffsets& done) override;
  void abandon(const std::function<bool(const core::PartitionKey&)>& revoked) override;

 private:
  struct Pending {
    MetadataDocument doc;
    std::string topic;
    std::string key;
    std::string value;
    std::int32_t partition = 0;
    std::int64_t offset = -1;
    std::string rejected;  // why the store refused it; dead-lettered when not empty
    std::string rejected_stage;
    bool dead_lettered = false;
  };
  enum class Step { kLog, kState, kRejected, kDeadLetters };

  bool dead_letter(const core::IncomingMessage& message, std::string_view reason,
                   std::string_view detail, std::string_view stage);
  Error retried(Error error, const char* message);
  Result<bool> write_log();
  Result<bool> write_state();
  void update_in_flight();

  WorkerSettings settings_;
  MetadataStore& store_;
  DeadLetterSink& dead_letters_;
  simdjson::dom::parser parser_;
  simdjson::dom::parser transform_parser_;
  std::vector<Pending> batch_;
  core::DoneOffsets offsets_;  // highest offset accepted since the last flush
  std::size_t pending_messages_ = 0;
  std::chrono::steady_clock::time_point oldest_pending_{};
  Step step_ = Step::kLog;

  metrics::Family<metrics::Counter>& consumed_;
  metrics::Family<metrics::Counter>& invalid_;
  metrics::Family<metrics::Counter>& dead_lettered_;
  metrics::Family<metrics::Counter>& written_;
  metrics::Counter& duplicates_;
  metrics::Counter& stale_;
  metrics::Counter& abandoned_;
  metrics::Gauge& in_flight_;
  metrics::Histogram& write_latency_;
};

}  // namespace telemetryd::worker
