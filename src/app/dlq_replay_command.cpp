#include "app/dlq_replay_command.hpp"

#include <librdkafka/rdkafka.h>

#include <iostream>
#include <map>

#include "app/reload.hpp"
#include "app/roles.hpp"
#include "events/event_decoder.hpp"
#include "kafka/client_properties.hpp"
#include "kafka/kafka_handle.hpp"
#include "sinks/dead_letter_replay.hpp"
#include "sinks/kafka_sink.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::app {
namespace {

constexpr int kKafkaTimeoutMs = 10000;
// A bounded read: with no message for this long before every partition reached its end
// offset captured at start, the read fails instead of waiting forever.
constexpr std::chrono::seconds kReadStall{60};
// librdkafka's own retries end after this (the role file's 0 would wait forever); the flush at
// the end waits a little longer, so every message has its report by then.
constexpr int kMessageTimeoutMs = 60000;
constexpr std::chrono::seconds kDeliveryTimeout{90};

// Problems the operator can fix by changing the command line or the role file: exit 78.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::optional<std::int64_t> parse_time(const std::string& text, const char* option) {
  if (text.empty()) return std::nullopt;
  std::chrono::system_clock::time_point t;
  if (!events::parse_rfc3339(text, t)) {
    throw UsageError(std::string(option) + ": '" + text +
                     "' is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)");
  }
  return unix_ms(t);
}

sinks::ReplayFilter filter_from(const DlqReplayOptions& options) {
  sinks::ReplayFilter filter{.reasons = options.reasons,
                             .stages = options.stages,
                             .partition = options.partition,
                             .from_offset = options.from_offset,
                             .to_offset = options.to_offset,
                             .since_ms = parse_time(options.since, "--since"),
                             .until_ms = parse_time(options.until, "--until")};
  if (filter.from_offset && filter.to_offset && *filter.to_offset < *filter.from_offset) {
    throw UsageError("--to-offset must not be below --from-offset");
  }
  if (filter.since_ms && filter.until_ms && *filter.until_ms <= *filter.since_ms) {
    throw UsageError("--until must be after --since");
  }
  return filter;
}

struct PartitionEnd {
  std::string topic;
  std::int32_t partition;
  std::int64_t low;
  std::int64_t high;  // the end offset at start: the read stops there
};

// Every partition of `topics` with something between its watermarks. A topic that does not
// exist holds no dead letters: said on stderr, not an error.
std::vector<PartitionEnd> partition_ends(rd_kafka_t* consumer,
                                         const std::vector<std::string>& topics) {
  std::vector<PartitionEnd> ends;
  for (const auto& topic : topics) {
    rd_kafka_topic_t* handle = rd_kafka_topic_new(consumer, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(consumer, 0, handle, &metadata, kKafkaTimeoutMs);
    rd_kafka_topic_destroy(handle);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw StartupError("cannot read the metadata of " + topic + ": " + rd_kafka_err2str(err));
    }
    std::vector<std::int32_t> partitions;
    rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int t = 0; t < metadata->topic_cnt; ++t) {
      topic_err = metadata->topics[t].err;
      for (int p = 0; p < metadata->topics[t].partition_cnt; ++p) {
        partitions.push_back(metadata->topics[t].partitions[p].id);
      }
    }
    rd_kafka_metadata_destroy(metadata);
    if (topic_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      std::cerr << "dlq replay: " << topic << " does not exist: no dead letters there\n";
      continue;
    }
    if (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw StartupError("cannot read the metadata of " + topic + ": " +
                         rd_kafka_err2str(topic_err));
    }
    for (const std::int32_t partition : partitions) {
      std::int64_t low = 0, high = 0;
      const rd_kafka_resp_err_t w = rd_kafka_query_watermark_offsets(
          consumer, topic.c_str(), partition, &low, &high, kKafkaTimeoutMs);
      if (w != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw StartupError("cannot read the offsets of " + topic + "/" + std::to_string(partition) +
                           ": " + rd_kafka_err2str(w));
      }
      if (high > low) ends.push_back({topic, partition, low, high});
    }
  }
  return ends;
}

sinks::Headers message_headers(const rd_kafka_message_t* message) {
  sinks::Headers out;
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0;
       rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i) {
    out.emplace_back(name, value != nullptr ? std::string(static_cast<const char*>(value), size)
                                            : std::string());
  }
  return out;
}

struct Counts {
  std::int64_t read = 0;
  std::int64_t matched = 0;
  std::int64_t sent = 0;
  std::int64_t skipped = 0;  // matched, but with no destination (no source topic, no --to)
  std::int64_t failed = 0;
};

class Replayer {
 public:
  Replayer(const Config& config, const DlqReplayOptions& options)
      : options_(options), filter_(filter_from(options)) {
    if (!options.dry_run) {
      sink_.emplace(config, metrics_, [this](const sinks::DeliveryReport& report) {
        if (report.ok) {
          ++counts_.sent;
          return;
        }
        ++counts_.failed;
        std::cerr << "dlq replay: not delivered to " << report.topic << ": "
                  << rd_kafka_err2str(report.error) << "\n";
      });
    }
  }

  void handle(const std::string& dlq_topic, const rd_kafka_message_t* message) {
    ++counts_.read;
    const sinks::Headers headers = message_headers(message);
    const sinks::DeadLetterOrigin origin = sinks::dead_letter_origin(headers);
    if (!sinks::matches(filter_, origin, rd_kafka_message_timestamp(message, nullptr))) return;
    ++counts_.matched;
    const std::string destination = sinks::replay_destination(options_.to, origin);
    if (destination.empty()) {
      ++counts_.skipped;
      std::cerr << "dlq replay: " << dlq_topic << "/" << message->partition << "/"
                << message->offset << " names no source topic: skipped (give --to)\n";
      return;
    }
    Event event;
    event.topic = destination;
    event.key.assign(static_cast<const char*>(message->key), message->key_len);
    event.payload.assign(static_cast<const char*>(message->payload), message->len);
    event.cloudevent = false;  // the original bytes, as they came
    event.headers = sinks::replay_headers(headers, dlq_topic, message->partition, message->offset,
                                          origin.reason);
    if (sink_) {
      const std::atomic<bool> never{false};
      std::string error;
      if (!sink_->produce(event, never, error)) throw StartupError(error);
      sink_->poll(std::chrono::milliseconds(0));
    }
    print(dlq_topic, message, origin, event);
  }

  // Waits for every acknowledgement; the counts are final afterwards.
  const Counts& finish() {
    if (sink_) {
      const int left = sink_->flush(kDeliveryTimeout);
      if (left > 0) {
        counts_.failed += left;
        std::cerr << "dlq replay: " << left << " messages not acknowledged within "
                  << kDeliveryTimeout.count() << " s\n";
      }
    }
    return counts_;
  }

 private:
  void print(const std::string& dlq_topic, const rd_kafka_message_t* message,
             const sinks::DeadLetterOrigin& origin, const Event& event) const {
    JsonWriter json;
    json.begin_object()
        .key("dlq_topic")
        .value(dlq_topic)
        .key("dlq_partition")
        .value(static_cast<std::int64_t>(message->partition))
        .key("dlq_offset")
        .value(static_cast<std::int64_t>(message->offset))
        .key("reason")
        .value(origin.reason)
        .key("stage")
        .value(origin.stage)
        .key("source")
        .value(origin.topic + "/" + std::to_string(origin.partition) + "/" +
               std::to_string(origin.offset))
        .key("destination")
        .value(event.topic)
        .key("key")
        .value(event.key)
        .key("dry_run")
        .value(options_.dry_run)
        .end_object();
    std::cout << json.str() << "\n";
  }

  const DlqReplayOptions& options_;
  sinks::ReplayFilter filter_;
  metrics::Registry metrics_;
  std::optional<sinks::KafkaSink> sink_;
  Counts counts_;
};

struct TopicPartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};

// Reads every partition of `ends` from its low to its end offset at start, handing each message
// to `replayer`. assign(), not a group subscription: nothing is committed and no group rebalances.
void read_to_end(rd_kafka_t* consumer, const std::vector<PartitionEnd>& ends, Replayer& replayer) {
  if (ends.empty()) return;
  std::unique_ptr<rd_kafka_topic_partition_list_t, TopicPartitionListDeleter> assignment(
      rd_kafka_topic_partition_list_new(static_cast<int>(ends.size())));
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> open;
  for (const auto& end : ends) {
    rd_kafka_topic_partition_list_add(assignment.get(), end.topic.c_str(), end.partition)->offset =
        end.low;
    open[{end.topic, end.partition}] = end.high;
  }
  if (const rd_kafka_resp_err_t err = rd_kafka_assign(consumer, assignment.get()); err) {
    throw StartupError(std::string("cannot assign the dead-letter partitions: ") +
                       rd_kafka_err2str(err));
  }
  auto last_progress = std::chrono::steady_clock::now();
  while (!open.empty()) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 500);
    if (message == nullptr) {
      if (std::chrono::steady_clock::now() - last_progress > kReadStall) {
        throw StartupError("no progress reading the dead-letter topics for " +
                           std::to_string(kReadStall.count()) + " s");
      }
      continue;
    }
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
        message, rd_kafka_message_destroy);
    const std::string topic = message->rkt != nullptr ? rd_kafka_topic_name(message->rkt) : "";
    const auto it = open.find({topic, message->partition});
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Records below the end offset that are not messages (e.g. transaction markers).
      if (it != open.end() && message->offset >= it->second) open.erase(it);
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "dlq replay: " << rd_kafka_message_errstr(message) << "\n";
      if (message->err == RD_KAFKA_RESP_ERR__FATAL ||
          message->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        throw StartupError(std::string("cannot read the dead-letter topics: ") +
                           rd_kafka_message_errstr(message));
      }
      continue;
    }
    last_progress = std::chrono::steady_clock::now();
    // Letters written after the start are left for the next replay: the read is bounded.
    if (it == open.end() || message->offset >= it->second) continue;
    replayer.handle(topic, message);
    if (message->offset + 1 >= it->second) open.erase(it);
  }
}

}  // namespace

int dlq_replay(const DlqReplayOptions& options) {
  Config config;
  try {
    // Replays are sent once and in order whatever the role file says (idempotence needs
    // acks=all), and a broker that never answers fails the command instead of hanging it.
    std::vector<std::string> overrides = options.overrides;
    overrides.insert(overrides.end(),
                     {"kafka.producer.enable_idempotence=true", "kafka.producer.acks=all",
                      "kafka.producer.message_timeout_ms=" + std::to_string(kMessageTimeoutMs)});
    // The processor's role: another role's file is a problem at its `role:` line.
    config = load_config({.file = options.config_file, .role = "processor", .overrides = overrides},
                         role_catalog());
  } catch (const ConfigError& e) {
    log_config_problems(e);
    return kExitConfig;
  }
  try {
    std::vector<std::string> topics = options.topics;
    if (topics.empty()) {
      const std::string& suffix = config.str("processor.dlq_suffix");
      topics = {config.str("processor.topics.gpu_metrics") + suffix,
                config.str("processor.topics.token_usage") + suffix};
    }
    Replayer replayer(config, options);  // checks the filters before anything connects

    kafka::Properties properties = kafka::client_properties(config);
    // A group id only because librdkafka's consumer wants one: offsets are assigned, never
    // committed, so the processor's group and its lag stay as they were.
    properties["group.id"] = "telemetryd-dlq-replay";
    properties["enable.auto.commit"] = "false";
    properties["enable.auto.offset.store"] = "false";
    properties["enable.partition.eof"] = "true";
    // Retention may remove the low watermark's letters before the read reaches them: go on from
    // the oldest left, never skip to the end (librdkafka's default).
    properties["auto.offset.reset"] = "earliest";
    kafka::HandlePtr consumer = kafka::make_handle(RD_KAFKA_CONSUMER, properties);
    rd_kafka_poll_set_consumer(consumer.get());
    read_to_end(consumer.get(), partition_ends(consumer.get(), topics), replayer);
    rd_kafka_consumer_close(consumer.get());

    const Counts& counts = replayer.finish();
    JsonWriter summary;
    summary.begin_object()
        .key("read")
        .value(counts.read)
        .key("matched")
        .value(counts.matched)
        .key("sent")
        .value(counts.sent)
        .key("skipped")
        .value(counts.skipped)
        .key("failed")
        .value(counts.failed)
        .key("dry_run")
        .value(options.dry_run)
        .end_object();
    std::cout << summary.str() << "\n";
    if (counts.failed > 0) {
      std::cerr << "dlq replay: " << counts.failed
                << " messages were not delivered; replaying again is safe (the event id decides)\n";
      return kExitStartup;
    }
    return 0;
  } catch (const ConfigError& e) {
    log_config_problems(e);
    return kExitConfig;
  } catch (const UsageError& e) {
    std::cerr << "dlq replay: " << e.what() << "\n";
    return kExitConfig;
  } catch (const StartupError& e) {
    std::cerr << "dlq replay: " << e.what() << "\n";
    return kExitStartup;
  }
}

}  // namespace telemetryd::app
