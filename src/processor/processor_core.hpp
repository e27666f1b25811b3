#pragma once
// The processor's pipeline, independent of where events come from (a Kafka consumer, or the
// embedded role's in-process queue): decode and validate, dead-letter what is invalid, write
// idempotently, mark the cost windows the events fall in (priced later from the store:
// cost_pricer.hpp), and report what is done so offsets can move.
// Not thread-safe: one transport thread drives it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/batch_stage.hpp"
#include "events/event_decoder.hpp"
#include "processor/tenant_labels.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/result.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::processor {

using core::IncomingMessage;
using core::PartitionKey;

struct CoreSettings {
  std::string gpu_metrics_topic = "gpu.metrics.v1";
  std::string token_usage_topic = "token.usage.v1";
  std::int64_t cost_window_ms = 60000;  // the windows marked for pricing (cost.window_s)
  std::chrono::milliseconds dead_letter_timeout{30000};
};

class ProcessorCore final : public core::BatchStage {
 public:
  ProcessorCore(CoreSettings settings, Store& store, DeadLetterSink& dead_letters,
                metrics::Registry& metrics, TenantLabels& tenants);
  /// Logs "final counts": the reconciliation terms of this processor's life.
  ~ProcessorCore() override;
  ProcessorCore(const ProcessorCore&) = delete;
  ProcessorCore& operator=(const ProcessorCore&) = delete;

  /// Takes one message into the pending batch, or dead-letters it. False when the dead letter
  /// could not be queued (the caller retries later).
  bool accept(const IncomingMessage& message) override;
  /// Messages accepted since the last successful flush (valid ones and dead letters).
  std::size_t pending() const override { return pending_messages_; }
  std::chrono::steady_clock::time_point oldest_pending() const override { return oldest_pending_; }

  /// Writes the pending batch. On a retryable error the batch is kept and the next call resumes
  /// where this one stopped (a written batch is not written again). On success, `done` holds the
  /// highest offset finished per partition.
  Result<bool> flush(core::DoneOffsets& done) override;

  /// Forgets pending messages of partitions this process no longer owns; Kafka redelivers them.
  void abandon(const std::function<bool(const PartitionKey&)>& revoked) override;

 private:
  struct Pending {
    events::DecodedEvent event;
    std::string topic;
    std::string key;
    std::string value;
    std::int32_t partition;
    std::int64_t offset;
  };
  enum class Stage { kWrite, kMark, kRejected, kDeadLetters };

  bool dead_letter(const IncomingMessage& message, std::string_view reason, std::string_view detail,
                   std::string_view stage);
  void count_written(const WriteOutcome& outcome);
  Error failed_write(Error error);

  // The reconciliation counters' totals, for the final log line.
  struct Totals {
    std::int64_t consumed = 0, stored = 0, duplicates = 0, dead_lettered = 0, abandoned = 0;
  };
  Totals totals_;
  Result<bool> mark_cost_windows();
  void note_done(const std::string& topic, std::int32_t partition, std::int64_t offset);
  void update_in_flight();

  CoreSettings settings_;
  Store& store_;
  DeadLetterSink& dead_letters_;
  TenantLabels& tenants_;
  simdjson::dom::parser parser_;
  std::vector<Pending> batch_;
  std::map<PartitionKey, std::int64_t> offsets_;  // highest offset accepted since last flush
  std::size_t pending_messages_ = 0;
  std::chrono::steady_clock::time_point oldest_pending_{};
  Stage stage_ = Stage::kWrite;
  // Batch indexes of the events the store took (not refused), for the cost marks.
  std::vector<bool> written_;
  // Store rejections of the written batch, dead-lettered from rejected_next_ on.
  std::vector<std::pair<std::size_t, std::string>> rejected_;
  std::size_t rejected_next_ = 0;

  metrics::Registry& metrics_;
  // By topic, model and tenant label: picked per message or event.
  metrics::SeriesByValue<metrics::Counter> consumed_;
  metrics::Family<metrics::Counter>& invalid_;
  metrics::Family<metrics::Counter>& dead_lettered_;
  metrics::Family<metrics::Counter>& db_writes_;
  metrics::Family<metrics::Counter>& store_errors_;
  metrics::Counter& duplicates_;
  metrics::Counter& abandoned_;
  metrics::Gauge& in_flight_;
  metrics::SeriesByValue<metrics::Counter> tokens_;
  metrics::SeriesByValue<metrics::Counter> tenant_tokens_;
  metrics::Histogram& write_latency_;
  metrics::Histogram& end_to_end_latency_;
};

}  // namespace telemetryd::processor
