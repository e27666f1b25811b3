// `telemetryd dlq replay` after a store outage, with the real processor, broker, FerretDB and
// binary: every dead-lettered event stored once after the replay, a second replay stores nothing
// and only counts duplicates, --dry-run sends nothing, and the filters select what they name.
//
// How the outage dead-letters valid events: FerretDB 1.24 keeps a collection in a SQLite table
// (<state>/ferretdb/data/<database>.sqlite, named in _ferretdb_collections). A trigger on the
// token_usage table that raises ABORT fails every insert there; FerretDB answers the whole insert
// command with InternalError (code 1), which the processor classifies as permanent, so it
// dead-letters the whole batch with reason store_rejected, stage store (processor_core.cpp
// flush(), "store refused a batch"). Dropping the trigger lifts the outage. FerretDB 1.24 has no
// per-document rejection that a test can switch on and off: `create` with a validator answers
// NotImplemented, and its only per-document write errors are BadValue on a document's own shape
// and duplicate keys. Once whole-batch store failures are retried instead of dead-lettered, this
// outage dead-letters nothing and the REQUIRE on the dead-letter count says so: the test then
// needs a per-document rejection (a MongoDB validator, code 121) instead.

#include <signal.h>
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/event_feed.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"
#include "support/processor_fixture.hpp"

using namespace test_support;
using namespace std::chrono_literals;

// `telemetryd dlq replay` with the real processor, broker, InfluxDB 1.6.7 and binary, after the
// store refused events: every dead-lettered event stored once after the replay, a second replay
// changes no stored count, --dry-run sends nothing, and the filters select what they name.
//
// Where the dead letters come from: a store outage no longer dead-letters anything. A batch the
// store does not take is paused and retried with backoff (processor_store_errors_total) until
// the store is back, whatever the error; only documents the store refuses one by one for a known
// permanent reason are dead-lettered, with reason store_rejected, stage store. So the dead
// letters replayed here are those of a store that refused documents, for a reason lifted
// afterwards: InfluxDB's retention policy. Before the processor starts, the test creates the
// database WITH DURATION 1h and produces valid events three hours old; InfluxDB answers every
// write 400 "partial write: points beyond retention policy dropped=N". That answer names no
// point, so influx_store.cpp refuses the whole request (docs/influxdb.md); as every valid event is
// beyond the policy, none is stored and every one is dead-lettered: the numbers are exact. The
// test then lifts the condition (ALTER RETENTION POLICY ... DURATION INF) and replays. Malformed
// events beside them are dead-lettered at stage validate, for the --stage filter.

#include <signal.h>
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/event_feed.hpp"
#include "support/http_client.hpp"
#include "support/influx_probe.hpp"
#include "support/kafka_reader.hpp"
#include "support/processor_fixture.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kGpu = 100;
constexpr std::size_t kUsage = 200;
constexpr std::size_t kEvents = kGpu + kUsage;
constexpr std::size_t kMalformed = 20;
// Three hours ago, well beyond the 1h retention policy, whole seconds.
const std::int64_t kOld = (std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count() -
                           3 * 3600) *
                          1000;

// The processor of ProcessorFixture, storing into InfluxDB only (processor.sinks: [influxdb]).
struct InfluxProcessor : ProcessorFixture {
  std::string influx = required_env("TELEMETRYD_TEST_INFLUXDB_URL");
  ~InfluxProcessor() { drop_influx_database(influx, database); }

  std::vector<std::string> argv() const {
    std::vector<std::string> out = processor_argv();
    for (const std::string& set : std::vector<std::string>{
             "processor.sinks=[influxdb]", "influxdb.url=" + influx,
             "influxdb.database=" + database, "influxdb.check_interval_ms=500"}) {
      out.insert(out.end(), {"--set", set});
    }
    return out;
  }
  std::string query(const std::string& q) const { return influx_query(influx, database, q); }
  double points(const std::string& measurement) const {
    return influx_points(influx, database, measurement);
  }
  // The event_id of every point of `measurement`.
  std::multiset<std::string> event_ids(const std::string& measurement) const {
    const std::string json = query("SELECT event_id FROM " + measurement);
    simdjson::dom::parser parser;
    simdjson::dom::array series;
    std::multiset<std::string> ids;
    if (parser.parse(json)["results"].at(0)["series"].get(series)) return ids;
    for (simdjson::dom::element row : series.at(0)["values"].get_array()) {
      ids.insert(std::string(std::string_view(row.at(1))));
    }
    return ids;
  }
  // Waits until both measurements hold their count; returns whether they did.
  bool wait_points(double gpu, double usage, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (points("gpu_metrics") >= gpu && points("token_usage") >= usage) break;
      std::this_thread::sleep_for(250ms);
    }
    std::this_thread::sleep_for(1s);  // an extra point would show up now
    return points("gpu_metrics") == gpu && points("token_usage") == usage;
  }
};

// The default retention policy of `database` (autogen on InfluxDB 1.x) and its duration.
std::pair<std::string, std::string> default_policy(const InfluxProcessor& f) {
  const std::string json = f.query("SHOW RETENTION POLICIES ON \"" + f.database + "\"");
  simdjson::dom::parser parser;
  for (simdjson::dom::element row :
       parser.parse(json)["results"].at(0)["series"].at(0)["values"].get_array()) {
    if (bool(row.at(4))) {
      return {std::string(std::string_view(row.at(0))), std::string(std::string_view(row.at(1)))};
    }
  }
  FAIL("no default retention policy: " << json);
  return {};
}

// Valid events, each at its own second (one point per event in each measurement), all kOld.
std::vector<Message> old_events(const InfluxProcessor& f) {
  namespace events = telemetryd::events;
  std::vector<Message> out;
  for (std::size_t i = 0; i < kGpu; ++i) {
    events::GpuSample s;
    s.gpu_uuid = "GPU-d1a90000-0000-4000-8000-00000000000" + std::to_string(i % 4);
    s.host = "dlq-node-" + std::to_string(i % 2);
    s.model_name = "NVIDIA H200";
    s.collector = "synthetic";
    s.gpu_index = static_cast<std::int64_t>(i % 4);
    s.utilization_gpu_percent = static_cast<double>(i % 100);
    out.push_back(gpu_metrics_event(f.gpu_topic, s, kOld + static_cast<std::int64_t>(i) * 1000,
                                    "//test/dlq"));
  }
  for (std::size_t i = 0; i < kUsage; ++i) {
    events::TokenUsage u;
    u.model = i % 2 == 0 ? "llama-3.1-70b" : "llama-3.1-8b";
    u.tenant_id = "tenant-" + std::to_string(i % 3);
    u.input_tokens = 100 + static_cast<std::int64_t>(i);
    u.output_tokens = 20;
    out.push_back(token_usage_event(f.usage_topic, "dlq-itest-" + std::to_string(i),
                                    kOld + static_cast<std::int64_t>(i) * 1000, u, "//test/dlq"));
  }
  return out;
}

std::string event_id(const std::string& payload) {
  static const std::regex id(R"re("id":"([^"]+)")re");
  std::smatch m;
  return std::regex_search(payload, m, id) ? m[1].str() : std::string();
}

double wait_metric(int port, const std::string& series, double expected,
                   std::chrono::seconds timeout) {
  double value = -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    value = metric(http_get(port, "/metrics").body, series);
    if (value >= expected) break;
    std::this_thread::sleep_for(250ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return value;
}

struct ReplayRun {
  int status = -1;
  std::vector<std::string> letters;  // one JSON line per letter sent (or that would be)
  std::string summary;
  std::string output;
};

ReplayRun replay(const InfluxProcessor& f, std::vector<std::string> args) {
  std::vector<std::string> argv{telemetryd_bin(),
                                "dlq",
                                "replay",
                                "--config",
                                source_root() + "/config/roles/processor.yaml",
                                "--set",
                                "kafka.brokers=" + f.brokers,
                                "--set",
                                "processor.topics.gpu_metrics=" + f.gpu_topic,
                                "--set",
                                "processor.topics.token_usage=" + f.usage_topic};
  argv.insert(argv.end(), args.begin(), args.end());
  ReplayRun run;
  const CommandResult result = run_command(argv);
  run.status = result.status;
  run.output = result.output;
  std::istringstream lines(result.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("{\"dlq_topic\":", 0) == 0) run.letters.push_back(line);
    if (line.rfind("{\"read\":", 0) == 0) run.summary = line;
  }
  return run;
}

std::string header(const ConsumedMessage& m, const std::string& name) {
  for (const auto& [key, value] : m.headers) {
    if (key == name) return value;
  }
  return {};
}

}  // namespace

TEST_CASE("dlq replay restores every event a retention policy refused, once; again, no change",
          "[dlq][processor][influx][itest]") {
  InfluxProcessor f;
  f.query("CREATE DATABASE \"" + f.database + "\" WITH DURATION 1h");
  const auto [policy, duration] = default_policy(f);
  REQUIRE(duration == "1h0m0s");

  const std::vector<Message> events = old_events(f);
  std::multiset<std::string> gpu_ids, usage_ids;
  for (const auto& m : events)
    (m.topic == f.gpu_topic ? gpu_ids : usage_ids).insert(event_id(m.value));
  REQUIRE(std::set<std::string>(gpu_ids.begin(), gpu_ids.end()).size() == kGpu);
  REQUIRE(std::set<std::string>(usage_ids.begin(), usage_ids.end()).size() == kUsage);
  std::vector<Message> all = events;
  for (std::size_t i = 0; i < kMalformed; ++i) {
    all.push_back({f.usage_topic, "bad", "{not json" + std::string(i, ' ')});
  }

  ChildProcess processor(f.argv());
  const int port = listening_port(processor);
  HttpResult ready;
  for (int i = 0; i < 120 && ready.status != 200; ++i) {
    ready = http_get(port, "/ready");
    if (ready.status != 200) std::this_thread::sleep_for(250ms);
  }
  INFO(ready.body);
  REQUIRE(ready.status == 200);

  produce(f.brokers, all);
  const double dead = wait_metric(port, "processor_dead_letters_total", kEvents + kMalformed, 120s);
  INFO("processor log tail:\n"
       << processor.stdout_text().substr(
              processor.stdout_text().size() > 4000 ? processor.stdout_text().size() - 4000 : 0));
  REQUIRE(dead == kEvents + kMalformed);
  // Counted when queued: wait until the letters are in the dead-letter topics themselves.
  const auto letters = read_topics(f.brokers, {f.gpu_topic + ".dlq", f.usage_topic + ".dlq"},
                                   kEvents + kMalformed, 60s);
  REQUIRE(letters.size() == kEvents + kMalformed);
  std::size_t refused = 0;
  for (const auto& m : letters) {
    if (header(m, "x-telemetryd-reason") != "store_rejected") continue;
    ++refused;
    CHECK(header(m, "x-telemetryd-stage") == "store");
    CHECK(header(m, "x-telemetryd-detail").find("points beyond retention policy") !=
          std::string::npos);
  }
  CHECK(refused == kEvents);
  CHECK(f.points("gpu_metrics") == 0);
  CHECK(f.points("token_usage") == 0);
  {
    const std::string text = http_get(port, "/metrics").body;
    CHECK(metric(text, "processor_db_writes_total") == 0);
    CHECK(metric(text, "processor_store_errors_total") == 0);  // refused, not retried
  }

  // Lift the condition: the policy keeps everything from now on.
  f.query("ALTER RETENTION POLICY \"" + policy + "\" ON \"" + f.database + "\" DURATION INF");
  REQUIRE(default_policy(f).second == "0s");

  SECTION("--dry-run prints what would be sent and sends nothing; filters select") {
    const ReplayRun dry = replay(f, {"--reason", "store_rejected", "--dry-run"});
    INFO(dry.output);
    CHECK(dry.status == 0);
    CHECK(dry.letters.size() == kEvents);
    std::size_t to_gpu = 0, to_usage = 0;
    for (const auto& line : dry.letters) {
      CHECK(line.find("\"reason\":\"store_rejected\",\"stage\":\"store\"") != std::string::npos);
      CHECK(line.find("\"dry_run\":true") != std::string::npos);
      if (line.find("\"destination\":\"" + f.gpu_topic + "\"") != std::string::npos) ++to_gpu;
      if (line.find("\"destination\":\"" + f.usage_topic + "\"") != std::string::npos) ++to_usage;
    }
    CHECK(to_gpu == kGpu);
    CHECK(to_usage == kUsage);
    CHECK(dry.summary.find("\"read\":" + std::to_string(kEvents + kMalformed) + ",\"matched\":" +
                           std::to_string(kEvents) + ",\"sent\":0,") != std::string::npos);

    const ReplayRun validate = replay(f, {"--stage", "validate", "--dry-run"});
    INFO(validate.output);
    CHECK(validate.status == 0);
    CHECK(validate.letters.size() == kMalformed);
    for (const auto& line : validate.letters) {
      CHECK(line.find("\"reason\":\"invalid_json\",\"stage\":\"validate\"") != std::string::npos);
      CHECK(line.find("\"key\":\"bad\"") != std::string::npos);
    }

    const ReplayRun old = replay(f, {"--until", "2000-01-01T00:00:00Z", "--dry-run"});
    CHECK(old.status == 0);
    CHECK(old.letters.empty());
    CHECK(old.summary.find("\"matched\":0,") != std::string::npos);

    // Nothing reached the source topics, nothing was stored.
    CHECK(read_topics(f.brokers, {f.gpu_topic, f.usage_topic}, all.size(), 30s).size() ==
          all.size());
    CHECK(f.points("gpu_metrics") == 0);
    CHECK(f.points("token_usage") == 0);
  }

  SECTION("replayed: every event stored once; replayed again: the same points") {
    const ReplayRun first = replay(f, {"--reason", "store_rejected"});
    INFO(first.output);
    REQUIRE(first.status == 0);
    CHECK(first.letters.size() == kEvents);
    CHECK(first.summary.find("\"matched\":" + std::to_string(kEvents) +
                             ",\"sent\":" + std::to_string(kEvents) +
                             ",\"skipped\":0,\"failed\":0") != std::string::npos);
    CHECK(f.wait_points(kGpu, kUsage, 120s));
    CHECK(f.points("gpu_metrics") == kGpu);
    CHECK(f.points("token_usage") == kUsage);
    CHECK(f.event_ids("gpu_metrics") == gpu_ids);
    CHECK(f.event_ids("token_usage") == usage_ids);

    // The replayed messages: the original bytes and key, with their provenance.
    const auto topics =
        read_topics(f.brokers, {f.gpu_topic, f.usage_topic}, all.size() + kEvents, 60s);
    CHECK(topics.size() == all.size() + kEvents);
    std::multiset<std::string> replayed_values;
    for (const auto& m : topics) {
      const std::string from = header(m, "x-telemetryd-replayed-from");
      if (from.empty()) continue;
      CHECK(from.rfind(m.topic + ".dlq/", 0) == 0);
      CHECK(header(m, "x-telemetryd-replay-reason") == "store_rejected");
      CHECK(header(m, "x-telemetryd-reason").empty());
      replayed_values.insert(m.value);
    }
    std::multiset<std::string> original_values;
    for (const auto& m : events) original_values.insert(m.value);
    CHECK(replayed_values == original_values);

    CHECK(wait_metric(port, "processor_db_writes_total", kEvents, 30s) == kEvents);
    std::string text = http_get(port, "/metrics").body;
    CHECK(metric(text, "processor_dead_letters_total") == kEvents + kMalformed);

    // InfluxDB overwrites the same point: the processor counts a write again, the store holds
    // the same points.
    const ReplayRun second = replay(f, {"--reason", "store_rejected"});
    INFO(second.output);
    REQUIRE(second.status == 0);
    CHECK(second.letters.size() == kEvents);
    CHECK(wait_metric(port, "processor_db_writes_total", 2 * kEvents, 120s) == 2 * kEvents);
    std::this_thread::sleep_for(1s);
    CHECK(f.points("gpu_metrics") == kGpu);
    CHECK(f.points("token_usage") == kUsage);
    CHECK(f.event_ids("gpu_metrics") == gpu_ids);
    CHECK(f.event_ids("token_usage") == usage_ids);
    text = http_get(port, "/metrics").body;
    CHECK(metric(text, "processor_dead_letters_total") == kEvents + kMalformed);
    CHECK(metric(text, "processor_duplicates_total") == 0);
  }

  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}
