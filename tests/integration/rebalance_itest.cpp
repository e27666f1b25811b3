// Scale-out against real Kafka and FerretDB: processors in one consumer group on a 6-partition
// topic go 1 -> 3 -> 1 while a producer runs, and one of them is killed with SIGKILL mid-batch.
// Every event must end stored exactly once, the members' final counts must add up to what was
// produced, and no partition may stall. Run with eager assignment (librdkafka's default) and with
// cooperative-sticky (incremental assign/unassign).

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "events/cloudevent.hpp"
#include "events/event_id.hpp"
#include "events/gpu_metrics.hpp"
#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/kafka_writer.hpp"
#include "support/mongo_probe.hpp"
#include "support/processor_fixture.hpp"

using namespace test_support;
using namespace std::chrono_literals;
namespace events = telemetryd::events;

namespace {

constexpr int kPartitions = 6;
constexpr int kEvents = 6000;
constexpr int kPerSecond = 300;

// One sample of one of 48 GPUs (keys spread over every partition), with an id of its own.
Message sample(const std::string& topic, int n) {
  events::GpuSample s;
  s.gpu_uuid = "GPU-5ca1e0u7-0000-4000-8000-0000000000" + std::to_string(10 + n % 48);
  s.host = "rebalance-node-" + std::to_string(n % 6);
  s.model_name = "NVIDIA H200";
  s.collector = "synthetic";
  s.gpu_index = n % 8;
  s.utilization_gpu_percent = n % 100;
  const auto now = std::chrono::system_clock::now();
  const std::int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::string id = events::deterministic_uuid_v7(ms, "rebalance-" + std::to_string(n));
  return {topic, s.gpu_uuid,
          events::encode_cloudevent(id, "//test/rebalance", "io.telemetryd.gpu.metrics.v1", now,
                                    s.gpu_uuid, events::encode_gpu_metrics_data(s))};
}

// A "final counts" log line's field.
std::int64_t final_count(const ChildProcess& child, const std::string& field) {
  const std::string out = child.stdout_text();
  const auto line = out.rfind("\"msg\":\"final counts\"");
  if (line == std::string::npos) return -1;
  const auto at = out.find("\"" + field + "\":", line);
  return at == std::string::npos ? -1 : std::atoll(out.c_str() + at + field.size() + 3);
}

std::string log_tail(const ChildProcess& child) {
  const std::string log = child.stdout_text() + child.stderr_text();
  return log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
}

struct Member {
  std::unique_ptr<ChildProcess> child;
  int port = 0;
};

struct Group {
  std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string topic;
  std::string usage_topic;
  std::string database;
  std::string group;
  std::string strategy;  // empty: librdkafka's default (eager range,roundrobin)

  Member start() const {
    std::vector<std::string> argv =
        processor_command({brokers, mongo, database, group, topic, usage_topic},
                          {"processor.session_timeout_ms=6000", "processor.batch_size=200"});
    if (!strategy.empty()) {
      argv.push_back("--set");
      argv.push_back("kafka.extra_properties=partition.assignment.strategy=" + strategy);
    }
    Member m;
    m.child = std::make_unique<ChildProcess>(argv);
    m.port = listening_port(*m.child);
    return m;
  }

  std::int64_t stored() const { return count_documents(mongo, database, "gpu_metrics"); }
};

bool wait_until(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(250ms);
  }
  return true;
}

bool ready(const Member& m) {
  return http_get(m.port, "/ready").status == 200;
}

void scale_out_and_in(const std::string& strategy) {
  Group g;
  g.strategy = strategy;
  const std::string tag = strategy.empty() ? "eager" : "coop";
  g.topic = unique_topic("rebalance-" + tag);
  g.usage_topic = unique_topic("rebalance-usage-" + tag);
  g.database = "rebalance_" + tag + "_" + std::to_string(getpid());
  g.group = unique_topic("rebalance-group-" + tag);
  create_topics(g.brokers, {g.topic, g.usage_topic}, kPartitions);
  struct Drop {
    const Group& g;
    ~Drop() { drop_database(g.mongo, g.database); }
  } drop{g};

  Member first = g.start();
  REQUIRE(wait_until([&] { return ready(first); }, 60s));

  // The producer: kEvents at kPerSecond, one batch a second, while members come and go.
  std::atomic<int> produced{0};
  std::thread producer([&] {
    for (int n = 0; n < kEvents;) {
      std::vector<Message> batch;
      for (int i = 0; i < kPerSecond && n < kEvents; ++i) batch.push_back(sample(g.topic, n++));
      produce(g.brokers, batch);
      produced = n;
      std::this_thread::sleep_for(1s);
    }
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{producer};

  // 1 -> 3.
  REQUIRE(wait_until([&] { return produced >= kPerSecond * 2; }, 30s));
  Member second = g.start();
  Member third = g.start();
  REQUIRE(wait_until(
      [&] {
        return second.child->stdout_text().find("\"msg\":\"partitions assigned\"") !=
                   std::string::npos &&
               third.child->stdout_text().find("\"msg\":\"partitions assigned\"") !=
                   std::string::npos;
      },
      60s));
  // Mid-batch: events keep flowing to the second member, which stores them in batches of 200.
  REQUIRE(wait_until(
      [&] {
        return metric(http_get(second.port, "/metrics").body, "processor_db_writes_total") > 0;
      },
      60s));
  const double second_stored_seen =
      metric(http_get(second.port, "/metrics").body, "processor_db_writes_total");
  second.child->send_signal(SIGKILL);
  REQUIRE(second.child->wait_exit(10s));

  // 3 -> 1: the third leaves cleanly (its final flush, commit and "final counts").
  std::this_thread::sleep_for(3s);
  third.child->send_signal(SIGTERM);
  const auto third_exit = third.child->wait_exit(60s);
  REQUIRE(third_exit);
  CHECK(*third_exit == 0);

  producer.join();
  INFO("strategy " << (strategy.empty() ? "eager (default)" : strategy));
  const bool all_stored = wait_until([&] { return g.stored() >= kEvents; }, 120s);
  INFO("first:\n" << log_tail(*first.child) << "\nthird:\n" << log_tail(*third.child));
  REQUIRE(all_stored);

  // No partition stalls: the survivor owns all six again and reports each caught up, in
  // messages and in seconds.
  std::string text;
  const bool caught_up = wait_until(
      [&] {
        text = http_get(first.port, "/metrics").body;
        int series = 0;
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
          if (line.rfind("processor_kafka_consumer_lag{topic=\"" + g.topic + "\"", 0) != 0)
            continue;
          ++series;
          if (std::stod(line.substr(line.rfind(' ') + 1)) != 0) return false;
        }
        return series == kPartitions;
      },
      30s);
  INFO(text.substr(0, 4000));
  CHECK(caught_up);
  CHECK(text.find("processor_kafka_consumer_lag_seconds{topic=\"" + g.topic + "\"") !=
        std::string::npos);
  CHECK(metric(text, "processor_kafka_consumer_lag_seconds") == 0);
  CHECK(ready(first));
  if (!strategy.empty()) {
    // The incremental path ran: rebalances gave and took partitions without a full revoke.
    CHECK(first.child->stdout_text().find("\"protocol\":\"cooperative\"") != std::string::npos);
  }

  first.child->send_signal(SIGTERM);
  const auto first_exit = first.child->wait_exit(60s);
  REQUIRE(first_exit);
  CHECK(*first_exit == 0);

  // Exactly once: the unique database holds every produced id once (_id is the event id, so
  // the count is the number of distinct ids stored, all of them from this run).
  CHECK(g.stored() == kEvents);
  // The members' own books balance: received = stored + duplicates + dead-lettered + abandoned
  // + still in flight, for each member that stopped cleanly ...
  for (const Member* m : {&first, &third}) {
    CHECK(final_count(*m->child, "consumed") ==
          final_count(*m->child, "stored") + final_count(*m->child, "duplicates") +
              final_count(*m->child, "dead_lettered") + final_count(*m->child, "abandoned") +
              final_count(*m->child, "in_flight"));
    CHECK(final_count(*m->child, "dead_lettered") == 0);
    CHECK(final_count(*m->child, "in_flight") == 0);
  }
  // ... and across the group the inserts add up to what was produced: what the survivors
  // inserted, plus what the killed member inserted (at least what it had reported before the
  // kill; its counters died with it), is every event, none inserted twice.
  const std::int64_t survivors_stored =
      final_count(*first.child, "stored") + final_count(*third.child, "stored");
  const std::int64_t killed_stored = kEvents - survivors_stored;
  WARN("rebalance " << tag << ": produced " << kEvents << ", survivors stored " << survivors_stored
                    << " (duplicates "
                    << final_count(*first.child, "duplicates") +
                           final_count(*third.child, "duplicates")
                    << "), the killed member " << killed_stored << " (reported "
                    << second_stored_seen << " before the kill)");
  CHECK(killed_stored >= static_cast<std::int64_t>(second_stored_seen));
  CHECK(killed_stored <= kEvents);
}

}  // namespace

TEST_CASE("rebalance: 1 -> 3 -> 1 processors with one killed, eager assignment, exactly once",
          "[integration][rebalance]") {
  scale_out_and_in("");
}

TEST_CASE("rebalance: 1 -> 3 -> 1 processors with one killed, cooperative-sticky, exactly once",
          "[integration][rebalance]") {
  scale_out_and_in("cooperative-sticky");
}
