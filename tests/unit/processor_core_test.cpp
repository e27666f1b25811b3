// The processor core on the embedded SQLite store (no server): idempotent writes, dead letters,
// enrichment and the reconciliation counters.

#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "app/roles.hpp"
#include "processor/cost_pricer.hpp"
#include "processor/processor_core.hpp"
#include "sqlite/sqlite_store.hpp"
#include "telemetryd/source.hpp"

using namespace telemetryd;
using namespace telemetryd::processor;

namespace {

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("telemetryd-core-" + std::to_string(getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::vector<Event> synthetic(std::size_t count) {
  const Config config = load_config({.role = "producer"}, app::role_catalog());
  auto source = SourceRegistry::instance().find("synthetic")->create(config, Topics{});
  std::vector<Event> events;
  std::string error;
  while (events.size() < count) source->sample(events, error);
  events.resize(count);
  return events;
}

double value_of(const std::string& text, const std::string& series) {
  // Anchored at a line start, so "# HELP <series> ..." never matches.
  const auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

std::int64_t count_rows(const std::string& db_path, const std::string& table) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, ("SELECT count(*) FROM " + table).c_str(), -1, &s, nullptr);
  sqlite3_step(s);
  const std::int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

}  // namespace

TEST_CASE("valid, duplicate and malformed events end stored once, dead-lettered, reconciled",
          "[processor]") {
  TempDir dir;
  const std::string db_path = (dir.path / "t.sqlite3").string();
  sqlite::SqliteStore store(db_path);
  events::GpuCatalog catalog;
  catalog.add({"H100 80GB", "NVIDIA H100 80GB HBM3", 2.49});
  catalog.add({"A100 40GB", "NVIDIA A100-SXM4-40GB", 1.29});
  REQUIRE(store.prepare(catalog));
  metrics::Registry registry;
  TenantLabels tenants({}, 20);
  ProcessorCore core(CoreSettings{}, store, store, registry, tenants);

  const auto events = synthetic(400);
  std::int64_t offset = 0;
  for (const auto& e : events) REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
  for (int i = 0; i < 40; ++i) {  // 40 redeliveries of earlier events
    const auto& e = events[static_cast<std::size_t>(i) * 7];
    REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
  }
  REQUIRE(core.accept({"gpu.metrics.v1", 0, offset++, "k", "{broken"}));
  REQUIRE(core.accept({"token.usage.v1", 0, offset++, "k", events[0].payload}));  // wrong topic
  CHECK(core.pending() == 442);

  std::map<PartitionKey, std::int64_t> done;
  REQUIRE(core.flush(done));
  CHECK(done.at({"token.usage.v1", 0}) == offset - 1);  // the wrong-topic message came last
  CHECK(done.at({"gpu.metrics.v1", 0}) == offset - 2);  // then the broken one
  CHECK(core.pending() == 0);
  CHECK(count_rows(db_path, "gpu_metrics") + count_rows(db_path, "token_usage") == 400);
  CHECK(count_rows(db_path, "dead_letters") == 2);

  const std::string text = registry.expose();
  const double received =
      value_of(text, "processor_messages_consumed_total{topic=\"gpu.metrics.v1\"}") +
      value_of(text, "processor_messages_consumed_total{topic=\"token.usage.v1\"}");
  const double stored = value_of(text, "processor_db_writes_total{collection=\"gpu_metrics\"}") +
                        value_of(text, "processor_db_writes_total{collection=\"token_usage\"}");
  const double dead =
      value_of(text, "processor_dead_letters_total{topic=\"gpu.metrics.v1\",stage=\"validate\"}") +
      value_of(text, "processor_dead_letters_total{topic=\"token.usage.v1\",stage=\"validate\"}");
  CHECK(received == 442);
  CHECK(stored == 400);
  CHECK(dead == 2);
  CHECK(value_of(text, "processor_duplicates_total") == 40);
  CHECK(value_of(text, "processor_in_flight") == 0);

  // A second delivery of the whole stream stores nothing new.
  for (const auto& e : events) REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
  REQUIRE(core.flush(done));
  CHECK(count_rows(db_path, "gpu_metrics") + count_rows(db_path, "token_usage") == 400);
}

TEST_CASE("stored usage documents carry the cost block once their window is priced",
          "[processor]") {
  TempDir dir;
  sqlite::SqliteStore store((dir.path / "c.sqlite3").string());
  REQUIRE(store.prepare(events::GpuCatalog{}));
  metrics::Registry registry;
  TenantLabels tenants({}, 20);
  ProcessorCore core(CoreSettings{}, store, store, registry, tenants);
  CostPricer pricer(PricerSettings{}, store, cost::PriceCatalog::builtin(), registry, tenants);
  std::int64_t offset = 0;
  for (const auto& e : synthetic(300))
    REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
  std::map<PartitionKey, std::int64_t> done;
  REQUIRE(core.flush(done));
  auto usage = store.usage_json({});
  REQUIRE(usage);
  CHECK(usage.value().find("\"priced_requests\":0") != std::string::npos);  // not yet priced
  // Nothing is settled before the settle time has passed since the marks...
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto early = pricer.run_once(now - 60000);
  REQUIRE(early);
  CHECK(early.value() == 0);
  // ...then every marked window is priced.
  std::size_t priced = 0;
  for (int round = 0; round < 100; ++round) {
    const auto r = pricer.run_once(now + 3600000);
    REQUIRE(r);
    if (r.value() == 0) break;
    priced += r.value();
  }
  CHECK(priced > 0);
  usage = store.usage_json({});
  REQUIRE(usage);
  CHECK(usage.value().find("\"_id\":\"llama-3.1-8b-instruct\"") != std::string::npos);
  CHECK(usage.value().find("\"priced_requests\":0") == std::string::npos);
  CHECK(usage.value().find("\"cost_usd\":0,") == std::string::npos);
  const auto latest = store.latest_gpu_json({"", "gpu-node-01"});
  REQUIRE(latest);
  CHECK(latest.value().find("\"host\":\"gpu-node-01\"") != std::string::npos);
  const std::string text = registry.expose();
  CHECK(text.find("processor_cost_per_token_usd{model=\"llama-3.1-8b-instruct\"}") !=
        std::string::npos);
  CHECK(
      text.find("processor_cost_usd_total{model=\"llama-3.1-8b-instruct\",basis=\"amortized\"}") !=
      std::string::npos);
}

namespace {
// A dead-letter destination that refuses at first, like a full Kafka queue or a slow broker.
struct RefusingDeadLetters : DeadLetterSink {
  int refuse_sends = 2;
  int refuse_flushes = 1;
  int accepted = 0;
  bool send(const DeadLetter&) override {
    if (refuse_sends > 0) {
      --refuse_sends;
      return false;
    }
    ++accepted;
    return true;
  }
  bool flush(std::chrono::milliseconds) override {
    if (refuse_flushes > 0) {
      --refuse_flushes;
      return false;
    }
    return true;
  }
};
}  // namespace

TEST_CASE("a refused dead letter is counted nowhere; a retried flush never re-writes or re-counts",
          "[processor]") {
  TempDir dir;
  const std::string db_path = (dir.path / "r.sqlite3").string();
  sqlite::SqliteStore store(db_path);
  events::GpuCatalog catalog;
  REQUIRE(store.prepare(catalog));
  metrics::Registry registry;
  RefusingDeadLetters dead_letters;
  TenantLabels tenants({}, 20);
  ProcessorCore core(CoreSettings{}, store, dead_letters, registry, tenants);

  const auto events = synthetic(50);
  std::int64_t offset = 0;
  for (const auto& e : events) REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
  const IncomingMessage broken{"gpu.metrics.v1", 0, offset++, "k", "{broken"};
  CHECK_FALSE(core.accept(broken));  // refused twice: nothing counted, offset not done
  CHECK_FALSE(core.accept(broken));
  CHECK(core.pending() == 50);
  CHECK(core.accept(broken));
  CHECK(core.pending() == 51);

  std::map<PartitionKey, std::int64_t> done;
  const auto first = core.flush(done);  // written, but the dead letter is not acknowledged yet
  REQUIRE_FALSE(first);
  CHECK(first.error().kind == Error::Kind::kRetryable);
  CHECK(done.empty());
  REQUIRE(core.flush(done));  // resumes at the acknowledgement: no second write
  CHECK(done.at({"gpu.metrics.v1", 0}) == offset - 1);

  const std::string text = registry.expose();
  CHECK(value_of(text, "processor_messages_consumed_total{topic=\"gpu.metrics.v1\"}") +
            value_of(text, "processor_messages_consumed_total{topic=\"token.usage.v1\"}") ==
        51);
  CHECK(value_of(text, "processor_duplicates_total") == 0);
  CHECK(value_of(text,
                 "processor_dead_letters_total{topic=\"gpu.metrics.v1\",stage=\"validate\"}") == 1);
  CHECK(value_of(text, "processor_db_writes_total{collection=\"gpu_metrics\"}") +
            value_of(text, "processor_db_writes_total{collection=\"token_usage\"}") ==
        50);
  CHECK(dead_letters.accepted == 1);
}

TEST_CASE("a batch the store does not take is retried and counted by code, never dead-lettered",
          "[processor]") {
  TempDir dir;
  const std::string db_path = (dir.path / "refuse.sqlite3").string();
  sqlite::SqliteStore store(db_path);
  REQUIRE(store.prepare(events::GpuCatalog{}));
  metrics::Registry registry;
  TenantLabels tenants({}, 20);
  ProcessorCore core(CoreSettings{}, store, store, registry, tenants);

  // The database itself refuses every insert (a trigger, as a schema change or a policy might):
  // the events are valid, so none of them may end in the dead-letter table.
  const auto exec_sql = [&](const char* sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
    sqlite3_free(error);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
  };
  exec_sql(
      "CREATE TRIGGER refuse BEFORE INSERT ON gpu_metrics BEGIN SELECT RAISE(ABORT, 'refused by "
      "policy'); END");

  const auto events = synthetic(60);
  std::int64_t offset = 0;
  for (const auto& e : events) REQUIRE(core.accept({e.topic, 3, offset++, e.key, e.payload}));
  std::map<PartitionKey, std::int64_t> done;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto refused = core.flush(done);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == Error::Kind::kRetryable);
    CHECK(refused.error().message.find("refused by policy") != std::string::npos);
  }
  CHECK(done.empty());
  CHECK(core.pending() == 60);
  CHECK(count_rows(db_path, "dead_letters") == 0);
  std::string text = registry.expose();
  // SQLITE_CONSTRAINT_TRIGGER (1811): the code names what refused it.
  CHECK(value_of(text, "processor_store_errors_total{code=\"sqlite:1811\",class=\"retryable\"}") ==
        3);

  exec_sql("DROP TRIGGER refuse");
  REQUIRE(core.flush(done));
  CHECK(done.at({"gpu.metrics.v1", 3}) + done.at({"token.usage.v1", 3}) > 0);
  CHECK(count_rows(db_path, "gpu_metrics") + count_rows(db_path, "token_usage") == 60);
  CHECK(count_rows(db_path, "dead_letters") == 0);
  text = registry.expose();
  CHECK(value_of(text, "processor_dead_letters_total{topic=\"gpu.metrics.v1\",stage=\"store\"}") ==
        -1);
}
