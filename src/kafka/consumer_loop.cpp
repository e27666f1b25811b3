#include "kafka/consumer_loop.hpp"

#include <set>

#include "telemetryd/log.hpp"

namespace telemetryd::kafka {

using namespace std::chrono_literals;

std::vector<KeySpec> consumer_loop_keys(const std::string& default_group_id) {
  return {
      {.name = "group_id",
       .description = "Kafka consumer group.",
       .default_value = default_group_id},
      {.name = "session_timeout_ms",
       .type = ValueType::kInt,
       .description = "Kafka consumer session timeout: how long a crashed consumer keeps its "
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
}

Properties consumer_properties(const Config& config, const std::string& section) {
  Properties properties = client_properties(config);
  properties["group.id"] = config.str(section + ".group_id");
  // Offsets are stored by the loop only for messages that are done; auto commit then commits
  // those, never what was merely polled.
  properties["enable.auto.commit"] = "true";
  properties["enable.auto.offset.store"] = "false";
  properties["auto.offset.reset"] = "earliest";
  properties["statistics.interval.ms"] = "5000";
  // A topic created after the subscription is otherwise seen only at the next metadata refresh,
  // 5 minutes by default: consumption would not start for that long.
  properties["topic.metadata.refresh.interval.ms"] = "10000";
  properties["session.timeout.ms"] =
      std::to_string(config.integer(section + ".session_timeout_ms"));
  return properties;
}

ConsumerLoopSettings consumer_loop_settings(const Config& config, const std::string& section) {
  ConsumerLoopSettings s;
  s.name = section;
  s.batch_size = static_cast<std::size_t>(config.integer(section + ".batch_size"));
  s.batch_timeout = std::chrono::milliseconds(config.integer(section + ".batch_timeout_ms"));
  s.backoff_initial =
      std::chrono::milliseconds(config.integer(section + ".retry_backoff_initial_ms"));
  s.backoff_max = std::chrono::milliseconds(config.integer(section + ".retry_backoff_max_ms"));
  return s;
}

void remove_partition_lag(metrics::Family<metrics::Gauge>& lag,
                          const rd_kafka_topic_partition_list_t& partitions) {
  for (int i = 0; i < partitions.cnt; ++i) {
    lag.remove({partitions.elems[i].topic, std::to_string(partitions.elems[i].partition)});
  }
}

void apply_lag_stats(metrics::Family<metrics::Gauge>& lag, simdjson::dom::parser& parser,
                     std::string_view json) {
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc)) return;
  simdjson::dom::object topics;
  if (doc["topics"].get(topics)) return;
  for (auto [topic, topic_stats] : topics) {
    simdjson::dom::object partitions;
    if (topic_stats["partitions"].get(partitions)) continue;
    for (auto [partition, p] : partitions) {
      if (partition == "-1") continue;  // librdkafka's internal unassigned partition
      std::int64_t value = -1;
      if (p["consumer_lag"].get(value) || value < 0) {
        // Unknown (not assigned here any more, or no position yet): no value rather than a
        // stale one.
        lag.remove({std::string(topic), std::string(partition)});
        continue;
      }
      lag.with({std::string(topic), std::string(partition)}).set(static_cast<double>(value));
    }
  }
}

ConsumerLoop::ConsumerLoop(const Config& config, const std::string& section,
                           ConsumerLoopSettings settings, core::BatchStage& stage,
                           Readiness& readiness, metrics::Registry& metrics,
                           std::function<void(int)> request_shutdown, Prepare prepare)
    : settings_(std::move(settings)),
      stage_(stage),
      readiness_(readiness),
      request_shutdown_(std::move(request_shutdown)),
      prepare_(std::move(prepare)),
      lag_(metrics.gauge(settings_.name + "_kafka_consumer_lag",
                         "Messages behind the partition's high watermark.",
                         {"topic", "partition"})) {
  readiness_.declare(settings_.name, "starting");
  rd_kafka_conf_t* conf = make_conf(consumer_properties(config, section));
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_rebalance_cb(conf, &ConsumerLoop::on_rebalance);
  rd_kafka_conf_set_stats_cb(conf, &ConsumerLoop::on_stats);
  consumer_ = make_handle_from_conf(RD_KAFKA_CONSUMER, conf);
  rd_kafka_poll_set_consumer(consumer_.get());
}

ConsumerLoop::~ConsumerLoop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void ConsumerLoop::start() {
  thread_ = std::thread([this] { run(); });
}

void ConsumerLoop::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<ConsumerLoop*>(opaque);
  const std::string& name = self->settings_.name;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    log::info(name, "partitions assigned", {{"count", partitions->cnt}});
    // paused_ is left as it is: during an outage flush_until_done pauses the new assignment at
    // its next failure and resumes it all once the store answers again.
    rd_kafka_assign(rk, partitions);
    return;
  }
  // Revoked: finish what can be finished, commit it, and forget the rest (it is redelivered to
  // the partitions' next owner, and stored once thanks to the event id).
  if (self->stage_.pending() > 0) self->flush_once();
  rd_kafka_commit(rk, nullptr, 0);
  std::set<core::PartitionKey> revoked;
  for (int i = 0; i < partitions->cnt; ++i) {
    revoked.insert({partitions->elems[i].topic, partitions->elems[i].partition});
  }
  self->stage_.abandon([&](const core::PartitionKey& key) { return revoked.count(key) > 0; });
  remove_partition_lag(self->lag_, *partitions);
  log::info(name, "partitions revoked", {{"count", partitions->cnt}});
  rd_kafka_assign(rk, nullptr);
}

int ConsumerLoop::on_stats(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<ConsumerLoop*>(opaque);
  apply_lag_stats(self->lag_, self->stats_parser_, std::string_view(json, json_len));
  return 0;  // librdkafka frees json
}

void ConsumerLoop::set_partitions_paused(bool pause) {
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
Result<bool> ConsumerLoop::flush_once() {
  core::DoneOffsets done;
  Result<bool> result = stage_.flush(done);
  if (!result) return result;
  rd_kafka_topic_partition_list_t* offsets =
      rd_kafka_topic_partition_list_new(static_cast<int>(done.size()));
  for (const auto& [key, offset] : done) {
    rd_kafka_topic_partition_list_add(offsets, key.first.c_str(), key.second)->offset = offset + 1;
  }
  if (offsets->cnt > 0) rd_kafka_offsets_store(consumer_.get(), offsets);
  rd_kafka_topic_partition_list_destroy(offsets);
  return true;
}

// Retries until the batch is done or the process stops: an outage pauses consumption (polls keep
// the group membership alive) and never drops the batch.
void ConsumerLoop::flush_until_done() {
  const std::string& name = settings_.name;
  auto backoff = settings_.backoff_initial;
  for (;;) {
    Result<bool> result = flush_once();
    if (result) {
      if (paused_) {
        set_partitions_paused(false);
        log::info(name, "store reachable again, consumption resumed");
      }
      readiness_.set(name, true, "consuming");
      return;
    }
    readiness_.set(name, false, "store unavailable: " + result.error().message);
    // Paused again on every failure (harmless when already paused), so partitions assigned by a
    // rebalance during the outage are held too.
    const bool was_paused = paused_;
    set_partitions_paused(true);
    if (!was_paused) {
      log::warn(name, "store unavailable, consumption paused",
                {{"error", result.error().message}, {"pending", stage_.pending()}});
    }
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (!stopping_ && std::chrono::steady_clock::now() < until) {
      if (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), 100)) {
        // Paused partitions deliver nothing new, but a message fetched before the pause took
        // effect is taken rather than lost.
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) accept(msg);
        rd_kafka_message_destroy(msg);
      }
    }
    if (stopping_) return;
    backoff = std::min(backoff * 2, settings_.backoff_max);
  }
}

void ConsumerLoop::accept(rd_kafka_message_t* msg) {
  const core::IncomingMessage message{
      rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset,
      std::string_view(static_cast<const char*>(msg->key), msg->key_len),
      std::string_view(static_cast<const char*>(msg->payload), msg->len)};
  while (!stage_.accept(message) && !stopping_) {
    // The dead-letter queue is full: wait for deliveries, then retry this same message.
    sleep_unless_stopping(100ms);
  }
}

void ConsumerLoop::prepare() {
  if (!prepare_) return;
  const std::string& name = settings_.name;
  auto backoff = settings_.backoff_initial;
  while (!stopping_) {
    Result<bool> prepared = prepare_();
    if (prepared) {
      log::info(name, "store prepared");
      return;
    }
    readiness_.set(name, false, "preparing store: " + prepared.error().message);
    if (prepared.error().kind == Error::Kind::kPermanent) {
      log::error(name, "cannot prepare the store", {{"error", prepared.error().message}});
      request_shutdown_(1);
      stopping_ = true;
      return;
    }
    sleep_unless_stopping(backoff);
    backoff = std::min(backoff * 2, settings_.backoff_max);
  }
}

// Backoff waits end early on stop, so SIGTERM during an outage drains in bounded time.
void ConsumerLoop::sleep_unless_stopping(std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (!stopping_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
}

void ConsumerLoop::run() {
  const std::string& name = settings_.name;
  prepare();
  if (stopping_) return;
  rd_kafka_topic_partition_list_t* topics =
      rd_kafka_topic_partition_list_new(static_cast<int>(settings_.topics.size()));
  for (const auto& topic : settings_.topics) {
    rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log::error(name, "subscribe failed", {{"error", rd_kafka_err2str(err)}});
    request_shutdown_(1);
    return;
  }
  readiness_.set(name, true, "consuming");
  while (!stopping_) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), 100);
    if (msg != nullptr) {
      if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        accept(msg);
      } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log::warn(name, "consumer error", {{"error", rd_kafka_message_errstr(msg)}});
      }
      rd_kafka_message_destroy(msg);
    }
    const bool full = stage_.pending() >= settings_.batch_size;
    const bool due =
        stage_.pending() > 0 &&
        std::chrono::steady_clock::now() - stage_.oldest_pending() >= settings_.batch_timeout;
    if (full || due) flush_until_done();
  }
  // Stopping: one last attempt unless the store is known to be down (it would only spend the
  // drain's time), then commit what is done; the rest is redelivered next start.
  if (stage_.pending() > 0 && !paused_ && flush_once()) {
    log::info(name, "final batch stored");
  }
  stage_.abandon([](const core::PartitionKey&) { return true; });
  rd_kafka_commit(consumer_.get(), nullptr, 0);
  rd_kafka_consumer_close(consumer_.get());
  log::info(name, "consumer closed");
}

}  // namespace telemetryd::kafka
