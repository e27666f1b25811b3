// The PostgreSQL sink against the real server scripts/services.sh started (PostgreSQL 15):
// exact counts, redeliveries counted as duplicates and never stored twice, a row the server
// refuses rejected alone, an outage answered as retryable and recovered from, the query JSON
// the same as SqliteStore's for the same events, the cost windows, the latest view and the usage
// rollups (the oldest settled marks first, a database from before them upgraded, rollers racing
// each other and the writer). Rows are counted with libpq directly (support/postgres_probe.hpp),
// not through the sink.

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "app/roles.hpp"
#include "cost/cost_model.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/child_process.hpp"
#include "support/postgres_probe.hpp"
#include "support/store_events.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/sink.hpp"
#include "telemetryd/time_format.hpp"

using namespace telemetryd;
using namespace telemetryd::events;
using namespace telemetryd::query;
using namespace test_support;
using namespace test_support::store_events;

namespace {

constexpr std::int64_t kW = 60000;
constexpr std::int64_t kS = 1796378400000;  // 2026-12-04T10:00:00Z, on the minute grid

// The sink as the processor builds it: registered, from the role file's validated
// `postgresql:` section.
// `sets` replace the database's (a key set twice: the last one wins).
std::unique_ptr<Store> make_store(const PostgresDatabase& db,
                                  const std::vector<std::string>& more = {}) {
  std::vector<std::string> sets = db.processor_sets();
  sets.insert(sets.end(), more.begin(), more.end());
  const Config config = load_config({.role = "processor", .overrides = sets}, app::role_catalog());
  const SinkInfo* sink = SinkRegistry::instance().find("postgresql");
  REQUIRE(sink != nullptr);
  return sink->create(config);
}

// A sample of an H100 (its utilisation unless `fields` says otherwise), and a usage event.
std::string gpu_event(int n, std::int64_t time_ms, const std::string& uuid, const std::string& host,
                      const std::string& fields = R"("utilization_gpu_percent":50)") {
  return gpu_json(n, time_ms, uuid, host, "NVIDIA H100 80GB HBM3", fields);
}

std::string usage_event(int n, std::int64_t time_ms, const std::string& model,
                        const std::string& tenant, std::int64_t input, std::int64_t output,
                        const std::string& fields = "") {
  return usage_json_event(n, time_ms, model, tenant, input, output, fields);
}

// JSON with object keys sorted, numbers printed alike and `received_at` (the time of the write)
// left out: two stores' answers compare equal when they hold the same data in the same shape.
void canonical(simdjson::dom::element e, std::ostringstream& out) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      std::map<std::string, simdjson::dom::element> sorted;
      for (auto field : e.get_object()) {
        if (field.key != "received_at") sorted.emplace(std::string(field.key), field.value);
      }
      out << '{';
      for (const auto& [key, value] : sorted) {
        out << '"' << key << "\":";
        canonical(value, out);
        out << ',';
      }
      out << '}';
      break;
    }
    case simdjson::dom::element_type::ARRAY:
      out << '[';
      for (auto item : e.get_array()) {
        canonical(item, out);
        out << ',';
      }
      out << ']';
      break;
    case simdjson::dom::element_type::STRING:
      out << '"' << e.get_string().value() << '"';
      break;
    case simdjson::dom::element_type::BOOL:
      out << (e.get_bool().value() ? "true" : "false");
      break;
    case simdjson::dom::element_type::NULL_VALUE:
      out << "null";
      break;
    default: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.9g", e.get_double().value());
      out << buf;
    }
  }
}

std::string canonical(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  INFO(json);
  REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
  std::ostringstream out;
  canonical(root, out);
  return out.str();
}

// The same answer from both stores (Result<std::string> each), compared canonically.
#define CHECK_SAME_JSON(pg_call, sqlite_call)                                \
  do {                                                                       \
    auto pg_answer = (pg_call);                                              \
    auto sqlite_answer = (sqlite_call);                                      \
    INFO((pg_answer ? std::string() : pg_answer.error().message));           \
    REQUIRE(pg_answer);                                                      \
    REQUIRE(sqlite_answer);                                                  \
    INFO("postgresql: " << pg_answer.value());                               \
    INFO("sqlite:     " << sqlite_answer.value());                           \
    CHECK(canonical(pg_answer.value()) == canonical(sqlite_answer.value())); \
  } while (false)

}  // namespace

TEST_CASE("PostgreSQL sink: exact counts, redeliveries are duplicates, never stored twice",
          "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  GpuCatalog catalog;
  catalog.add({"H100 80GB", "NVIDIA H100 80GB HBM3", 2.49});
  catalog.add({"A100 40GB", "NVIDIA A100-SXM4-40GB", 1.29});
  REQUIRE(store->prepare(catalog));
  REQUIRE(store->prepare(catalog));  // idempotent: CREATE ... IF NOT EXISTS, catalog upserted
  CHECK(db.count("gpus") == 2);

  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) {
    lines.push_back(i % 3 == 0 ? usage_event(i, kS + i, "m" + std::to_string(i % 2), "t", 10, 20)
                               : gpu_event(i, kS + i, "GPU-" + std::to_string(i % 7), "node-a"));
  }
  const auto events = decode_all(lines);
  auto first = store->write(batch_of(events));
  REQUIRE(first);
  CHECK(first.value().gpu_metrics_inserted == 200);
  CHECK(first.value().token_usage_inserted == 100);
  CHECK(first.value().duplicates == 0);
  CHECK(first.value().rejected.empty());
  CHECK(db.count("gpu_metrics") == 200);
  CHECK(db.count("token_usage") == 100);
  CHECK(db.count("gpu_latest") == 7);

  // The whole batch again (a redelivery after a lost commit): every row a duplicate.
  auto again = store->write(batch_of(events));
  REQUIRE(again);
  CHECK(again.value().gpu_metrics_inserted == 0);
  CHECK(again.value().token_usage_inserted == 0);
  CHECK(again.value().duplicates == 300);
  std::vector<std::size_t> all(300);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  CHECK(again.value().duplicate_indexes == all);

  // New events mixed with old ones, and one id twice in the same batch: the first occurrence
  // is stored, the later one and the old ones are duplicates, by batch index.
  const auto mixed = decode_all({gpu_event(1000, kS + 1000, "GPU-0", "node-a"), lines[1],
                                 usage_event(1001, kS + 1001, "m0", "t", 1, 2),
                                 gpu_event(1000, kS + 1000, "GPU-0", "node-a"), lines[3]});
  auto third = store->write(batch_of(mixed));
  REQUIRE(third);
  CHECK(third.value().gpu_metrics_inserted == 1);
  CHECK(third.value().token_usage_inserted == 1);
  CHECK(third.value().duplicates == 3);
  CHECK(third.value().duplicate_indexes == std::vector<std::size_t>{1, 3, 4});
  CHECK(db.count("gpu_metrics") == 201);
  CHECK(db.count("token_usage") == 101);

  // The stored document: the envelope fields, then the event's data, as jsonb.
  CHECK(db.count("gpu_metrics", "doc->>'_id' = '" + event_id(1) +
                                    "' AND doc->>'source' = '//test/store' AND doc->>'host' = "
                                    "'node-a' AND doc ? 'received_at' AND doc->>'ts' LIKE "
                                    "'2026-12-04T10:00:00.001%'") == 1);
  CHECK(db.count("token_usage", "id = '" + event_id(0) +
                                    "' AND input_tokens = 10 AND output_tokens = 20 AND "
                                    "(doc #>> '{usage,output_tokens}')::int = 20") == 1);
  auto empty = store->write({});
  REQUIRE(empty);
  CHECK(empty.value().duplicates == 0);
}

TEST_CASE("PostgreSQL sink: a row the server refuses is rejected alone; the batch is stored",
          "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  REQUIRE(store->prepare(GpuCatalog{}));
  // jsonb cannot hold \u0000 (SQLSTATE 22P05): valid JSON and a valid event, refused by the
  // server alone. A number beyond jsonb's numeric range is not: jsonb keeps any JSON number.
  const auto events = decode_all({
      gpu_event(1, kS, "GPU-A", "node-a"),
      usage_event(2, kS, "m", "t", 1, 2, R"("deployment":"bad\u0000name")"),
      gpu_event(3, kS + 1, "GPU-A", "node-a"),
      gpu_event(4, kS + 2, "GPU-B", "node-b", R"("note":"nul \u0000 here")"),
      usage_event(5, kS, "m", "t", 1, 2),
  });
  auto outcome = store->write(batch_of(events));
  REQUIRE(outcome);
  REQUIRE(outcome.value().rejected.size() == 2);
  CHECK(outcome.value().rejected[0].first == 1);
  CHECK(outcome.value().rejected[1].first == 3);
  CHECK(outcome.value().rejected[1].second.find("postgresql") != std::string::npos);
  CHECK(outcome.value().gpu_metrics_inserted == 2);
  CHECK(outcome.value().token_usage_inserted == 1);
  CHECK(outcome.value().duplicates == 0);
  CHECK(db.count("gpu_metrics") == 2);
  CHECK(db.count("token_usage") == 1);
  CHECK(db.count("gpu_latest") == 1);  // GPU-B's only sample was refused

  // Redelivered: the stored ones are duplicates, the refused ones refused again.
  auto again = store->write(batch_of(events));
  REQUIRE(again);
  CHECK(again.value().rejected.size() == 2);
  CHECK(again.value().duplicates == 3);
  CHECK(again.value().duplicate_indexes == std::vector<std::size_t>{0, 2, 4});
}

TEST_CASE("PostgreSQL sink: server stopped -> retryable errors; the same store recovers",
          "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  REQUIRE(store->prepare(GpuCatalog{}));
  const auto before = decode_all({gpu_event(1, kS, "GPU-A", "node-a")});
  REQUIRE(store->write(batch_of(before)));

  const std::string script = source_root() + "/scripts/services.sh";
  const std::string port = "TELEMETRYD_POSTGRES_PORT=" + db.server.port;
  const auto stop = run_command({"env", port, script, "down", "postgresql"});
  INFO(stop.output);
  REQUIRE(stop.status == 0);

  const auto during = decode_all({gpu_event(2, kS + 1, "GPU-A", "node-a")});
  auto failed = store->write(batch_of(during));
  REQUIRE_FALSE(failed);
  CHECK(failed.error().kind == Error::Kind::kRetryable);
  auto query = store->usage_json(UsageQuery{});
  REQUIRE_FALSE(query);
  CHECK(query.error().kind == Error::Kind::kRetryable);
  auto mark = store->mark_cost_windows({kS}, 1, 1);
  REQUIRE_FALSE(mark);
  CHECK(mark.error().kind == Error::Kind::kRetryable);

  const auto start = run_command({"env", port, script, "up", "postgresql"});
  INFO(start.output);
  REQUIRE(start.status == 0);

  // The next call connects again; the batch that failed is stored once.
  auto retried = store->write(batch_of(during));
  INFO((retried ? std::string() : retried.error().message));
  REQUIRE(retried);
  CHECK(retried.value().gpu_metrics_inserted == 1);
  CHECK(db.count("gpu_metrics") == 2);
  REQUIRE(store->write(batch_of(during)).value().duplicates == 1);
}

TEST_CASE("PostgreSQL sink answers the queries as SqliteStore does for the same events",
          "[postgresql][itest]") {
  PostgresDatabase db;
  auto pg = make_store(db);
  const std::string path = "/tmp/telemetryd-pgitest-" + std::to_string(getpid()) + ".sqlite3";
  std::remove(path.c_str());
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    }
  } cleanup{path};
  sqlite::SqliteStore lite(path);
  GpuCatalog catalog;
  catalog.add({"H100 80GB", "NVIDIA H100 80GB HBM3", 2.49});
  catalog.add({"A100 40GB", "NVIDIA A100-SXM4-40GB", 1.29});
  REQUIRE(pg->prepare(catalog));
  REQUIRE(lite.prepare(catalog));

  const auto events = decode_all({
      gpu_event(
          1, kS, "GPU-B", "node-b",
          R"("utilization_gpu_percent":10.5,"memory_used_bytes":1000,"memory_total_bytes":80000,"power_draw_watts":300.25,"temperature_gpu_celsius":60,"activity":{"sm_active_percent":40.5})"),
      gpu_event(2, kS + 1500, "GPU-A", "node-a",
                R"("utilization_gpu_percent":20,"memory_used_bytes":3000,"clock_sm_mhz":1980)"),
      gpu_event(3, kS + 2500, "GPU-A", "node-a",
                R"("utilization_gpu_percent":30,"memory_used_bytes":5000,"clock_sm_mhz":1700)"),
      gpu_event(4, kS + 4000, "GPU-B", "node-b", R"("utilization_gpu_percent":70.5)"),
      usage_event(10, kS, "llama", "acme", 100, 200, R"("deployment":"d1")"),
      usage_event(11, kS + 10, "llama", "globex", 5, 7),
      usage_event(12, kS + kW, "mistral", "acme", 1, 1, R"("deployment":"d2")"),
  });
  REQUIRE(pg->write(batch_of(events)));
  REQUIRE(lite.write(batch_of(events)));

  CHECK_SAME_JSON(pg->gpus_json(), lite.gpus_json());
  for (const char* group : {"model", "tenant", "deployment"}) {
    UsageQuery q;
    q.group_by = group;
    CHECK_SAME_JSON(pg->usage_json(q), lite.usage_json(q));
  }
  UsageQuery scoped;
  scoped.group_by = "model";
  scoped.tenants = std::vector<std::string>{"acme"};
  scoped.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + 1));
  CHECK_SAME_JSON(pg->usage_json(scoped), lite.usage_json(scoped));
  scoped.tenants = std::vector<std::string>{};
  CHECK(pg->usage_json(scoped).value() == "[]");

  CHECK_SAME_JSON(pg->latest_gpu_json({}), lite.latest_gpu_json({}));
  CHECK_SAME_JSON(pg->latest_gpu_json({"GPU-A", ""}), lite.latest_gpu_json({"GPU-A", ""}));
  CHECK_SAME_JSON(pg->latest_gpu_json({"", "node-b"}), lite.latest_gpu_json({"", "node-b"}));
  CHECK(pg->latest_gpu_json({"GPU-none", ""}).value() == "null");
  CHECK_SAME_JSON(pg->devices_json(), lite.devices_json());

  SeriesQuery series;
  series.gpu_uuid = "GPU-A";
  series.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS));
  series.to = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + kW));
  series.step_ms = 1000;
  CHECK_SAME_JSON(pg->gpu_series_json(series), lite.gpu_series_json(series));
  series.gpu_uuid = "GPU-B";
  series.step_ms = 5000;
  CHECK_SAME_JSON(pg->gpu_series_json(series), lite.gpu_series_json(series));
  series.from += std::chrono::hours(1);
  series.to += std::chrono::hours(1);
  CHECK(pg->gpu_series_json(series).value() == "[]");
  series.gpu_uuid = "GPU-none";
  CHECK(pg->gpu_series_json(series).value() == "null");

  // The documents themselves: compact JSON, as the API serves them.
  const std::string latest = pg->latest_gpu_json({"GPU-A", ""}).value();
  CHECK(latest.find("\"host\":\"node-a\"") != std::string::npos);
  CHECK(latest.find("\"_id\":\"" + event_id(3) + "\"") != std::string::npos);
}

TEST_CASE("PostgreSQL sink: the latest view is newest-wins per GPU", "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  REQUIRE(store->prepare(GpuCatalog{}));
  const auto generation = store->latest_generation();
  // Within one batch the newest sample of each GPU wins, whatever the order.
  const auto first = decode_all({
      gpu_event(1, kS + 5000, "GPU-A", "node-a"),
      gpu_event(2, kS + 9000, "GPU-A", "node-x"),
      gpu_event(3, kS + 1000, "GPU-A", "node-a"),
      gpu_event(4, kS, "GPU-B", "node-b"),
  });
  REQUIRE(store->write(batch_of(first)));
  CHECK(store->latest_generation() > generation);
  auto samples = store->latest_samples();
  REQUIRE(samples);
  REQUIRE(samples.value().size() == 2);
  CHECK(samples.value()[0].gpu_uuid == "GPU-A");
  CHECK(samples.value()[0].ts_ms == kS + 9000);
  CHECK(samples.value()[0].host == "node-x");
  CHECK(samples.value()[1].gpu_uuid == "GPU-B");
  CHECK(samples.value()[1].device_json.find("\"gpu_uuid\":\"GPU-B\"") != std::string::npos);

  // A later batch with an older sample leaves the view; a tie keeps the one stored first; a
  // newer one replaces it.
  const auto older = decode_all({gpu_event(5, kS + 8000, "GPU-A", "node-old"),
                                 gpu_event(6, kS + 9000, "GPU-A", "node-tie"),
                                 gpu_event(7, kS + 1, "GPU-B", "node-new")});
  REQUIRE(store->write(batch_of(older)));
  samples = store->latest_samples();
  REQUIRE(samples);
  REQUIRE(samples.value().size() == 2);
  CHECK(samples.value()[0].host == "node-x");
  CHECK(samples.value()[1].host == "node-new");
  CHECK(samples.value()[1].ts_ms == kS + 1);
  CHECK(db.count("gpu_metrics") == 7);
}

TEST_CASE("PostgreSQL sink: cost windows, claims, inputs, costs and placements round trip",
          "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  auto other = make_store(db);
  REQUIRE(store->prepare(GpuCatalog{}));
  CHECK(store->supports_costs());

  // Marks: settled by age, oldest window first, limited; a re-mark sets marked_at and nonce.
  REQUIRE(store->mark_cost_windows({kS + 2 * kW, kS, kS + kW, kS}, 1000, 1));
  REQUIRE(store->mark_cost_windows({kS + 3 * kW}, 2000, 1));
  REQUIRE(store->mark_cost_windows({}, 2000, 1));
  auto settled = store->settled_cost_windows(1500, 1500, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 3);
  CHECK(settled.value()[0].start_ms == kS);
  CHECK(settled.value()[2].start_ms == kS + 2 * kW);
  CHECK(store->settled_cost_windows(5000, 5000, 2).value().size() == 2);

  // Claims: one of two pricers wins; the lease holds until claim_until.
  CostWindowMark mine = settled.value()[0], theirs = settled.value()[0];
  REQUIRE(store->claim_cost_window(mine, 11, 2000, 62000).value());
  CHECK(mine.claim_token == 11);
  CHECK_FALSE(other->claim_cost_window(theirs, 12, 2000, 62000).value());
  CHECK_FALSE(other->claim_cost_window(theirs, 12, 62000, 122000).value());
  REQUIRE(other->claim_cost_window(theirs, 12, 62001, 122001).value());

  // Inputs read back what write() stored.
  const auto events = decode_all({
      gpu_event(1, kS - 10000, "GPU-A", "node-a",
                R"("utilization_gpu_percent":10,"energy_consumed_mj":1000000)"),
      gpu_event(2, kS + 30000, "GPU-A", "node-a",
                R"("utilization_gpu_percent":90,"energy_consumed_mj":1500000)"),
      gpu_event(3, kS - 70000, "GPU-A", "node-a", R"("utilization_gpu_percent":99)"),
      usage_event(10, kS + 5000, "m1", "t1", 10, 30,
                  R"("deployment":"d1","host":"node-a","gpu_uuids":["GPU-A"])"),
      usage_event(11, kS + kW + 5, "m1", "t1", 10, 60),
  });
  REQUIRE(store->write(batch_of(events)));
  auto inputs = store->cost_window_inputs(kS, kS + kW, kW);
  REQUIRE(inputs);
  REQUIRE(inputs.value().usage.size() == 1);
  const auto& row = inputs.value().usage[0];
  CHECK(row.id == event_id(10));
  CHECK(row.time_ms == kS + 5000);
  CHECK(row.deployment == "d1");
  CHECK(row.host == "node-a");
  CHECK(row.output_tokens == 30);
  CHECK(row.gpu_uuids == std::vector<std::string>{"GPU-A"});
  CHECK_FALSE(row.stored.priced);
  REQUIRE(inputs.value().samples.size() == 2);
  std::vector<std::int64_t> energy;
  for (const auto& s : inputs.value().samples) energy.push_back(s.energy_consumed_mj.value_or(-1));
  std::sort(energy.begin(), energy.end());
  CHECK(energy == std::vector<std::int64_t>{1000000, 1500000});
  CHECK(inputs.value().samples[0].model_name == "NVIDIA H100 80GB HBM3");

  // Costs: the taken-over pricer writes nothing; the holder writes and clears the mark.
  const cost::UsageCost c = usage_cost(event_id(10), kS, 0.5);
  auto written = store->write_costs({c}, mine);
  REQUIRE(written);
  CHECK_FALSE(written.value());
  CHECK(db.count("token_usage", "amount_usd IS NOT NULL") == 0);
  written = other->write_costs({c}, theirs);
  REQUIRE(written);
  CHECK(written.value());
  CHECK(db.count("cost_windows", "start = " + std::to_string(kS)) == 0);
  inputs = store->cost_window_inputs(kS, kS + kW, 0);
  REQUIRE(inputs);
  REQUIRE(inputs.value().usage.size() == 1);
  CHECK(inputs.value().usage[0].stored.priced);
  CHECK(inputs.value().usage[0].stored.amortized_usd == 0.5);
  CHECK(inputs.value().usage[0].stored.energy_usd == 0.125);
  CHECK(inputs.value().usage[0].stored.gpu_seconds == 12);
  // usage_json sums the cost block.
  const std::string usage = store->usage_json(UsageQuery{}).value();
  CHECK(usage.find("\"cost_usd\":0.5") != std::string::npos);
  CHECK(usage.find("\"cost_energy_usd\":0.125") != std::string::npos);
  CHECK(usage.find("\"priced_requests\":1") != std::string::npos);

  // A window marked again while it was priced keeps its new mark, its claim released.
  REQUIRE(store->mark_cost_windows({kS + kW}, 3000, 5));
  CostWindowMark pricing{kS + kW, 3000, 5};
  REQUIRE(store->claim_cost_window(pricing, 21, 3000, 63000).value());
  REQUIRE(other->mark_cost_windows({kS + kW}, 4000, 6));
  REQUIRE(store->write_costs({}, pricing).value());
  settled = store->settled_cost_windows(5000, 4000, 10);
  REQUIRE(settled);
  REQUIRE_FALSE(settled.value().empty());
  CHECK(settled.value()[0].start_ms == kS + kW);
  CHECK(settled.value()[0].nonce == 6);

  // Placements: first_seen keeps the minimum, last_seen the maximum; repeated rows in one call.
  REQUIRE(store->upsert_placements({{"d1", "gpu:GPU-A", 500, 900}, {"d1", "gpu:GPU-A", 100, 800}}));
  REQUIRE(store->upsert_placements({{"d1", "gpu:GPU-A", 300, 2000}, {"d2", "host:node-a", 5, 6}}));
  inputs = store->cost_window_inputs(0, 400, 0);
  REQUIRE(inputs);
  REQUIRE(inputs.value().placements.size() == 2);
  std::map<std::string, cost::PlacementRow> placements;
  for (const auto& p : inputs.value().placements) placements[p.deployment] = p;
  CHECK(placements["d1"].first_seen_ms == 100);
  CHECK(placements["d1"].last_seen_ms == 2000);
  CHECK(placements["d2"].target == "host:node-a");
  CHECK(store->cost_window_inputs(0, 100, 0).value().placements.size() == 1);

  // Re-pricing: the windows holding usage, ascending.
  auto starts = store->usage_window_starts(kS - kW, kS + 10 * kW, kW);
  REQUIRE(starts);
  CHECK(starts.value() == std::vector<std::int64_t>{kS, kS + kW});
}

TEST_CASE(
    "PostgreSQL sink: TLS verify-full with the test CA; a wrong CA or password is a "
    "retryable error that names no secret",
    "[postgresql][itest]") {
  PostgresDatabase db;
  const std::string certs = required_env("TELEMETRYD_TEST_CERTS_DIR");
  auto store = make_store(
      db, {"postgresql.sslmode=verify-full", "postgresql.sslrootcert=" + certs + "/ca.pem"});
  auto prepared = store->prepare(GpuCatalog{});
  INFO((prepared ? std::string() : prepared.error().message));
  REQUIRE(prepared);
  // The sink's own connection is encrypted (the server offers TLS but does not require it).
  CHECK(postgres_query(db.server, db.name,
                       "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                       "WHERE a.application_name = 'telemetryd' AND a.datname = '" +
                           db.name + "' AND s.ssl")
            .value_or("") == "1");

  auto wrong_ca = make_store(
      db, {"postgresql.sslmode=verify-full", "postgresql.sslrootcert=" + certs + "/wrong-ca.pem"});
  auto refused = wrong_ca->prepare(GpuCatalog{});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == Error::Kind::kRetryable);
  CHECK(refused.error().message.find("certificate") != std::string::npos);

  // A wrong password (from a file, as the processor reads it): refused by the server, and
  // neither password shows in the error.
  const std::string wrong = "/tmp/telemetryd-pgitest-password-" + std::to_string(getpid());
  { std::ofstream(wrong) << "not-the-password-4711\n"; }
  auto denied = make_store(db, {"postgresql.password_file=" + wrong})->prepare(GpuCatalog{});
  std::remove(wrong.c_str());
  REQUIRE_FALSE(denied);
  CHECK(denied.error().kind == Error::Kind::kRetryable);
  CHECK(denied.error().message.find("password authentication failed") != std::string::npos);
  CHECK(denied.error().message.find("not-the-password-4711") == std::string::npos);
  CHECK(denied.error().message.find(db.server.password) == std::string::npos);
}

// Not run by default (no timing asserts in tests): how much batching buys. A batch of 1 is what
// a row-at-a-time writer pays per event; the processor's batches are 500 by default.
TEST_CASE("events/s into PostgreSQL by batch size", "[postgresql][bench][.]") {
  std::vector<std::string> lines;
  for (int i = 0; i < 20000; ++i) {
    lines.push_back(i % 4 == 0 ? usage_event(i, kS + i, "m", "t", 10, 20)
                               : gpu_event(i, kS + i, "GPU-" + std::to_string(i % 64), "node"));
  }
  const auto events = decode_all(lines);
  for (const std::size_t size :
       {std::size_t{1}, std::size_t{100}, std::size_t{500}, std::size_t{2000}}) {
    PostgresDatabase db;
    auto store = make_store(db);
    REQUIRE(store->prepare(GpuCatalog{}));
    // Batches of 1 are slow: 2000 events are enough to measure them.
    const std::size_t total = size == 1 ? 2000 : events.size();
    const auto started = std::chrono::steady_clock::now();
    for (std::size_t at = 0; at < total; at += size) {
      std::vector<StoredEvent> batch;
      for (std::size_t i = at; i < std::min(total, at + size); ++i) batch.push_back({&events[i]});
      REQUIRE(store->write(batch));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    CHECK(db.count("gpu_metrics") + db.count("token_usage") == static_cast<std::int64_t>(total));
    WARN("batch " << size << ": " << total << " events in " << seconds
                  << " s = " << static_cast<long>(total / seconds) << " events/s");
  }
}

TEST_CASE(
    "PostgreSQL sink: usage rollups roll the oldest marks first, only settled ones, up to the "
    "limit",
    "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  REQUIRE(store->prepare(GpuCatalog{}));
  REQUIRE(store->write(batch_of(decode_all({usage_event(1, kS + 2 * kW + 5, "m", "t", 1, 2),
                                            usage_event(2, kS + 10, "m", "t", 3, 4),
                                            usage_event(3, kS + kW, "m", "t", 5, 6)}))));
  const auto marked = store->marked_usage_minutes();
  REQUIRE(marked);
  CHECK(marked.value() == std::vector<std::int64_t>{kS, kS + kW, kS + 2 * kW});
  // Marked now: none of them settled an hour ago.
  const std::int64_t now = unix_ms(std::chrono::system_clock::now());
  auto none = store->roll_up_usage(now - 3600000, 10);
  REQUIRE(none);
  CHECK(none.value() == 0);
  auto one = store->roll_up_usage(now + 3600000, 1);
  REQUIRE(one);
  CHECK(one.value() == 1);
  CHECK(store->marked_usage_minutes().value() == std::vector<std::int64_t>{kS + kW, kS + 2 * kW});
  const auto rows = store->usage_minutes(kS, kS + 3 * kW);
  REQUIRE(rows);
  REQUIRE(rows.value().size() == 1);
  CHECK(rows.value()[0] == UsageRollupRow{.start_ms = kS,
                                          .model = "m",
                                          .tenant_id = "t",
                                          .requests = 1,
                                          .input_tokens = 3,
                                          .output_tokens = 4});
  // Its hour from the one minute rolled so far, then from all three.
  UsageRollupRow hour{.start_ms = kS,
                      .model = "m",
                      .tenant_id = "t",
                      .requests = 1,
                      .input_tokens = 3,
                      .output_tokens = 4};
  auto hours = store->usage_hours(kS, kS + 3600000);
  REQUIRE(hours);
  CHECK(hours.value() == std::vector{hour});
  auto rest = store->roll_up_usage(now + 3600000, 10);
  REQUIRE(rest);
  CHECK(rest.value() == 2);
  CHECK(store->marked_usage_minutes().value().empty());
  CHECK(db.count("usage_minutes") == 3);
  hours = store->usage_hours(kS, kS + 3600000);
  REQUIRE(hours);
  hour.requests = 3;
  hour.input_tokens = 9;
  hour.output_tokens = 12;
  CHECK(hours.value() == std::vector{hour});
  CHECK(db.count("usage_hours") == 1);
}

TEST_CASE(
    "PostgreSQL sink: a database from before the usage rollups gets every stored minute marked "
    "at start, answers the same before and after the roll-up",
    "[postgresql][itest]") {
  PostgresDatabase db;
  auto store = make_store(db);
  REQUIRE(store->prepare(GpuCatalog{}));
  std::vector<std::string> lines{gpu_event(100, kS + 7, "GPU-0", "node-a")};
  for (int i = 0; i < 9; ++i) {
    lines.push_back(usage_event(i, kS + i * 25000, "m" + std::to_string(i % 2),
                                "t" + std::to_string(i % 3), 10 + i, 20 + i));
  }
  REQUIRE(store->write(batch_of(decode_all(lines))));
  UsageQuery query;
  query.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + 1000));
  query.to = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + 3 * kW + 500));
  const auto before = store->usage_json(query);
  REQUIRE(before);
  // Whole hours: answered from the hour rows once those are current.
  UsageQuery hours_query;
  hours_query.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS));
  hours_query.to = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + 7200000));
  const auto hours_before = store->usage_json(hours_query);
  REQUIRE(hours_before);
  // The tables of an older telemetryd: no rollups, requests stored.
  REQUIRE(postgres_query(db.server, db.name, "DROP TABLE usage_minutes, usage_hours, usage_marks"));

  auto upgraded = make_store(db);
  REQUIRE(upgraded->prepare(GpuCatalog{}));
  const auto marked = upgraded->marked_usage_minutes();
  REQUIRE(marked);
  CHECK(marked.value() == std::vector<std::int64_t>{kS, kS + kW, kS + 2 * kW, kS + 3 * kW});
  CHECK(upgraded->usage_json(query).value() == before.value());
  auto rolled = upgraded->roll_up_usage(unix_ms(std::chrono::system_clock::now()) + 3600000, 100);
  REQUIRE(rolled);
  CHECK(rolled.value() == 4);
  CHECK(upgraded->usage_json(query).value() == before.value());
  CHECK(upgraded->usage_json(hours_query).value() == hours_before.value());
  CHECK(db.count("usage_minutes", "minute = " + std::to_string(kS)) == 3);
  // The hour from the minutes: two models by three tenants, nine requests.
  const auto hours = upgraded->usage_hours(kS, kS + 3600000);
  REQUIRE(hours);
  CHECK(hours.value().size() == 6);
  std::int64_t requests = 0;
  for (const UsageRollupRow& row : hours.value()) requests += row.requests;
  CHECK(requests == 9);
  // Started again: the tables exist, nothing is marked anew.
  REQUIRE(upgraded->prepare(GpuCatalog{}));
  CHECK(upgraded->marked_usage_minutes().value().empty());
  CHECK(upgraded->usage_hours(kS, kS + 3600000).value() == hours.value());

  // A database from before the hour tier (minutes rolled, no usage_hours): its hours are summed
  // from the minutes at start, nothing marked, and the answers stay the same.
  REQUIRE(postgres_query(db.server, db.name, "DROP TABLE usage_hours"));
  auto hourless = make_store(db);
  REQUIRE(hourless->prepare(GpuCatalog{}));
  CHECK(hourless->marked_usage_minutes().value().empty());
  CHECK(hourless->usage_hours(kS, kS + 3600000).value() == hours.value());
  CHECK(hourless->usage_json(query).value() == before.value());
  CHECK(hourless->usage_json(hours_query).value() == hours_before.value());
}

TEST_CASE(
    "PostgreSQL sink: two processors rolling up while batches arrive end with the rollups of "
    "the stored requests, without an error",
    "[postgresql][itest]") {
  PostgresDatabase db;
  auto writer = make_store(db);
  auto first = make_store(db);
  auto second = make_store(db);
  REQUIRE(writer->prepare(GpuCatalog{}));
  REQUIRE(first->prepare(GpuCatalog{}));
  REQUIRE(second->prepare(GpuCatalog{}));
  const std::int64_t later = unix_ms(std::chrono::system_clock::now()) + 3600000;
  std::vector<std::string> errors;  // the main thread's; each roller keeps its own until the join
  std::string first_error, second_error;
  std::atomic<bool> writing{true};
  const auto roll = [&](Store& store, std::string& error) {
    while (writing.load() && error.empty()) {
      auto rolled = store.roll_up_usage(later, 2);
      if (!rolled) error = rolled.error().message;
    }
  };
  std::thread a(roll, std::ref(*first), std::ref(first_error));
  std::thread b(roll, std::ref(*second), std::ref(second_error));
  for (int batch = 0; batch < 30; ++batch) {
    std::vector<std::string> lines;
    for (int i = 0; i < 20; ++i) {
      const int n = batch * 20 + i;
      lines.push_back(usage_event(n, kS + (n * 7919) % (4 * kW), "m" + std::to_string(n % 2),
                                  "t" + std::to_string(n % 3), n, 2 * n));
    }
    auto wrote = writer->write(batch_of(decode_all(lines)));
    if (!wrote) errors.push_back(wrote.error().message);
  }
  writing = false;
  a.join();
  b.join();
  for (const std::string* e : {&first_error, &second_error}) {
    if (!e->empty()) errors.push_back(*e);
  }
  CHECK(errors == std::vector<std::string>{});
  auto rest = first->roll_up_usage(later, 100);
  REQUIRE(rest);
  CHECK(first->marked_usage_minutes().value().empty());
  // The rollups hold exactly the sums of the stored requests, per minute and group.
  const std::string rollups =
      "SELECT minute, model, tenant_id, deployment, requests, input_tokens, output_tokens FROM "
      "usage_minutes";
  const std::string requests =
      "SELECT ts - ((ts % 60000) + 60000) % 60000, model, tenant_id, deployment, count(*), "
      "sum(input_tokens), sum(output_tokens) FROM token_usage GROUP BY 1, 2, 3, 4";
  CHECK(db.count("token_usage") == 600);
  CHECK(postgres_query(db.server, db.name,
                       "SELECT count(*) FROM ((" + rollups + " EXCEPT " + requests +
                           ") UNION ALL (" + requests + " EXCEPT " + rollups + ")) AS d") == "0");
  CHECK(db.count("usage_minutes") > 0);
  // And the hours exactly the sums of their minutes.
  const std::string hour_rollups =
      "SELECT hour, model, tenant_id, deployment, requests, input_tokens, output_tokens FROM "
      "usage_hours";
  const std::string hour_requests =
      "SELECT ts - ((ts % 3600000) + 3600000) % 3600000, model, tenant_id, deployment, count(*), "
      "sum(input_tokens), sum(output_tokens) FROM token_usage GROUP BY 1, 2, 3, 4";
  CHECK(postgres_query(db.server, db.name,
                       "SELECT count(*) FROM ((" + hour_rollups + " EXCEPT " + hour_requests +
                           ") UNION ALL (" + hour_requests + " EXCEPT " + hour_rollups +
                           ")) AS d") == "0");
  CHECK(db.count("usage_hours") > 0);
}
