// The processor role end to end against the real broker and FerretDB (the first case also
// against PostgreSQL): exactly the distinct valid events stored, malformed ones dead-lettered
// with reasons, the reconciliation balanced; and the same guarantees across kill -9 and a
// database outage.

#include <signal.h>

#include <catch2/catch.hpp>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/event_feed.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/processor_fixture.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// One body for every store the processor can write to: only the fixture's store differs.
void fifty_thousand_events(StoreKind kind) {
  ProcessorFixture f(kind);
  auto valid = synthetic_events(f.gpu_topic, f.usage_topic, 47000);
  std::vector<Message> all = valid;
  std::mt19937 rng(7);
  for (int i = 0; i < 2500; ++i) all.push_back(valid[rng() % valid.size()]);  // same id again
  const std::vector<std::string> broken = {
      "{not json", "[]", R"({"specversion":"1.0"})",
      R"({"specversion":"1.0","id":"0190f6c2-7a1b-7c3e-9a51-3f0e1b2c4d5e","source":"//t","type":"io.telemetryd.gpu.metrics.v1","time":"2026-01-01T00:00:00Z","data":{"host":"h","model_name":"m","collector":"nvml"}})",
      R"({"specversion":"1.0","id":"0190f6c2-7a1b-7c3e-9a51-3f0e1b2c4d5e","source":"//t","type":"io.telemetryd.token.usage.v1","time":"2026-01-01T00:00:00Z","data":{"model":"m","tenant_id":"t","usage":{"input_tokens":"12","output_tokens":3}}})"};
  std::set<std::string> malformed_values;
  for (int i = 0; i < 500; ++i) {
    // Unique bytes per malformed message, so the DLQ check can match them one to one.
    std::string value =
        broken[i % broken.size()] + std::string(static_cast<std::size_t>(i / broken.size()), ' ');
    malformed_values.insert(value);
    all.push_back({i % 2 ? f.gpu_topic : f.usage_topic, "bad", value});
  }
  std::shuffle(all.begin() + 1000, all.end(), rng);  // duplicates and junk spread through the run
  REQUIRE(all.size() == 50000);
  produce(f.brokers, all);

  ChildProcess processor(f.processor_argv());
  const int port = listening_port(processor);
  CHECK(f.wait_stored(47000, 240s) == 47000);

  const auto dlq = read_topics(f.brokers, {f.gpu_topic + ".dlq", f.usage_topic + ".dlq"}, 500, 60s);
  CHECK(dlq.size() == 500);
  std::set<std::string> dead_values;
  for (const auto& m : dlq) dead_values.insert(m.value);
  CHECK(dead_values == malformed_values);

  // received = stored + dead-lettered + duplicates + in flight + abandoned
  std::this_thread::sleep_for(1s);
  const std::string text = http_get(port, "/metrics").body;
  const double received = metric(text, "processor_messages_consumed_total");
  const double stored = metric(text, "processor_db_writes_total");
  const double dead = metric(text, "processor_dead_letters_total");
  const double duplicates = metric(text, "processor_duplicates_total");
  const double in_flight = metric(text, "processor_in_flight");
  const double abandoned = metric(text, "processor_abandoned_total");
  CHECK(received == 50000);
  CHECK(stored == 47000);
  CHECK(dead == 500);
  CHECK(duplicates == 2500);
  CHECK(received == stored + dead + duplicates + in_flight + abandoned);
  CHECK(metric(text, "processor_invalid_events_total") == 500);
  // Costs come once the events' windows settle (processor.cost.settle_s after the last store)
  // and end: the synthetic events are all from about now, so their window is this minute, which
  // may end up to 60 s after they were made. A fast store (PostgreSQL stores the 47000 in a few
  // seconds) gets here long before that: wait for the window's end, not for the store.
  std::string priced = text;
  for (int i = 0;
       i < 180 && priced.find("processor_cost_per_token_usd{model=\"llama-3.1-8b-instruct\"}") ==
                      std::string::npos;
       ++i) {
    std::this_thread::sleep_for(500ms);
    priced = http_get(port, "/metrics").body;
  }
  {
    const std::string log = processor.stdout_text();
    INFO("processor log tail:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
    CHECK(priced.find("processor_cost_per_token_usd{model=\"llama-3.1-8b-instruct\"}") !=
          std::string::npos);
  }

  CHECK(http_get(port, "/v1/usage?group_by=model").status == 401);
  const auto usage = query(port, "/v1/usage?group_by=model");
  CHECK(usage.status == 200);
  CHECK(usage.body.find("\"_id\":\"llama-3.1-8b-instruct\"") != std::string::npos);
  const auto gpu = query(port, "/gpu/info?host=gpu-node-01");
  CHECK(gpu.status == 200);
  CHECK(gpu.body.find("\"host\":\"gpu-node-01\"") != std::string::npos);
  const auto gpus = query(port, "/v1/gpus");
  CHECK(gpus.body.find("\"_id\":\"H100 80GB\"") != std::string::npos);
  CHECK(gpus.body.find("\"price_per_hour_usd\":2.49") != std::string::npos);

  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}

}  // namespace

TEST_CASE("50000 events with 5% duplicates and 1% malformed: exact store, DLQ, reconciliation",
          "[processor][itest]") {
  fifty_thousand_events(StoreKind::kMongo);
}

TEST_CASE(
    "50000 events into PostgreSQL (processor.sinks: [postgresql]): exact store, DLQ, "
    "reconciliation, queries",
    "[processor][postgresql][itest]") {
  fifty_thousand_events(StoreKind::kPostgres);
}

TEST_CASE("kill -9 mid-stream, then restart: every event stored exactly once",
          "[processor][itest]") {
  ProcessorFixture f;
  const auto events = synthetic_events(f.gpu_topic, f.usage_topic, 30000);
  produce(f.brokers, events);
  {
    ChildProcess first(f.processor_argv());
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (f.stored() < 5000 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(50ms);
    const auto before_kill = f.stored();
    INFO("stored before kill: " << before_kill);
    REQUIRE(before_kill >= 5000);
    REQUIRE(before_kill < 30000);  // really mid-stream
    first.send_signal(SIGKILL);
    REQUIRE(first.wait_exit(10s) == 128 + SIGKILL);
  }
  ChildProcess second(f.processor_argv());
  CHECK(f.wait_stored(30000, 240s) == 30000);
  second.send_signal(SIGTERM);
  CHECK(second.wait_exit(20s) == 0);
}

namespace {

// The store's server down for 20 s mid-stream, one body for every store: the fixture's store,
// the services.sh service that serves it and the name of its /ready check differ.
void store_down_mid_stream(StoreKind kind) {
  ProcessorFixture f(kind);
  const bool postgres = kind == StoreKind::kPostgres;
  const std::string service = postgres ? "postgresql" : "ferretdb";
  const std::string check = postgres ? "postgresql" : "mongodb";
  // services.sh reads the port to stop and start from the environment.
  const auto services = [&](const char* verb) {
    std::vector<std::string> argv{source_root() + "/scripts/services.sh", verb, service};
    if (postgres) {
      argv.insert(argv.begin(), {"env", "TELEMETRYD_POSTGRES_PORT=" + f.postgres->server.port});
    }
    return run_command(argv);
  };
  ChildProcess processor(f.processor_argv());
  const int port = listening_port(processor);
  // A producer run that outlasts the outage: 36000 events at 1200/s take about 30 s.
  ChildProcess producer({telemetryd_bin(), "run", "--role", "producer", "--count", "36000", "--set",
                         "producer.rate=1200", "--set", "http.listen=127.0.0.1:0", "--set",
                         "kafka.brokers=" + f.brokers, "--set",
                         "producer.topics.gpu_metrics=" + f.gpu_topic, "--set",
                         "producer.topics.token_usage=" + f.usage_topic});
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (f.stored() < 2000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  REQUIRE(f.stored() >= 2000);

  const auto stop = services("down");
  INFO(stop.output);
  REQUIRE(stop.status == 0);
  bool reported = false;
  const auto outage_end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < outage_end) {
    const auto ready = http_get(port, "/ready");
    if (ready.status == 503 &&
        ready.body.find("\"name\":\"" + check + "\",\"ready\":false") != std::string::npos) {
      reported = true;
    }
    std::this_thread::sleep_for(500ms);
  }
  CHECK(reported);
  const auto start = services("up");
  INFO(start.output);
  REQUIRE(start.status == 0);

  REQUIRE(producer.wait_exit(120s) == 0);
  const auto stored = f.wait_stored(36000, 240s);
  const std::string log = processor.stdout_text();
  INFO("processor log tail:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  CHECK(stored == 36000);
  HttpResult ready;
  for (int i = 0; i < 40 && ready.status != 200; ++i) {
    ready = http_get(port, "/ready");
    std::this_thread::sleep_for(250ms);
  }
  CHECK(ready.status == 200);
  CHECK(processor.stdout_text().find("consumption resumed") != std::string::npos);
  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}

}  // namespace

TEST_CASE("FerretDB down for 20 s mid-stream: nothing lost, /ready reports it, resumes itself",
          "[processor][itest]") {
  store_down_mid_stream(StoreKind::kMongo);
}

TEST_CASE("PostgreSQL down for 20 s mid-stream: nothing lost, /ready reports it, resumes itself",
          "[processor][postgresql][itest]") {
  store_down_mid_stream(StoreKind::kPostgres);
}

TEST_CASE("a document the MongoDB driver refuses is dead-lettered alone; its batch is stored",
          "[processor][itest]") {
  ProcessorFixture f;
  auto valid = synthetic_events(f.gpu_topic, f.usage_topic, 200);
  // Valid CloudEvents whose data holds a key libmongoc will not encode (empty): the driver
  // refuses the whole insert_many before sending it, with no per-document answer. Neither
  // retrying that batch (forever) nor dead-lettering it (199 valid events) is right.
  std::vector<Message> all;
  std::set<std::string> refused;
  for (std::size_t i = 0; i < valid.size(); ++i) {
    if (i % 50 == 25) {
      Message m = valid[i];
      const auto at = m.value.find("\"data\":{");
      REQUIRE(at != std::string::npos);
      m.value.insert(at + 8, "\"\":1,");
      refused.insert(m.value);
      all.push_back(m);
    } else {
      all.push_back(valid[i]);
    }
  }
  produce(f.brokers, all);
  ChildProcess processor(f.processor_argv());
  const int port = listening_port(processor);
  const auto dlq =
      read_topics(f.brokers, {f.gpu_topic + ".dlq", f.usage_topic + ".dlq"}, refused.size(), 60s);
  CHECK(f.wait_stored(static_cast<std::int64_t>(valid.size() - refused.size()), 60s) ==
        static_cast<std::int64_t>(valid.size() - refused.size()));
  std::set<std::string> dead;
  for (const auto& m : dlq) dead.insert(m.value);
  CHECK(dead == refused);
  const std::string text = http_get(port, "/metrics").body;
  CHECK(metric(text, "processor_dead_letters_total") == static_cast<double>(refused.size()));
}
