#pragma once
// The at-least-once Kafka consumer loop shared by the processor and the worker. It polls one
// message at a time (librdkafka 2.0.2's batch consume can lose messages around pause, resume and
// rebalance), hands each to a core::BatchStage, and stores an offset only once the stage reports
// it done; auto-commit commits stored offsets, and a revoke or stop commits them at once. A failed
// flush pauses the assignment, keeps polling (group membership stays alive), backs off and
// retries the same batch; partitions assigned during an outage are paused too. Nothing is dropped
// or skipped: what is not done when a partition is revoked or the process stops is redelivered.
// Both rebalance protocols work: eager (every rebalance revokes everything) and cooperative
// (`partition.assignment.strategy: cooperative-sticky` through extra_properties: only the
// partitions that move are revoked, incrementally). Readiness also watches progress: a store call
// that does not return, or lag that waits while nothing is stored, makes /ready say 503.

#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/batch_driver.hpp"
#include "core/batch_stage.hpp"
#include "kafka/client_properties.hpp"
#include "kafka/kafka_handle.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/readiness.hpp"

namespace telemetryd::kafka {

/// The consumer keys every consuming component declares in its own section: group_id,
/// session_timeout_ms, batch_size, batch_timeout_ms, retry_backoff_initial_ms,
/// retry_backoff_max_ms and stall_timeout_s.
std::vector<KeySpec> consumer_loop_keys(const std::string& default_group_id);

/// client_properties plus the consumer settings both consumers need: group.id and
/// session.timeout.ms from `<section>`, auto commit of explicitly stored offsets only, earliest
/// reset, statistics every 5 s (for the lag gauge).
Properties consumer_properties(const Config& config, const std::string& section);

struct ConsumerLoopSettings {
  /// Log stage, readiness check and metric prefix: "processor" gives the readiness check
  /// "processor" and the gauge processor_kafka_consumer_lag.
  std::string name;
  std::vector<std::string> topics;
  std::size_t batch_size = 500;
  std::chrono::milliseconds batch_timeout{200};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{5000};
  /// How long lag may wait with nothing stored (or a store call may last) before /ready fails.
  std::chrono::seconds stall_timeout{60};
};

/// The loop settings from the keys of consumer_loop_keys() in `section`; topics are left empty.
ConsumerLoopSettings consumer_loop_settings(const Config& config, const std::string& section);

/// Drops the lag series {topic, partition} of every partition in `partitions` (a revoke): the
/// partition's new owner reports its lag, and a stale value here would hold up an autoscaler
/// that scales on the maximum lag.
void remove_partition_lag(metrics::Family<metrics::Gauge>& lag,
                          const rd_kafka_topic_partition_list_t& partitions);

/// One partition's lag from a statistics document: messages behind, or -1 when unknown.
using LagVisitor =
    std::function<void(std::string_view topic, std::int32_t partition, std::int64_t lag)>;

/// Sets the lag series from a librdkafka statistics document; a partition whose lag is unknown
/// (-1, as after a revoke) loses its series rather than keeping the last value. `visit`, when
/// given, sees every partition's lag (-1 included).
void apply_lag_stats(metrics::Family<metrics::Gauge>& lag, simdjson::dom::parser& parser,
                     std::string_view json, const LagVisitor& visit = {});

/// The age of the oldest unconsumed event of a partition, in seconds: 0 when nothing waits
/// (lag 0); else the age of the last event consumed from it (the next one is at most that old),
/// or, before any, the time since the partition was assigned (a lower bound that keeps growing
/// while nothing is consumed). nullopt when the lag is unknown.
std::optional<double> lag_age_seconds(std::int64_t lag, std::int64_t last_event_ms,
                                      std::int64_t assigned_ms, std::int64_t now_ms);

// The Kafka side of a core::BatchDriver: it polls, pauses and resumes partitions, and stores
// offsets; the driver decides when to flush and how to retry.
class ConsumerLoop final : private core::BatchInput {
 public:
  /// Runs before subscribing, retried with backoff while it fails retryably (e.g. creating
  /// indexes while the database is away); a permanent failure shuts the process down with 1.
  using Prepare = std::function<Result<bool>()>;

  /// Creates the consumer (throws StartupError for a property librdkafka rejects). The stage
  /// must outlive the loop.
  ConsumerLoop(const Config& config, const std::string& section, ConsumerLoopSettings settings,
               core::BatchStage& stage, Readiness& readiness, metrics::Registry& metrics,
               std::function<void(int)> request_shutdown, Prepare prepare = {});
  /// Stops and joins the thread, after a final flush attempt and commit.
  ~ConsumerLoop() override;
  ConsumerLoop(const ConsumerLoop&) = delete;
  ConsumerLoop& operator=(const ConsumerLoop&) = delete;

  void start();
  /// Asks the thread to drain and close; returns at once.
  void stop() { stopping_ = true; }

 private:
  // Per assigned partition: when it was assigned and the event time of the last message taken
  // from it (wall-clock ms), for the lag age.
  struct PartitionClock {
    std::int64_t assigned_ms = 0;
    std::int64_t last_event_ms = -1;
  };

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  static int on_stats(rd_kafka_t*, char* json, size_t json_len, void* opaque);
  void assigned(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* partitions, bool cooperative);
  void revoked(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* partitions, bool cooperative);
  void note_event_time(const rd_kafka_message_t* msg);
  std::optional<std::string> stalled() const;
  void run();
  void prepare();
  void accept(rd_kafka_message_t* msg);
  void sleep_unless_stopping(std::chrono::milliseconds duration);

  // core::BatchInput, for driver_ (on the loop's thread).
  void commit(const core::DoneOffsets& done) override;
  void set_paused(bool paused) override;
  void wait(std::chrono::milliseconds duration) override;
  bool stopping() const override { return stopping_; }

  ConsumerLoopSettings settings_;
  core::BatchStage& stage_;
  Readiness& readiness_;
  std::function<void(int)> request_shutdown_;
  Prepare prepare_;
  metrics::Family<metrics::Gauge>& lag_;
  metrics::Family<metrics::Gauge>& lag_seconds_;
  simdjson::dom::parser stats_parser_;
  std::map<core::PartitionKey, PartitionClock> clocks_;  // the poll thread's only
  // The last message's partition, so consecutive messages of one partition skip the lookup.
  const rd_kafka_topic_t* clock_topic_ = nullptr;
  std::int32_t clock_partition_ = -1;
  PartitionClock* clock_ = nullptr;
  std::atomic<std::int64_t> lag_total_{0};  // read by the readiness guard
  HandlePtr consumer_;
  std::atomic<bool> stopping_{false};
  core::BatchDriver driver_;
  std::thread thread_;
};

}  // namespace telemetryd::kafka
