#include "kafka/consumer_loop.hpp"

#include <charconv>
#include <cstring>
#include <set>

#include "telemetryd/log.hpp"
#include "telemetryd/time_format.hpp"

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
      {.name = "prefetch_max_kbytes",
       .type = ValueType::kInt,
       .description = "Most KiB of messages librdkafka fetches ahead of the batches "
                      "(queued.max.messages.kbytes; it also caps one fetch): the consumer's "
                      "memory bound under a backlog. Draining 60,000 events, a processor peaked "
                      "at 91 MiB RSS with librdkafka's default (65536), 68 with 8192, 58 with "
                      "4096 and 42 with 2048; 4 MiB is about 9 batches of 500 events ahead.",
       .default_value = "4096",
       .min = 1024,
       .max = 2097151},
      {.name = "stall_timeout_s",
       .type = ValueType::kInt,
       .description = "/ready answers 503 when a store call has not returned for this long, or "
                      "when messages wait (lag above 0) and no batch was stored for this long: "
                      "a stalled consumer is not ready even when its store answers pings.",
       .default_value = "60",
       .min = 5,
       .max = 3600},
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
  // try_emplace: a value in kafka.extra_properties still wins, as that key documents.
  properties.try_emplace("queued.max.messages.kbytes",
                         std::to_string(config.integer(section + ".prefetch_max_kbytes")));
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
  s.stall_timeout = std::chrono::seconds(config.integer(section + ".stall_timeout_s"));
  return s;
}

void remove_partition_lag(metrics::Family<metrics::Gauge>& lag,
                          const rd_kafka_topic_partition_list_t& partitions) {
  for (int i = 0; i < partitions.cnt; ++i) {
    lag.remove({partitions.elems[i].topic, std::to_string(partitions.elems[i].partition)});
  }
}

void apply_lag_stats(metrics::Family<metrics::Gauge>& lag, simdjson::dom::parser& parser,
                     std::string_view json, const LagVisitor& visit) {
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
        value = -1;
      } else {
        lag.with({std::string(topic), std::string(partition)}).Set(static_cast<double>(value));
      }
      std::int32_t number = 0;
      if (visit &&
          std::from_chars(partition.data(), partition.data() + partition.size(), number).ec ==
              std::errc{}) {
        visit(topic, number, value);
      }
    }
  }
}

std::optional<double> lag_age_seconds(std::int64_t lag, std::int64_t last_event_ms,
                                      std::int64_t assigned_ms, std::int64_t now_ms) {
  if (lag < 0) return std::nullopt;
  if (lag == 0) return 0.0;
  const std::int64_t since = last_event_ms >= 0 ? last_event_ms : assigned_ms;
  return static_cast<double>(std::max<std::int64_t>(0, now_ms - since)) / 1000.0;
}

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t wall_ms() {
  return unix_ms(std::chrono::system_clock::now());
}

}  // namespace

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
                         {"topic", "partition"})),
      lag_seconds_(metrics.gauge(
          settings_.name + "_kafka_consumer_lag_seconds",
          "Age of the partition's oldest unconsumed event (0 when caught up): what an "
          "autoscaler should scale on, since messages differ in cost and rate.",
          {"topic", "partition"})),
      driver_({.name = settings_.name,
               .batch_size = settings_.batch_size,
               .batch_timeout = settings_.batch_timeout,
               .backoff_initial = settings_.backoff_initial,
               .backoff_max = settings_.backoff_max},
              stage_, *this, readiness_) {
  readiness_.declare(settings_.name, "starting");
  readiness_.guard(settings_.name, [this] { return stalled(); });
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
  readiness_.guard(settings_.name, {});
}

// Read from HTTP threads: only atomics.
std::optional<std::string> ConsumerLoop::stalled() const {
  const std::int64_t now = steady_ms();
  const std::int64_t limit =
      std::chrono::duration_cast<std::chrono::milliseconds>(settings_.stall_timeout).count();
  const std::int64_t call_since = driver_.in_store_call_since_ms();
  if (call_since != 0 && now - call_since > limit) {
    return "stalled: a store call has not returned for " +
           std::to_string((now - call_since) / 1000) + " s";
  }
  const std::int64_t progress = driver_.progress_ms();
  const std::int64_t lag = lag_total_.load();
  if (progress != 0 && lag > 0 && now - progress > limit) {
    return "stalled: " + std::to_string(lag) + " messages wait and nothing was stored for " +
           std::to_string((now - progress) / 1000) + " s";
  }
  return std::nullopt;
}

void ConsumerLoop::start() {
  thread_ = std::thread([this] { run(); });
}

void ConsumerLoop::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<ConsumerLoop*>(opaque);
  // Cooperative (cooperative-sticky): the lists are increments to add or take away, and the
  // rest of the assignment keeps consuming. Eager: every rebalance revokes the whole assignment
  // and assigns a new one.
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->assigned(rk, partitions, cooperative);
  } else {
    self->revoked(rk, partitions, cooperative);
  }
}

void ConsumerLoop::assigned(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* partitions,
                            bool cooperative) {
  log::info(settings_.name, "partitions assigned",
            {{"count", partitions->cnt}, {"protocol", cooperative ? "cooperative" : "eager"}});
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_assign(rk, partitions)) {
      log::error(settings_.name, "incremental assign failed",
                 {{"error", rd_kafka_error_string(error)}});
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(rk, partitions);
  }
  const std::int64_t now = wall_ms();
  for (int i = 0; i < partitions->cnt; ++i) {
    clocks_[{partitions->elems[i].topic, partitions->elems[i].partition}] = {now, -1};
  }
  clock_ = nullptr;  // map nodes are stable, but a reassigned partition starts a new clock
  // During an outage the new partitions wait too (the store cannot take their events); the
  // next successful flush resumes the whole assignment.
  if (driver_.paused()) rd_kafka_pause_partitions(rk, partitions);
}

void ConsumerLoop::revoked(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* partitions,
                           bool cooperative) {
  // Finish what can be finished and commit it, then forget the revoked partitions' rest (it is
  // redelivered to their next owner, and stored once thanks to the event id). A lost assignment
  // (session timed out) can no longer commit: others may own the partitions already.
  const bool lost = rd_kafka_assignment_lost(rk) != 0;
  if (!lost) {
    if (stage_.pending() > 0) driver_.flush_once();
    rd_kafka_commit(rk, nullptr, 0);
  }
  std::set<core::PartitionKey> revoked;
  for (int i = 0; i < partitions->cnt; ++i) {
    revoked.insert({partitions->elems[i].topic, partitions->elems[i].partition});
  }
  stage_.abandon([&](const core::PartitionKey& key) { return revoked.count(key) > 0; });
  remove_partition_lag(lag_, *partitions);
  remove_partition_lag(lag_seconds_, *partitions);
  for (const auto& key : revoked) clocks_.erase(key);
  clock_ = nullptr;
  log::info(settings_.name, lost ? "partitions lost" : "partitions revoked",
            {{"count", partitions->cnt}, {"protocol", cooperative ? "cooperative" : "eager"}});
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk, partitions)) {
      log::error(settings_.name, "incremental unassign failed",
                 {{"error", rd_kafka_error_string(error)}});
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(rk, nullptr);
  }
}

// Served by rd_kafka_consumer_poll, so on the loop's own thread, like the rebalance callback.
int ConsumerLoop::on_stats(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<ConsumerLoop*>(opaque);
  const std::int64_t now = wall_ms();
  std::int64_t total = 0;
  apply_lag_stats(
      self->lag_, self->stats_parser_, std::string_view(json, json_len),
      [&](std::string_view topic, std::int32_t partition, std::int64_t lag) {
        const auto it = self->clocks_.find({std::string(topic), partition});
        std::optional<double> age;
        if (it != self->clocks_.end()) {
          age = lag_age_seconds(lag, it->second.last_event_ms, it->second.assigned_ms, now);
        }
        if (age) {
          self->lag_seconds_.with({std::string(topic), std::to_string(partition)}).Set(*age);
          // A transactional producer leaves a commit marker that no offset is ever stored
          // past, so an idle partition may show lag 1 for good: not something waiting.
          if (lag > 1) total += lag;
        } else {
          self->lag_seconds_.remove({std::string(topic), std::to_string(partition)});
        }
      });
  self->lag_total_ = total;
  // Caught up is progress too: nothing waits, so nothing can be stalled.
  if (total == 0) self->driver_.note_progress();
  return 0;  // librdkafka frees json
}

void ConsumerLoop::note_event_time(const rd_kafka_message_t* msg) {
  if (clock_ == nullptr || clock_topic_ != msg->rkt || clock_partition_ != msg->partition) {
    const auto it = clocks_.find({rd_kafka_topic_name(msg->rkt), msg->partition});
    if (it == clocks_.end()) return;
    clock_ = &it->second;
    clock_topic_ = msg->rkt;
    clock_partition_ = msg->partition;
  }
  rd_kafka_timestamp_type_t type;
  const std::int64_t ts = rd_kafka_message_timestamp(msg, &type);
  if (ts >= 0) clock_->last_event_ms = ts;
}

void ConsumerLoop::set_paused(bool pause) {
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  if (pause) {
    rd_kafka_pause_partitions(consumer_.get(), assignment);
  } else {
    rd_kafka_resume_partitions(consumer_.get(), assignment);
  }
  rd_kafka_topic_partition_list_destroy(assignment);
}

// Stores offset + 1 of each done partition; auto-commit, a revoke or a stop commits them.
void ConsumerLoop::commit(const core::DoneOffsets& done) {
  rd_kafka_topic_partition_list_t* offsets =
      rd_kafka_topic_partition_list_new(static_cast<int>(done.size()));
  for (const auto& [key, offset] : done) {
    rd_kafka_topic_partition_list_add(offsets, key.first.c_str(), key.second)->offset = offset + 1;
  }
  rd_kafka_offsets_store(consumer_.get(), offsets);
  rd_kafka_topic_partition_list_destroy(offsets);
}

// A backoff wait during an outage: polls keep the group membership alive. Paused partitions
// deliver nothing new, but a message fetched before the pause took effect is taken rather than
// lost.
void ConsumerLoop::wait(std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (!stopping_ && std::chrono::steady_clock::now() < until) {
    if (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer_.get(), 100)) {
      if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) accept(msg);
      rd_kafka_message_destroy(msg);
    }
  }
}

void ConsumerLoop::accept(rd_kafka_message_t* msg) {
  note_event_time(msg);
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
  driver_.note_progress();
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
    if (driver_.due()) driver_.flush_until_done();
  }
  // Stopping: one last attempt unless the store is known to be down (it would only spend the
  // drain's time), then commit what is done; the rest is redelivered next start.
  if (stage_.pending() > 0 && !driver_.paused() && driver_.final_flush(1)) {
    log::info(name, "final batch stored");
  }
  stage_.abandon([](const core::PartitionKey&) { return true; });
  rd_kafka_commit(consumer_.get(), nullptr, 0);
  rd_kafka_consumer_close(consumer_.get());
  log::info(name, "consumer closed");
}

}  // namespace telemetryd::kafka
