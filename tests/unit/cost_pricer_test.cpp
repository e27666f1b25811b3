// The processor's cost path end to end on SQLite: events stored and their windows marked by
// ProcessorCore, windows priced from the store by CostPricer. Redeliveries, a restart and
// re-pricing must not change what was priced or counted.

#include <sqlite3.h>
#include <unistd.h>

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cost/cost_model.hpp"
#include "events/cloudevent.hpp"
#include "events/event_id.hpp"
#include "events/gpu_metrics.hpp"
#include "events/token_usage.hpp"
#include "processor/cost_pricer.hpp"
#include "processor/processor_core.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::processor;

namespace {

constexpr std::int64_t kStart = 1796126400000;  // 2026-12-01T12:00:00Z, a window start
constexpr std::int64_t kFarFuture = 4102444800000;

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("telemetryd-pricer-" + std::to_string(getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

struct Message {
  std::string topic, key, value;
};

std::chrono::system_clock::time_point at(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

Message gpu_event(const std::string& uuid, const std::string& host, std::int64_t ms, double util,
                  std::int64_t energy_mj) {
  events::GpuSample s;
  s.gpu_uuid = uuid;
  s.host = host;
  s.model_name = "NVIDIA H200";
  s.collector = "synthetic";
  s.utilization_gpu_percent = util;
  s.energy_consumed_mj = energy_mj;
  const std::string id = events::deterministic_uuid_v7(ms, uuid);
  return {"gpu.metrics.v1", uuid,
          events::encode_cloudevent(id, "//test", "io.telemetryd.gpu.metrics.v1", at(ms), uuid,
                                    events::encode_gpu_metrics_data(s))};
}

Message usage_event(const std::string& seed, std::int64_t ms, const std::string& tenant,
                    const std::string& deployment, const std::string& host,
                    std::int64_t output_tokens) {
  events::TokenUsage u;
  u.model = "llama";
  u.tenant_id = tenant;
  u.input_tokens = 100;
  u.output_tokens = output_tokens;
  if (!deployment.empty()) u.deployment = deployment;
  if (!host.empty()) u.host = host;
  const std::string id = events::deterministic_uuid_v7(ms, seed);
  return {"token.usage.v1", deployment,
          events::encode_cloudevent(id, "//test", "io.telemetryd.token.usage.v1", at(ms), tenant,
                                    events::encode_token_usage_data(u))};
}

// Two H200s on node-1 sampled every 10 s over three windows, and usage: most events name their
// host, a fifth only their deployment (priced through the learned placement).
std::vector<Message> workload() {
  std::vector<Message> out;
  for (int t = -10; t < 180; t += 10) {
    for (int g = 0; g < 2; ++g) {
      const std::string uuid = "GPU-" + std::to_string(g);
      out.push_back(gpu_event(uuid, "node-1", kStart + t * 1000, 40 + 10 * g + t % 30,
                              1000000000LL + (t + 10) * (300000LL + 100000LL * g)));
    }
  }
  for (int i = 0; i < 200; ++i) {
    const std::int64_t ms = kStart + 500 + i * 850;
    const bool deployment_only = i % 5 == 4;
    out.push_back(usage_event("u" + std::to_string(i), ms, "tenant-" + std::to_string(i % 3),
                              "chat", deployment_only ? "" : "node-1", 50 + i % 17));
  }
  return out;
}

double value_of(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

// Two /v1/usage answers agree: the same groups, counts, and sums up to the rounding of
// adding in another order (per minute, then the minutes).
void check_same_usage(const std::string& got, const std::string& want) {
  INFO(got << "\n" << want);
  simdjson::dom::parser a, b;
  simdjson::dom::array x = a.parse(got), y = b.parse(want);
  REQUIRE(x.size() == y.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    simdjson::dom::object gx = x.at(i), gy = y.at(i);
    CHECK(std::string_view(gx["_id"]) == std::string_view(gy["_id"]));
    for (const char* n : {"requests", "input_tokens", "output_tokens", "priced_requests"})
      CHECK(std::int64_t(gx[n]) == std::int64_t(gy[n]));
    for (const char* n :
         {"cost_usd", "cost_utilization_usd", "cost_energy_usd", "gpu_seconds", "energy_j"})
      CHECK(double(gx[n]) == Approx(double(gy[n])).epsilon(1e-12));
  }
}

struct Pipeline {
  sqlite::SqliteStore store;
  metrics::Registry registry;
  TenantLabels tenants{{}, 20};
  ProcessorCore core;
  CostPricer pricer;
  std::int64_t offset = 0;

  explicit Pipeline(const std::string& path,
                    cost::PriceCatalog prices = cost::PriceCatalog::builtin())
      : store(path),
        core(CoreSettings{}, store, store, registry, tenants),
        pricer(PricerSettings{}, store, std::move(prices), registry, tenants) {
    REQUIRE(store.prepare(events::GpuCatalog{}));
  }

  void feed(const std::vector<Message>& messages, std::size_t batch = 50) {
    core::DoneOffsets done;
    for (const auto& m : messages) {
      REQUIRE(core.accept({m.topic, 0, offset++, m.key, m.value}));
      if (core.pending() >= batch) REQUIRE(core.flush(done));
    }
    REQUIRE(core.flush(done));
  }

  std::size_t price_all() {
    std::size_t windows = 0;
    for (int round = 0; round < 1000; ++round) {
      const auto priced = pricer.run_once(kFarFuture);
      REQUIRE(priced);
      if (priced.value() == 0) break;
      windows += priced.value();
    }
    return windows;
  }

  // Every usage document's cost block, by id.
  std::map<std::string, std::string> costs(const std::string& path) {
    std::map<std::string, std::string> out;
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT id, json_extract(doc, '$.cost') FROM token_usage", -1, &s,
                       nullptr);
    while (sqlite3_step(s) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(s, 1);
      out[reinterpret_cast<const char*>(sqlite3_column_text(s, 0))] =
          text == nullptr ? "" : reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
  }
};

}  // namespace

TEST_CASE("5% redelivered duplicates change no counter, window, spend or histogram",
          "[cost][processor]") {
  TempDir dir;
  const auto messages = workload();
  std::vector<Message> with_duplicates;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    with_duplicates.push_back(messages[i]);
    if (i % 20 == 19) with_duplicates.push_back(messages[i - 7]);  // a redelivery, 5%
  }
  const std::string once_path = (dir.path / "once.sqlite3").string();
  const std::string dup_path = (dir.path / "dup.sqlite3").string();
  Pipeline once(once_path), dup(dup_path);
  once.feed(messages);
  dup.feed(with_duplicates);
  CHECK(once.price_all() >= 3);
  CHECK(dup.price_all() >= 3);

  const std::string a = once.registry.expose(), b = dup.registry.expose();
  CHECK(value_of(b, "processor_duplicates_total") ==
        static_cast<double>(with_duplicates.size() - messages.size()));
  for (const std::string series :
       {"processor_token_usage_tokens_total{model=\"llama\"}",
        "processor_tenant_tokens_total{tenant=\"tenant-0\"}",
        "processor_cost_usd_total{model=\"llama\",basis=\"amortized\"}",
        "processor_cost_usd_total{model=\"llama\",basis=\"utilization\"}",
        "processor_cost_usd_total{model=\"llama\",basis=\"energy\"}",
        "processor_tenant_cost_usd_total{tenant=\"tenant-1\",basis=\"amortized\"}",
        "processor_end_to_end_latency_seconds_count"}) {
    INFO(series);
    CHECK(value_of(a, series) > 0);
    CHECK(value_of(a, series) == Approx(value_of(b, series)).epsilon(1e-12));
  }
  const auto costs_once = once.costs(once_path);
  const auto costs_dup = dup.costs(dup_path);
  CHECK(costs_once.size() == 200);
  CHECK(costs_once == costs_dup);  // every window the same
  for (const auto& [id, block] : costs_once) {
    INFO(block);
    CHECK(block.find("\"amortized_usd\":null") == std::string::npos);
  }
  // Spend adds up to what the GPUs cost: three whole windows of two H200s, plus the part of
  // the fourth window the usage reached.
  const double spend = value_of(a, "processor_cost_usd_total{model=\"llama\",basis=\"amortized\"}");
  CHECK(spend == Approx(3.79 * 2 * 3 * 60 / 3600).epsilon(1e-9));

  // The pricer's thread rolls up the minutes the requests and the costs marked: /v1/usage then
  // reads rolled minutes, and answers what the requests answered, costs included; the same
  // with the redeliveries.
  UsageQuery by_tenant;
  by_tenant.group_by = "tenant";
  const std::string from_requests = once.store.usage_json(by_tenant).value();
  CHECK(from_requests.find("\"priced_requests\":0") == std::string::npos);
  std::size_t rolled = 0;
  for (Pipeline* p : {&once, &dup}) {
    const auto n = p->pricer.roll_up_once(kFarFuture);
    REQUIRE(n);
    rolled = n.value();
    CHECK(p->store.marked_usage_minutes().value().empty());
    check_same_usage(p->store.usage_json(by_tenant).value(), from_requests);
    CHECK(value_of(p->registry.expose(), "processor_usage_rollups_total") ==
          static_cast<double>(rolled));
  }
  CHECK(rolled >= 3);
  CHECK(once.store.usage_minutes(0, kFarFuture).value() ==
        dup.store.usage_minutes(0, kFarFuture).value());
}

TEST_CASE("after a restart, deployment-only usage is priced through the stored placement",
          "[cost][processor]") {
  TempDir dir;
  const std::string path = (dir.path / "restart.sqlite3").string();
  {
    Pipeline before(path);
    // Usage naming deployment and host teaches the placement chat -> host:node-1.
    before.feed({gpu_event("GPU-0", "node-1", kStart + 1000, 50, 1000),
                 usage_event("first", kStart + 2000, "t", "chat", "node-1", 10)});
    before.price_all();
  }
  Pipeline after(path);  // a new process: nothing in memory
  const std::int64_t later = kStart + 120000;
  after.feed({gpu_event("GPU-0", "node-1", later + 1000, 50, 5000),
              gpu_event("GPU-0", "node-1", later + 11000, 50, 9000),
              usage_event("only-deployment", later + 2000, "t", "chat", "", 10),
              usage_event("unknown", later + 3000, "t", "elsewhere", "", 10)});
  CHECK(after.price_all() == 2);  // the usage's window, and the next (the samples' baselines)
  const auto costs = after.costs(path);
  const std::string& priced =
      costs.at(events::deterministic_uuid_v7(later + 2000, "only-deployment"));
  INFO(priced);
  CHECK(priced.find("\"placement\":\"deployment\"") != std::string::npos);
  CHECK(priced.find("\"amortized_usd\":null") == std::string::npos);
  CHECK(priced.find("\"utilization_usd\":null") == std::string::npos);
  CHECK(priced.find("\"energy_usd\":null") == std::string::npos);
  const std::string& unknown = costs.at(events::deterministic_uuid_v7(later + 3000, "unknown"));
  CHECK(unknown.find("\"amortized\":\"no_placement\"") != std::string::npos);
  CHECK(unknown.find("\"amortized_usd\":null") != std::string::npos);
}

TEST_CASE("re-pricing unchanged data changes nothing; new prices change only with --dry-run off",
          "[cost][processor]") {
  TempDir dir;
  const std::string path = (dir.path / "reprice.sqlite3").string();
  Pipeline p(path);
  p.feed(workload());
  p.price_all();
  const auto before = p.costs(path);

  auto unchanged = p.pricer.reprice(kStart - 60000, kStart + 3600000, false, {});
  REQUIRE(unchanged);
  CHECK(unchanged.value().windows == 3);
  CHECK(unchanged.value().documents == 200);
  CHECK(unchanged.value().changed == 0);
  CHECK(p.costs(path) == before);

  metrics::Registry registry;
  TenantLabels tenants({}, 20);
  CostPricer cheaper(PricerSettings{}, p.store, cost::catalog_with({}, {"NVIDIA H200=1.00"}),
                     registry, tenants);
  std::size_t seen = 0;
  auto dry = cheaper.reprice(kStart - 60000, kStart + 3600000, true,
                             [&](const cost::UsageRow& row, const cost::UsageCost& priced) {
                               ++seen;
                               CHECK(*priced.amortized_usd < *row.stored.amortized_usd);
                             });
  REQUIRE(dry);
  CHECK(dry.value().changed == 200);
  CHECK(seen == 200);
  CHECK(p.costs(path) == before);  // dry run: nothing written
  auto real = cheaper.reprice(kStart - 60000, kStart + 3600000, false, {});
  REQUIRE(real);
  CHECK(real.value().changed == 200);
  CHECK(p.costs(path) != before);
  auto again = cheaper.reprice(kStart - 60000, kStart + 3600000, false, {});
  REQUIRE(again);
  CHECK(again.value().changed == 0);
}

TEST_CASE("five stores preparing one new SQLite file at once all succeed", "[cost][store]") {
  // reprice next to a running all role, or two all roles on one data_dir: every schema
  // statement is IF NOT EXISTS and the busy timeout waits out the other writer.
  TempDir dir;
  const std::string path = (dir.path / "shared.sqlite3").string();
  std::vector<std::unique_ptr<sqlite::SqliteStore>> stores;
  for (int i = 0; i < 5; ++i) stores.push_back(std::make_unique<sqlite::SqliteStore>(path));
  std::vector<std::string> errors(stores.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < stores.size(); ++i) {
    threads.emplace_back([&, i] {
      if (auto prepared = stores[i]->prepare(events::GpuCatalog{}); !prepared) {
        errors[i] = prepared.error().message;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& error : errors) CHECK(error.empty());
  CHECK(stores[0]->prepare(events::GpuCatalog{}));  // and again, on a prepared file
}

TEST_CASE("cost window marks: one claimant at a time, a new mark outlives the pricing",
          "[cost][store]") {
  TempDir dir;
  sqlite::SqliteStore store((dir.path / "marks.sqlite3").string());
  REQUIRE(store.prepare(events::GpuCatalog{}));
  REQUIRE(store.mark_cost_windows({kStart, kStart + 60000}, 1000, 1));
  auto settled = store.settled_cost_windows(999, 2000, 10);
  REQUIRE(settled);
  CHECK(settled.value().empty());  // marked after the cut-off
  settled = store.settled_cost_windows(1000, 2000, 1);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 1);  // the limit, oldest window first
  CostWindowMark mine = settled.value()[0];
  CostWindowMark theirs = mine;
  CHECK(mine.start_ms == kStart);
  REQUIRE(store.claim_cost_window(mine, 7, 2000, 5000).value());
  CHECK(mine.claim_token == 7);
  CHECK_FALSE(store.claim_cost_window(theirs, 8, 2000, 5000).value());  // held until 5000
  settled = store.settled_cost_windows(5000, 3000, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 1);  // the claimed window is not offered
  CHECK(settled.value()[0].start_ms == kStart + 60000);

  REQUIRE(store.mark_cost_windows({kStart}, 1001, 2));  // an event stored meanwhile
  REQUIRE(store.write_costs({}, mine).value());
  settled = store.settled_cost_windows(5000, 3000, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 2);  // still marked, with the new nonce, claim released
  CostWindowMark again = settled.value()[0];
  CHECK(again.nonce == 2);
  REQUIRE(store.claim_cost_window(again, 9, 3000, 6000).value());
  CHECK_FALSE(store.write_costs({}, mine).value());  // a stale claimant writes nothing
  REQUIRE(store.write_costs({}, again).value());
  settled = store.settled_cost_windows(5000, 3000, 10);
  REQUIRE(settled);
  CHECK(settled.value().size() == 1);
  // A lease that ran out can be taken over.
  CostWindowMark late = settled.value()[0];
  REQUIRE(store.claim_cost_window(late, 10, 3000, 4000).value());
  CostWindowMark takeover = settled.value()[0];
  CHECK_FALSE(store.claim_cost_window(takeover, 11, 3999, 9000).value());
  CHECK(store.claim_cost_window(takeover, 11, 4001, 9000).value());
}

TEST_CASE("two pricers on one store price each window once and count spend once",
          "[cost][processor]") {
  TempDir dir;
  const std::string path = (dir.path / "two.sqlite3").string();
  Pipeline p(path);
  p.feed(workload());
  CostPricer other(PricerSettings{}, p.store, cost::PriceCatalog::builtin(), p.registry, p.tenants);
  std::size_t windows = 0;
  for (int round = 0; round < 100; ++round) {
    const auto a = p.pricer.run_once(kFarFuture);
    const auto b = other.run_once(kFarFuture);
    REQUIRE(a);
    REQUIRE(b);
    if (a.value() + b.value() == 0) break;
    windows += a.value() + b.value();
  }
  // Five windows are marked (the first GPU samples fall in the window before the usage, and
  // the last samples mark the window after them, whose energy baseline they are), each priced
  // by exactly one of the two.
  CHECK(windows == 5);
  const double spend = value_of(p.registry.expose(),
                                "processor_cost_usd_total{model=\"llama\",basis=\"amortized\"}");
  CHECK(spend == Approx(3.79 * 2 * 3 * 60 / 3600).epsilon(1e-9));
}

TEST_CASE("a late request joining a priced window moves spend by nothing", "[cost][processor]") {
  TempDir dir;
  const std::string path = (dir.path / "late.sqlite3").string();
  Pipeline p(path);
  p.feed({gpu_event("GPU-0", "node-1", kStart + 1000, 50, 1000),
          usage_event("a", kStart + 2000, "t", "chat", "node-1", 10)});
  CHECK(p.price_all() == 2);  // the window and the next (the sample is its energy baseline)
  const std::string series = "processor_cost_usd_total{model=\"llama\",basis=\"amortized\"}";
  const double first = value_of(p.registry.expose(), series);
  CHECK(first == Approx(3.79 * 60 / 3600).epsilon(1e-9));  // one request pays the whole GPU
  p.feed({usage_event("b", kStart + 3000, "t", "chat", "node-1", 30)});  // late: same window
  CHECK(p.price_all() == 1);
  CHECK(value_of(p.registry.expose(), series) == Approx(first).epsilon(1e-9));
  const auto costs = p.costs(path);
  const std::string& late = costs.at(events::deterministic_uuid_v7(kStart + 3000, "b"));
  INFO(late);
  CHECK(late.find("\"amortized_usd\":null") == std::string::npos);
  CHECK(late.find("\"tokens_in_window\":40") != std::string::npos);
}

TEST_CASE("telemetryd reprice: unchanged data changes nothing, --dry-run writes nothing",
          "[cost][cli]") {
  TempDir dir;
  const std::string path = (dir.path / "telemetryd.sqlite3").string();
  std::map<std::string, std::string> before;
  {
    Pipeline p(path);
    p.feed(workload());
    p.price_all();
    before = p.costs(path);
  }
  const std::vector<std::string> base{test_support::telemetryd_bin(),
                                      "reprice",
                                      "--role",
                                      "all",
                                      "--set",
                                      "embedded.data_dir=" + dir.path.string(),
                                      "--from",
                                      "2026-12-01T11:00:00Z",
                                      "--to",
                                      "2026-12-01T13:00:00Z"};
  auto unchanged = test_support::run_command(base);
  INFO(unchanged.output);
  CHECK(unchanged.status == 0);
  CHECK(
      unchanged.output.find("{\"windows\":3,\"documents\":200,\"changed\":0,\"dry_run\":false}") !=
      std::string::npos);

  const std::string prices = (dir.path / "prices.txt").string();
  std::ofstream(prices) << "# cheaper H200s\nNVIDIA H200=1.00\n";
  auto dry_argv = base;
  dry_argv.insert(dry_argv.end(), {"--prices", prices, "--dry-run"});
  auto dry = test_support::run_command(dry_argv);
  INFO(dry.output);
  CHECK(dry.status == 0);
  CHECK(dry.output.find("\"changed\":200,\"dry_run\":true}") != std::string::npos);
  CHECK(dry.output.find("\"before\":{\"amortized_usd\":") != std::string::npos);
  Pipeline check(path);
  CHECK(check.costs(path) == before);

  auto bad = base;
  bad[7] = "yesterday";
  const auto refused = test_support::run_command(bad);
  CHECK(refused.status == 78);
  CHECK(refused.output.find("--from: 'yesterday' is not an RFC 3339 time") != std::string::npos);
}
