#pragma once
// The at-least-once Kafka consumer loop shared by the processor and the worker. It polls one
// message at a time (librdkafka 2.0.2's batch consume can lose messages around pause, resume and
// rebalance), hands each to a core::BatchStage, and stores an offset only once the stage reports
// it done; auto-commit commits stored offsets, and a revoke or stop commits them at once. A failed
// flush pauses the assignment, keeps polling (group membership stays alive), backs off and
// retries the same batch; partitions assigned during an outage are paused too. Nothing is dropped
// or skipped: what is not done when a partition is revoked or the process stops is redelivered.

#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/batch_stage.hpp"
#include "kafka/client_properties.hpp"
#include "kafka/kafka_handle.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/readiness.hpp"

namespace telemetryd::kafka {

/// The consumer keys every consuming component declares in its own section: group_id,
/// session_timeout_ms, batch_size, batch_timeout_ms, retry_backoff_initial_ms and
/// retry_backoff_max_ms.
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
};

/// The loop settings from the keys of consumer_loop_keys() in `section`; topics are left empty.
ConsumerLoopSettings consumer_loop_settings(const Config& config, const std::string& section);

/// Drops the lag series {topic, partition} of every partition in `partitions` (a revoke): the
/// partition's new owner reports its lag, and a stale value here would hold up an autoscaler
/// that scales on the maximum lag.
void remove_partition_lag(metrics::Family<metrics::Gauge>& lag,
                          const rd_kafka_topic_partition_list_t& partitions);

/// Sets the lag series from a librdkafka statistics document; a partition whose lag is unknown
/// (-1, as after a revoke) loses its series rather than keeping the last value.
void apply_lag_stats(metrics::Family<metrics::Gauge>& lag, simdjson::dom::parser& parser,
                     std::string_view json);

class ConsumerLoop {
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
  ~ConsumerLoop();
  ConsumerLoop(const ConsumerLoop&) = delete;
  ConsumerLoop& operator=(const ConsumerLoop&) = delete;

  void start();
  /// Asks the thread to drain and close; returns at once.
  void stop() { stopping_ = true; }

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  static int on_stats(rd_kafka_t*, char* json, size_t json_len, void* opaque);
  void run();
  void prepare();
  void accept(rd_kafka_message_t* msg);
  Result<bool> flush_once();
  void flush_until_done();
  void set_partitions_paused(bool pause);
  void sleep_unless_stopping(std::chrono::milliseconds duration);

  ConsumerLoopSettings settings_;
  core::BatchStage& stage_;
  Readiness& readiness_;
  std::function<void(int)> request_shutdown_;
  Prepare prepare_;
  metrics::Family<metrics::Gauge>& lag_;
  simdjson::dom::parser stats_parser_;
  HandlePtr consumer_;
  std::atomic<bool> stopping_{false};
  bool paused_ = false;
  std::thread thread_;
};

}  // namespace telemetryd::kafka
