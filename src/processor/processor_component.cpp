// The `processor` component: consumes gpu.metrics.v1 and token.usage.v1 at least once into
// MongoDB. Offsets are stored only for messages that are done (stored, duplicate or
// dead-lettered and acknowledged), and committed on revoke, so a crash or rebalance redelivers
// rather than loses. A store outage pauses the partitions and retries with backoff; nothing is
// dropped or skipped. One message per poll: librdkafka 2.0.2's batch consume can lose messages
// around pause, resume and rebalance.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <set>
#include <thread>

#include "kafka/client_properties.hpp"
#include "kafka/kafka_handle.hpp"
#include "processor/cost_config.hpp"
#include "processor/kafka_dead_letters.hpp"
#include "processor/processor_core.hpp"
#include "processor/query_routes.hpp"
#include "processor/store_factory.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::processor {
namespace {

using namespace std::chrono_literals;

CoreSettings processor_settings(const Config& config) {
  CoreSettings s = core_settings_from(config, "processor");
  s.gpu_metrics_topic = config.str("processor.topics.gpu_metrics");
  s.token_usage_topic = config.str("processor.topics.token_usage");
  return s;
}

class ProcessorComponent final : public Component {
 public:
  explicit ProcessorComponent(ComponentContext& ctx)
      : config_(ctx.config),
        readiness_(ctx.readiness),
        request_shutdown_(ctx.request_shutdown),
        catalog_(catalog_from(ctx.config, "processor")),
        store_(make_processor_store(ctx.config)),
        dead_letters_(ctx.config, ctx.metrics, ctx.config.str("processor.dlq_suffix")),
        core_(processor_settings(ctx.config), *store_, dead_letters_, catalog_, ctx.metrics),
        batch_size_(static_cast<std::size_t>(ctx.config.integer("processor.batch_size"))),
        batch_timeout_(ctx.config.integer("processor.batch_timeout_ms")),
        backoff_initial_(ctx.config.integer("processor.retry_backoff_initial_ms")),
        backoff_max_(ctx.config.integer("processor.retry_backoff_max_ms")),
        lag_(ctx.metrics.gauge("processor_kafka_consumer_lag",
                               "Messages behind the partition's high watermark.",
                               {"topic", "partition"})) {
    readiness_.declare("processor", "starting");
    add_query_routes(ctx.router, ctx.blocking, *store_);
    consumer_ = make_consumer();
  }

  ~ProcessorComponent() override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void start() override {
    thread_ = std::thread([this] { run(); });
  }
  void stop() override { stopping_ = true; }

 private:
  kafka::HandlePtr make_consumer() {
    auto properties = kafka::client_properties(config_);
    properties["group.id"] = config_.str("processor.group_id");
    properties["enable.auto.commit"] = "true";
    properties["enable.auto.offset.store"] = "false";
    properties["auto.offset.reset"] = "earliest";
    properties["statistics.interval.ms"] = "5000";
    properties["session.timeout.ms"] =
        std::to_string(config_.integer("processor.session_timeout_ms"));
    rd_kafka_conf_t* conf = kafka::make_conf(properties);
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_rebalance_cb(conf, &ProcessorComponent::on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, &ProcessorComponent::on_stats);
    auto handle = kafka::make_handle_from_conf(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(handle.get());
    return handle;
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    auto* self = static_cast<ProcessorComponent*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      log::info("processor", "partitions assigned", {{"count", partitions->cnt}});
      // paused_ is left as it is: during an outage flush_until_done pauses the new assignment
      // at its next failure and resumes it all once the store answers again.
      rd_kafka_assign(rk, partitions);
      return;
    }
    // Revoked: finish what can be finished, commit it, and forget the rest (it is redelivered
    // to the partitions' next owner, and stored once thanks to the event id).
    if (self->core_.pending() > 0) self->flush_once();
    rd_kafka_commit(rk, nullptr, 0);
    std::set<PartitionKey> revoked;
    for (int i = 0; i < partitions->cnt; ++i) {
      revoked.insert({partitions->elems[i].topic, partitions->elems[i].partition});
    }
    self->core_.abandon([&](const PartitionKey& key) { return revoked.count(key) > 0; });
    log::info("processor", "partitions revoked", {{"count", partitions->cnt}});
    rd_kafka_assign(rk, nullptr);
  }

  static int on_stats(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
    auto* self = static_cast<ProcessorComponent*>(opaque);
    simdjson::dom::parser& parser = self->stats_parser_;
    simdjson::dom::element doc;
    if (parser.parse(json, json_len).get(doc)) return 0;
    simdjson::dom::object topics;
    if (doc["topics"].get(topics)) return 0;
    for (auto [topic, topic_stats] : topics) {
      simdjson::dom::object partitions;
      if (topic_stats["partitions"].get(partitions)) continue;
      for (auto [partition, p] : partitions) {
        std::int64_t lag = -1;
        if (partition == "-1" || p["consumer_lag"].get(lag) || lag < 0) continue;
        self->lag_.with({std::string(topic), std::string(partition)}).set(static_cast<double>(lag));
      }
    }
    return 0;  // librdkafka frees json
  }

  void set_partitions_paused(bool pause) {
    rd_kafka_topic_partition_list_t* assignment = nullptr;
    if (rd_kafka_assignment(consumer_.get(), &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (pause) {
      rd_kafka_pause_partitions(consumer_.get(), assignment);
    } else {
      rd_kafka_resume_partitions(consumer_.get(), assignment);
    }
    rd_kafka_topic_partition_list_destroy(assignment);
    paused_ = pause;
  }

  // One attempt; on success stores the offsets of everything done.
  Result<bool> flush_once() {
    std::map<PartitionKey, std::int64_t> done;
    Result<bool> result = core_.flush(done);
    if (!result) return result;
    rd_kafka_topic_partition_list_t* offsets =
        rd_kafka_topic_partition_list_new(static_cast<int>(done.size()));
    for (const auto& [key, offset] : done) {
      rd_kafka_topic_partition_list_add(offsets, key.first.c_str(), key.second)->offset =
          offset + 1;
    }
    if (offsets->cnt > 0) rd_kafka_offsets_store(consumer_.get(), offsets);
    rd_kafka_topic_partition_list_destroy(offsets);
    return true;
  }

  // Retries until the batch is done or the process stops: an outage pauses consumption (polls
  // keep the group membership alive) and never drops the batch.
  void flush_until_done() {
    auto backoff = backoff_initial_;
    for (;;) {
      Result<bool> result = flush_once();
      if (result) {
        if (paused_) {
          set_partitions_paused(false);
          log::info("processor", "store reachable again, consumption resumed");
        }
        readiness_.set("processor", true, "consuming");
        return;
      }
      readiness_.set("processor", false, "store unavailable: " + result.error().message);
      // Paused again on every failure (harmless when already paused), so partitions assigned
      // by a rebalance during the outage are held too.
      const bool was_paused = paused_;
      set_partitions_paused(true);
      if (!was_paused) {
        log::warn("processor", "store unavailable, consumption paused",
                  {{"error", result.error().message}, {"pending", core_.pending()}});
      }
      const auto until = std::chrono::steady_clock::now() + backoff;
      while (!stopping_ && std::chrono::steady_clock::now() < until) {
        if (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), 100)) {
          // Paused partitions deliver nothing new; errors and events are logged and dropped here
          // only if they carry no data, so nothing fetched is lost.
          if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) accept(msg);
          rd_kafka_message_destroy(msg);
        }
      }
      if (stopping_) return;
      backoff = std::min(backoff * 2, backoff_max_);
    }
  }

  void accept(rd_kafka_message_t* msg) {
    const IncomingMessage message{
        rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
        std::string_view(static_cast<const char*>(msg->key), msg->key_len),
        std::string_view(static_cast<const char*>(msg->payload), msg->len)};
    while (!core_.accept(message) && !stopping_) {
      // The dead-letter queue is full: wait for deliveries, then retry this same message.
      sleep_unless_stopping(100ms);
    }
  }

  void prepare_store() {
    auto backoff = backoff_initial_;
    while (!stopping_) {
      Result<bool> prepared = store_->prepare(catalog_);
      if (prepared) {
        log::info("processor", "store prepared", {{"gpu_profiles", catalog_.entries().size()}});
        return;
      }
      readiness_.set("processor", false, "preparing store: " + prepared.error().message);
      if (prepared.error().kind == Error::Kind::kPermanent) {
        log::error("processor", "cannot prepare the store", {{"error", prepared.error().message}});
        request_shutdown_(1);
        stopping_ = true;
        return;
      }
      sleep_unless_stopping(backoff);
      backoff = std::min(backoff * 2, backoff_max_);
    }
  }

  // Backoff waits end early on stop, so SIGTERM during an outage drains in bounded time.
  void sleep_unless_stopping(std::chrono::milliseconds duration) {
    const auto until = std::chrono::steady_clock::now() + duration;
    while (!stopping_ && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(50ms);
  }

  void run() {
    prepare_store();
    if (stopping_) return;
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, config_.str("processor.topics.gpu_metrics").c_str(),
                                      RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, config_.str("processor.topics.token_usage").c_str(),
                                      RD_KAFKA_PARTITION_UA);
    const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log::error("processor", "subscribe failed", {{"error", rd_kafka_err2str(err)}});
      request_shutdown_(1);
      return;
    }
    readiness_.set("processor", true, "consuming");
    while (!stopping_) {
      rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), 100);
      if (msg != nullptr) {
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          accept(msg);
        } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          log::warn("processor", "consumer error", {{"error", rd_kafka_message_errstr(msg)}});
        }
        rd_kafka_message_destroy(msg);
      }
      const bool full = core_.pending() >= batch_size_;
      const bool due = core_.pending() > 0 &&
                       std::chrono::steady_clock::now() - core_.oldest_pending() >= batch_timeout_;
      if (full || due) flush_until_done();
    }
    // Stopping: one last attempt unless the store is known to be down (it would only spend the
    // drain's time), then commit what is done; the rest is redelivered next start.
    if (core_.pending() > 0 && !paused_ && flush_once()) {
      log::info("processor", "final batch stored");
    }
    core_.abandon([](const PartitionKey&) { return true; });
    rd_kafka_commit(consumer_.get(), nullptr, 0);
    rd_kafka_consumer_close(consumer_.get());
    log::info("processor", "consumer closed");
  }

  const Config& config_;
  Readiness& readiness_;
  std::function<void(int)> request_shutdown_;
  GpuCatalog catalog_;
  std::unique_ptr<Store> store_;  // processor.store: store_factory.cpp
  KafkaDeadLetters dead_letters_;
  ProcessorCore core_;
  std::size_t batch_size_;
  std::chrono::milliseconds batch_timeout_;
  std::chrono::milliseconds backoff_initial_;
  std::chrono::milliseconds backoff_max_;
  metrics::Family<metrics::Gauge>& lag_;
  simdjson::dom::parser stats_parser_;
  kafka::HandlePtr consumer_;
  std::atomic<bool> stopping_{false};
  bool paused_ = false;
  std::thread thread_;
};

std::vector<KeySpec> processor_keys() {
  std::vector<KeySpec> keys{
      {.name = "group_id", .description = "Kafka consumer group.", .default_value = "processor"},
      {.name = "topics.gpu_metrics",
       .description = "Topic of gpu.metrics.v1 events.",
       .default_value = "gpu.metrics.v1"},
      {.name = "topics.token_usage",
       .description = "Topic of token.usage.v1 events.",
       .default_value = "token.usage.v1"},
      {.name = "dlq_suffix",
       .description = "Invalid events go to <topic><suffix> with the reason in headers.",
       .default_value = ".dlq"},
      {.name = "session_timeout_ms",
       .type = ValueType::kInt,
       .description = "Kafka consumer session timeout: how long a crashed processor keeps its "
                      "partitions before another takes over (Kafka's default, 45 s, held a "
                      "restarted processor idle for 40 s in the resilience test).",
       .default_value = "10000",
       .min = 6000,
       .max = 300000},
      {.name = "batch_size",
       .type = ValueType::kInt,
       .description = "Events per store write.",
       .default_value = "500",
       .min = 1,
       .max = 100000},
      {.name = "batch_timeout_ms",
       .type = ValueType::kInt,
       .description = "Longest an event waits for its batch to fill.",
       .default_value = "200",
       .min = 1,
       .max = 60000},
      {.name = "retry_backoff_initial_ms",
       .type = ValueType::kInt,
       .description = "First wait after a failed store write; doubles up to the maximum.",
       .default_value = "200",
       .min = 10,
       .max = 60000},
      {.name = "retry_backoff_max_ms",
       .type = ValueType::kInt,
       .description = "Longest wait between store retries.",
       .default_value = "5000",
       .min = 10,
       .max = 300000},
  };
  for (auto& key : cost_keys()) keys.push_back(std::move(key));
  for (auto& key : store_keys()) keys.push_back(std::move(key));
  return keys;
}

const ComponentRegistration kRegistration{
    {"processor",
     {"processor",
      "Consumes events, validates, prices tokens, stores in MongoDB and/or InfluxDB and serves "
      "queries.",
      processor_keys()},
     [](ComponentContext& ctx) { return std::make_unique<ProcessorComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::processor
