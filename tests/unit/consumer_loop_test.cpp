// kafka::ConsumerLoop against librdkafka's mock cluster (no broker): every message reaches the
// stage, offsets are committed only up to what the stage reports done, and a failing flush
// pauses, reports not ready and resumes without losing anything.

#include "kafka/consumer_loop.hpp"

#include <librdkafka/rdkafka_mock.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <thread>

#include "app/roles.hpp"

using namespace telemetryd;
using namespace std::chrono_literals;

namespace {

// Keeps what it accepts; reports done only up to `acknowledged_up_to` per partition, and fails
// every flush while `failing` is set, like a store that is away.
class CountingStage final : public core::BatchStage {
 public:
  std::int64_t acknowledged_up_to = INT64_MAX;
  std::atomic<bool> failing{false};
  std::atomic<bool> hanging{false};

  bool accept(const core::IncomingMessage& message) override {
    std::lock_guard lock(mutex_);
    seen_.insert({message.partition, message.offset});
    if (pending_ == 0) oldest_ = std::chrono::steady_clock::now();
    ++pending_;
    highest_[{std::string(message.topic), message.partition}] = message.offset;
    return true;
  }
  std::size_t pending() const override { return pending_; }
  std::chrono::steady_clock::time_point oldest_pending() const override { return oldest_; }
  Result<bool> flush(core::DoneOffsets& done) override {
    while (hanging) std::this_thread::sleep_for(10ms);  // a store call that does not return
    if (failing) {
      ++failed_flushes_;
      return Error::retryable("store away");
    }
    done.clear();
    for (const auto& [key, offset] : highest_) done[key] = std::min(offset, acknowledged_up_to);
    pending_ = 0;
    return true;
  }
  void abandon(const std::function<bool(const core::PartitionKey&)>&) override { pending_ = 0; }

  std::size_t distinct_seen() {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }
  int failed_flushes() const { return failed_flushes_; }

 private:
  std::mutex mutex_;
  std::set<std::pair<std::int32_t, std::int64_t>> seen_;
  core::DoneOffsets highest_;
  std::size_t pending_ = 0;
  std::chrono::steady_clock::time_point oldest_{};
  std::atomic<int> failed_flushes_{0};
};

struct MockCluster {
  rd_kafka_t* owner = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstraps;
  MockCluster() {
    char errstr[256];
    owner = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof errstr);
    REQUIRE(owner != nullptr);
    cluster = rd_kafka_mock_cluster_new(owner, 1);
    REQUIRE(cluster != nullptr);
    bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
    REQUIRE(rd_kafka_mock_topic_create(cluster, "loop.topic", 2, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(owner);
  }

  void produce(int count) const {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), errstr, sizeof errstr);
    rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    REQUIRE(producer != nullptr);
    // rd_kafka_produce rather than producev, whose macros clang -Wpedantic refuses.
    rd_kafka_topic_t* topic = rd_kafka_topic_new(producer, "loop.topic", nullptr);
    for (int i = 0; i < count; ++i) {
      std::string value = "m" + std::to_string(i);
      REQUIRE(rd_kafka_produce(topic, i % 2, RD_KAFKA_MSG_F_COPY, value.data(), value.size(),
                               nullptr, 0, nullptr) == 0);
    }
    rd_kafka_topic_destroy(topic);
    REQUIRE(rd_kafka_flush(producer, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(producer);
  }

  // The group's committed offset per partition (-1001 when none).
  std::vector<std::int64_t> committed(const std::string& group) const {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof errstr);
    rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    REQUIRE(consumer != nullptr);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(list, "loop.topic", 0);
    rd_kafka_topic_partition_list_add(list, "loop.topic", 1);
    REQUIRE(rd_kafka_committed(consumer, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    std::vector<std::int64_t> out{list->elems[0].offset, list->elems[1].offset};
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(consumer);
    return out;
  }
};

Config loop_config(const MockCluster& mock, const std::string& group,
                   std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides{
      "kafka.brokers=" + mock.bootstraps,      "processor.group_id=" + group,
      "processor.session_timeout_ms=6000",     "processor.batch_timeout_ms=20",
      "processor.retry_backoff_initial_ms=10", "processor.retry_backoff_max_ms=50"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return load_config({.role = "processor", .overrides = overrides}, app::role_catalog());
}

kafka::ConsumerLoopSettings settings(const Config& config) {
  kafka::ConsumerLoopSettings s = kafka::consumer_loop_settings(config, "processor");
  s.topics = {"loop.topic"};
  return s;
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  return done();
}

}  // namespace

TEST_CASE("consumer loop: offsets are committed only up to what the stage has done",
          "[kafka][consumer_loop]") {
  MockCluster mock;
  mock.produce(200);  // 100 per partition, offsets 0..99
  const Config config = loop_config(mock, "loop-group-1");
  CountingStage stage;
  stage.acknowledged_up_to = 59;  // e.g. a sink that has 60 per partition durable
  {
    Readiness readiness;
    metrics::Registry registry;
    kafka::ConsumerLoop loop(config, "processor", settings(config), stage, readiness, registry,
                             [](int) {});
    loop.start();
    REQUIRE(wait_until([&] { return stage.distinct_seen() == 200; }, 30s));
    CHECK(wait_until([&] { return readiness.all_ready(); }, 5s));
    loop.stop();
  }  // joins: final flush, commit, close
  CHECK(mock.committed("loop-group-1") == std::vector<std::int64_t>{60, 60});
}

TEST_CASE("consumer loop: a failing flush pauses and retries; nothing is lost or skipped",
          "[kafka][consumer_loop]") {
  MockCluster mock;
  mock.produce(100);
  const Config config = loop_config(mock, "loop-group-2");
  CountingStage stage;
  stage.failing = true;
  {
    Readiness readiness;
    metrics::Registry registry;
    kafka::ConsumerLoop loop(config, "processor", settings(config), stage, readiness, registry,
                             [](int) {});
    loop.start();
    // Not ready ("store unavailable") while it fails, retried with backoff, ready again after.
    REQUIRE(wait_until([&] { return stage.failed_flushes() >= 3 && !readiness.all_ready(); }, 30s));
    stage.failing = false;
    REQUIRE(wait_until([&] { return readiness.all_ready(); }, 30s));
    REQUIRE(wait_until([&] { return stage.distinct_seen() == 100; }, 30s));
    loop.stop();
  }
  CHECK(stage.failed_flushes() >= 3);
  CHECK(mock.committed("loop-group-2") == std::vector<std::int64_t>{50, 50});
}

TEST_CASE("consumer loop: a revoked partition's lag series is removed", "[consumer_loop]") {
  metrics::Registry registry;
  auto& lag = registry.gauge("processor_kafka_consumer_lag", "lag", {"topic", "partition"});
  lag.with({"gpu.events", "0"}).Set(120);
  lag.with({"gpu.events", "1"}).Set(7);
  rd_kafka_topic_partition_list_t* revoked = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(revoked, "gpu.events", 0);
  kafka::remove_partition_lag(lag, *revoked);
  rd_kafka_topic_partition_list_destroy(revoked);

  const std::string text = registry.expose();
  CHECK(text.find(R"(partition="0")") == std::string::npos);
  CHECK(text.find(R"(processor_kafka_consumer_lag{topic="gpu.events",partition="1"} 7)") !=
        std::string::npos);
}

TEST_CASE("consumer loop: statistics set the lag; an unknown lag (-1) drops the series",
          "[consumer_loop]") {
  metrics::Registry registry;
  auto& lag = registry.gauge("processor_kafka_consumer_lag", "lag", {"topic", "partition"});
  simdjson::dom::parser parser;
  kafka::apply_lag_stats(
      lag, parser,
      R"({"topics":{"t":{"partitions":{"0":{"consumer_lag":5},"1":{"consumer_lag":9},)"
      R"("-1":{"consumer_lag":3}}}}})");
  std::string text = registry.expose();
  CHECK(text.find(R"({topic="t",partition="0"} 5)") != std::string::npos);
  CHECK(text.find(R"({topic="t",partition="1"} 9)") != std::string::npos);
  CHECK(text.find(R"(partition="-1")") == std::string::npos);

  // After a revoke librdkafka reports -1 for the partition: the old value must not stay.
  kafka::apply_lag_stats(
      lag, parser,
      R"({"topics":{"t":{"partitions":{"0":{"consumer_lag":-1},"1":{"consumer_lag":4}}}}})");
  text = registry.expose();
  CHECK(text.find(R"(partition="0")") == std::string::npos);
  CHECK(text.find(R"({topic="t",partition="1"} 4)") != std::string::npos);
}

TEST_CASE("consumer loop: lag age is 0 when caught up, else the age of what waits",
          "[consumer_loop]") {
  CHECK_FALSE(kafka::lag_age_seconds(-1, 1000, 0, 5000).has_value());
  CHECK(kafka::lag_age_seconds(0, 1000, 0, 5000) == 0.0);
  // The last event taken was 4 s old: the next one waits at most that long.
  CHECK(kafka::lag_age_seconds(12, 1000, 0, 5000) == 4.0);
  // Nothing taken since the partition was assigned 2.5 s ago: a lower bound that grows.
  CHECK(kafka::lag_age_seconds(12, -1, 2500, 5000) == 2.5);
  CHECK(kafka::lag_age_seconds(3, 9000, 0, 5000) == 0.0);  // an event from the future: clamped
}

TEST_CASE("readiness: a guard overrides a ready check while it names a reason", "[readiness]") {
  Readiness readiness;
  readiness.set("processor", true, "consuming");
  std::optional<std::string> stall;
  readiness.guard("processor", [&] { return stall; });
  CHECK(readiness.all_ready());
  stall = "stalled: 40 messages wait and nothing was stored for 61 s";
  CHECK_FALSE(readiness.all_ready());
  CHECK(readiness.snapshot().front().reason == *stall);
  // A check that is not ready keeps its own reason.
  readiness.set("processor", false, "store unavailable: timeout");
  CHECK(readiness.snapshot().front().reason == "store unavailable: timeout");
  readiness.set("processor", true, "consuming");
  readiness.guard("processor", {});
  CHECK(readiness.all_ready());
}

TEST_CASE("consumer loop: a store call that does not return makes /ready say stalled",
          "[kafka][consumer_loop]") {
  MockCluster mock;
  mock.produce(20);
  const Config config = loop_config(mock, "loop-group-stall", {"processor.stall_timeout_s=5"});
  CountingStage stage;
  {
    Readiness readiness;
    metrics::Registry registry;
    kafka::ConsumerLoop loop(config, "processor", settings(config), stage, readiness, registry,
                             [](int) {});
    loop.start();
    REQUIRE(wait_until([&] { return stage.distinct_seen() == 20 && readiness.all_ready(); }, 30s));
    // The next batch hangs in the store (a server that accepted the connection and went
    // silent): the loop's thread cannot report it, the guard does.
    stage.hanging = true;
    mock.produce(20);
    REQUIRE(wait_until([&] { return !readiness.all_ready(); }, 20s));
    const std::string reason = readiness.snapshot().front().reason;
    CHECK(reason.find("stalled: a store call has not returned for") != std::string::npos);
    stage.hanging = false;
    REQUIRE(wait_until([&] { return readiness.all_ready(); }, 20s));
    CHECK(stage.distinct_seen() == 40);
    loop.stop();
  }
}

TEST_CASE("consumer properties: the prefetch is bounded; kafka.extra_properties still wins",
          "[consumer_loop][kafka]") {
  MockCluster mock;
  const auto defaults = kafka::consumer_properties(loop_config(mock, "g"), "processor");
  CHECK(defaults.at("queued.max.messages.kbytes") == "4096");
  CHECK(defaults.at("enable.auto.offset.store") == "false");
  const auto set = kafka::consumer_properties(
      loop_config(mock, "g", {"processor.prefetch_max_kbytes=2048"}), "processor");
  CHECK(set.at("queued.max.messages.kbytes") == "2048");
  const auto extra = kafka::consumer_properties(
      loop_config(mock, "g", {"kafka.extra_properties=queued.max.messages.kbytes=16384"}),
      "processor");
  CHECK(extra.at("queued.max.messages.kbytes") == "16384");
  CHECK_THROWS_AS(loop_config(mock, "g", {"processor.prefetch_max_kbytes=10"}), ConfigError);
}
