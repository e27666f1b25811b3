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

namespace {

constexpr std::size_t kEvents = 300;
constexpr std::size_t kMalformed = 20;

// Runs SQL on FerretDB's own SQLite file of `database`, beside the running FerretDB (WAL mode
// lets both write; the busy timeout waits out its transactions).
std::string ferretdb_sql(const std::string& database, const std::string& sql) {
  const std::string path =
      required_env("TELEMETRYD_SERVICES_DIR") + "/ferretdb/data/" + database + ".sqlite";
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  std::string first;
  char* error = nullptr;
  const int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int columns, char** values, char**) {
        auto* text = static_cast<std::string*>(out);
        if (text->empty() && columns > 0 && values[0] != nullptr) *text = values[0];
        return 0;
      },
      &first, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  INFO(sql << ": " << message);
  REQUIRE(rc == SQLITE_OK);
  return first;
}

std::string event_id(const std::string& payload) {
  static const std::regex id(R"re("id":"([^"]+)")re");
  std::smatch m;
  return std::regex_search(payload, m, id) ? m[1].str() : std::string();
}

std::set<std::string> stored_ids(const ProcessorFixture& f) {
  static const std::regex id(R"re("_id" : "([^"]+)")re");
  std::set<std::string> ids;
  for (const auto& doc : find_documents_json(f.mongo, f.database, "token_usage")) {
    std::smatch m;
    if (std::regex_search(doc, m, id)) ids.insert(m[1].str());
  }
  return ids;
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

ReplayRun replay(const ProcessorFixture& f, std::vector<std::string> args) {
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

TEST_CASE("dlq replay restores every event of a store outage once; again, only duplicates",
          "[dlq][processor][itest]") {
  ProcessorFixture f;
  std::vector<Message> events;
  std::set<std::string> ids;
  for (auto& m : synthetic_events(f.gpu_topic, f.usage_topic, 20 * kEvents)) {
    if (m.topic != f.usage_topic || events.size() == kEvents) continue;
    ids.insert(event_id(m.value));
    events.push_back(std::move(m));
  }
  REQUIRE(events.size() == kEvents);
  REQUIRE(ids.size() == kEvents);
  std::vector<Message> all = events;
  for (std::size_t i = 0; i < kMalformed; ++i) {
    all.push_back({f.usage_topic, "bad", "{not json" + std::string(i, ' ')});
  }

  ChildProcess processor(f.processor_argv());
  const int port = listening_port(processor);
  // Ready means the store is prepared: token_usage exists (its indexes), so has its table.
  HttpResult ready;
  for (int i = 0; i < 120 && ready.status != 200; ++i) {
    ready = http_get(port, "/ready");
    if (ready.status != 200) std::this_thread::sleep_for(250ms);
  }
  REQUIRE(ready.status == 200);
  const std::string table = ferretdb_sql(
      f.database, "SELECT table_name FROM _ferretdb_collections WHERE name = 'token_usage'");
  REQUIRE(!table.empty());
  ferretdb_sql(f.database, "CREATE TRIGGER dlq_itest_outage BEFORE INSERT ON \"" + table +
                               "\" BEGIN SELECT RAISE(ABORT, 'store outage (dlq_itest)'); END");

  produce(f.brokers, all);
  const double dead = wait_metric(port, "processor_dead_letters_total", kEvents + kMalformed, 120s);
  INFO("processor log tail:\n"
       << processor.stdout_text().substr(
              processor.stdout_text().size() > 4000 ? processor.stdout_text().size() - 4000 : 0));
  REQUIRE(dead == kEvents + kMalformed);
  CHECK(processor.stdout_text().find("store refused a batch") != std::string::npos);
  // Counted when queued: wait until the letters are in the dead-letter topic itself.
  REQUIRE(read_topics(f.brokers, {f.usage_topic + ".dlq"}, kEvents + kMalformed, 60s).size() ==
          kEvents + kMalformed);
  CHECK(count_documents(f.mongo, f.database, "token_usage") == 0);

  ferretdb_sql(f.database, "DROP TRIGGER dlq_itest_outage");

  SECTION("--dry-run prints what would be sent and sends nothing; filters select") {
    const ReplayRun dry = replay(f, {"--reason", "store_rejected", "--dry-run"});
    INFO(dry.output);
    CHECK(dry.status == 0);
    CHECK(dry.letters.size() == kEvents);
    for (const auto& line : dry.letters) {
      CHECK(line.find("\"reason\":\"store_rejected\",\"stage\":\"store\"") != std::string::npos);
      CHECK(line.find("\"destination\":\"" + f.usage_topic + "\"") != std::string::npos);
      CHECK(line.find("\"dry_run\":true") != std::string::npos);
    }
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

    // Nothing reached the source topic, nothing more was stored.
    CHECK(read_topics(f.brokers, {f.usage_topic}, all.size(), 30s).size() == all.size());
    CHECK(count_documents(f.mongo, f.database, "token_usage") == 0);
  }

  SECTION("replayed: every event stored once; replayed again: only duplicates counted") {
    const ReplayRun first = replay(f, {"--reason", "store_rejected"});
    INFO(first.output);
    REQUIRE(first.status == 0);
    CHECK(first.letters.size() == kEvents);
    CHECK(first.summary.find("\"matched\":" + std::to_string(kEvents) +
                             ",\"sent\":" + std::to_string(kEvents) +
                             ",\"skipped\":0,\"failed\":0") != std::string::npos);
    CHECK(f.wait_stored(kEvents, 120s) == static_cast<std::int64_t>(kEvents));
    CHECK(stored_ids(f) == ids);

    // The replayed messages: the original bytes and key, with their provenance.
    const auto topic = read_topics(f.brokers, {f.usage_topic}, all.size() + kEvents, 60s);
    CHECK(topic.size() == all.size() + kEvents);
    std::multiset<std::string> replayed_values;
    for (const auto& m : topic) {
      const std::string from = header(m, "x-telemetryd-replayed-from");
      if (from.empty()) continue;
      CHECK(from.rfind(f.usage_topic + ".dlq/", 0) == 0);
      CHECK(header(m, "x-telemetryd-replay-reason") == "store_rejected");
      CHECK(header(m, "x-telemetryd-reason").empty());
      replayed_values.insert(m.value);
    }
    std::multiset<std::string> original_values;
    for (const auto& m : events) original_values.insert(m.value);
    CHECK(replayed_values == original_values);

    const std::string text = http_get(port, "/metrics").body;
    CHECK(metric(text, "processor_db_writes_total") == kEvents);
    CHECK(metric(text, "processor_duplicates_total") == 0);

    const ReplayRun second = replay(f, {"--reason", "store_rejected"});
    INFO(second.output);
    REQUIRE(second.status == 0);
    CHECK(second.letters.size() == kEvents);
    CHECK(wait_metric(port, "processor_duplicates_total", kEvents, 120s) == kEvents);
    std::this_thread::sleep_for(1s);
    CHECK(count_documents(f.mongo, f.database, "token_usage") ==
          static_cast<std::int64_t>(kEvents));
    CHECK(stored_ids(f) == ids);
    CHECK(metric(http_get(port, "/metrics").body, "processor_db_writes_total") == kEvents);
  }

  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}
