// The cost methods of the processor's MongoDB store against the real FerretDB (docs/cost.md):
// window marks and their nonce, the inputs of a window read back from what write() stored,
// priced blocks written back and summed by usage_json, learned placements, and the batch
// indexes of a redelivery's duplicates.

#include <unistd.h>

#include <simdjson.h>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cost/cost_model.hpp"
#include "mongo/mongo_store.hpp"
#include "support/child_process.hpp"
#include "support/mongo_probe.hpp"
#include "support/store_events.hpp"
#include "telemetryd/time_format.hpp"

using namespace telemetryd;
using namespace test_support::store_events;

namespace {

constexpr std::int64_t kW = 60000;
// 2026-12-04T10:00:00Z, on the minute grid.
constexpr std::int64_t kS = 1796378400000;

struct TestDatabase {
  std::string uri = test_support::required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string name =
      "costitest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
  ~TestDatabase() { test_support::drop_database(uri, name); }

  mongo::MongoStoreSettings settings() const {
    mongo::MongoStoreSettings settings;
    settings.connection.uri = uri;
    settings.database = name;
    return settings;
  }
};

struct UsageTotals {
  std::vector<std::string> keys;
  std::map<std::string, double> values;
};

// usage_json's rows by _id: the keys in order and every value as a number.
std::map<std::string, UsageTotals> parse_usage(const std::string& json) {
  simdjson::dom::parser parser;
  std::map<std::string, UsageTotals> rows;
  for (simdjson::dom::object row : parser.parse(json).get_array()) {
    UsageTotals totals;
    std::string id;
    for (auto field : row) {
      totals.keys.emplace_back(field.key);
      if (field.value.is_string()) {
        id = std::string(field.value.get_string().value());
      } else if (field.value.is_int64()) {
        totals.values[std::string(field.key)] =
            static_cast<double>(field.value.get_int64().value());
      } else {
        totals.values[std::string(field.key)] = field.value.get_double().value();
      }
    }
    rows[id] = std::move(totals);
  }
  return rows;
}

// Applies `update` to one document, as an earlier release would have written it.
void update_document(const std::string& uri, const std::string& database,
                     const char* collection_name, const std::string& id, bson_t* update) {
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  REQUIRE(client != nullptr);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client, database.c_str(), collection_name);
  bson_t* selector = BCON_NEW("_id", BCON_UTF8(id.c_str()));
  bson_error_t error;
  const bool ok =
      mongoc_collection_update_one(collection, selector, update, nullptr, nullptr, &error);
  bson_destroy(update);
  bson_destroy(selector);
  mongoc_collection_destroy(collection);
  mongoc_client_destroy(client);
  INFO(error.message);
  REQUIRE(ok);
}

// Removes a field of one document, as a document written by an earlier release lacks it.
void unset_field(const std::string& uri, const std::string& database, const char* collection_name,
                 const std::string& id, const char* field) {
  update_document(uri, database, collection_name, id,
                  BCON_NEW("$unset", "{", field, BCON_INT32(1), "}"));
}

// Sets a number field of one document.
void set_double(const std::string& uri, const std::string& database, const char* collection_name,
                const std::string& id, const char* field, double value) {
  update_document(uri, database, collection_name, id,
                  BCON_NEW("$set", "{", field, BCON_DOUBLE(value), "}"));
}

const std::vector<std::string> kUsageKeys{"_id",
                                          "requests",
                                          "input_tokens",
                                          "output_tokens",
                                          "cost_usd",
                                          "cost_utilization_usd",
                                          "cost_energy_usd",
                                          "gpu_seconds",
                                          "energy_j",
                                          "priced_requests"};

}  // namespace

TEST_CASE("MongoStore cost windows: marks settle by age and clear only with their nonce",
          "[cost][itest]") {
  TestDatabase db;
  mongo::MongoStore store(db.settings());
  REQUIRE(store.prepare(events::GpuCatalog{}));

  REQUIRE(store.mark_cost_windows({kS + 2 * kW, kS, kS + kW, kS}, 1000, 1));
  REQUIRE(store.mark_cost_windows({kS + 3 * kW}, 2000, 1));
  REQUIRE(store.mark_cost_windows({}, 2000, 1));

  auto settled = store.settled_cost_windows(1500, 1500, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(settled.value()[i].start_ms == kS + static_cast<std::int64_t>(i) * kW);
    CHECK(settled.value()[i].marked_at_ms == 1000);
    CHECK(settled.value()[i].nonce == 1);
    CHECK(settled.value()[i].claim_token == 0);
  }
  settled = store.settled_cost_windows(5000, 5000, 2);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 2);
  CHECK(settled.value()[0].start_ms == kS);
  CHECK(settled.value()[1].start_ms == kS + kW);
  CHECK(store.settled_cost_windows(999, 5000, 10).value().empty());
  CHECK(store.settled_cost_windows(5000, 5000, 0).value().empty());

  // An unclaimed mark is not cleared: nothing is written for it.
  CHECK_FALSE(store.write_costs({}, CostWindowMark{kS, 1000, 1}).value());
  CostWindowMark first = settled.value()[0], second = settled.value()[1];
  REQUIRE(store.claim_cost_window(first, 7, 5000, 65000).value());
  REQUIRE(store.claim_cost_window(second, 7, 5000, 65000).value());
  CHECK(first.claim_token == 7);
  // Claimed marks are not settled while their lease runs.
  CHECK(store.settled_cost_windows(5000, 6000, 10).value().size() == 2);
  // Events stored while S + W is priced mark it again, with a new nonce, keeping the claim.
  REQUIRE(store.mark_cost_windows({kS + kW}, 3000, 2));
  CHECK(store.settled_cost_windows(5000, 6000, 10).value().size() == 2);
  REQUIRE(store.write_costs({}, first).value());
  REQUIRE(store.write_costs({}, second).value());  // kept, its claim released
  settled = store.settled_cost_windows(5000, 6000, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 3);
  CHECK(settled.value()[0].start_ms == kS + kW);
  CHECK(settled.value()[0].marked_at_ms == 3000);
  CHECK(settled.value()[0].nonce == 2);
  CHECK(settled.value()[0].claim_token == 7);  // the released claim's token stays
  CHECK(settled.value()[1].start_ms == kS + 2 * kW);
  CHECK(settled.value()[2].start_ms == kS + 3 * kW);
  CHECK(store.settled_cost_windows(2500, 6000, 10).value().size() == 2);

  CostWindowMark again = settled.value()[0];
  REQUIRE(store.claim_cost_window(again, 8, 6000, 66000).value());
  REQUIRE(store.write_costs({}, again).value());
  CHECK(store.settled_cost_windows(5000, 6000, 10).value().size() == 2);
}

TEST_CASE("MongoStore claims: one pricer per mark, a lease, and a taken-over pricer writes nothing",
          "[cost][itest]") {
  TestDatabase db;
  mongo::MongoStore store(db.settings());
  mongo::MongoStore other(db.settings());
  REQUIRE(store.prepare(events::GpuCatalog{}));

  const auto events = decode_all({
      usage_json_event(11, kS + 5000, "m1", "t1", 10, 30, R"("deployment":"d1")"),
      usage_json_event(12, kS + kW + 5000, "m1", "t1", 10, 60, R"("deployment":"d1")"),
  });
  REQUIRE(store.write(batch_of(events)));
  // A cost of each document, first written unconditionally (reprice).

  REQUIRE(store.write_costs({usage_cost(event_id(11), kS, 1.0)}, std::nullopt).value());
  const auto stored_usd = [&](std::int64_t start) {
    auto inputs = store.cost_window_inputs(start, start + kW, 0);
    REQUIRE(inputs);
    REQUIRE(inputs.value().usage.size() == 1);
    return inputs.value().usage[0].stored.amortized_usd;
  };
  CHECK(stored_usd(kS) == 1.0);

  // (a) Two pricers read the same mark: the first claim wins, the second gets false, until the
  // lease ends (claim_until < now).
  REQUIRE(store.mark_cost_windows({kS}, 1000, 1));
  auto settled = store.settled_cost_windows(1000, 2000, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 1);
  CostWindowMark mine = settled.value()[0], theirs = settled.value()[0];
  auto claimed = store.claim_cost_window(mine, 11, 2000, 62000);
  REQUIRE(claimed);
  CHECK(claimed.value());
  CHECK(mine.claim_token == 11);
  claimed = other.claim_cost_window(theirs, 12, 2000, 62000);
  REQUIRE(claimed);
  CHECK_FALSE(claimed.value());
  CHECK(theirs.claim_token == 0);
  CHECK_FALSE(other.claim_cost_window(theirs, 12, 62000, 122000).value());  // lease until 62000
  // A mark read before a re-mark (another nonce) cannot be claimed.
  CostWindowMark stale = theirs;
  stale.nonce = 99;
  CHECK_FALSE(other.claim_cost_window(stale, 12, 62001, 122001).value());
  CHECK_FALSE(stale.claim_token == 12);

  // (d) Not settled while a lease runs past now; settled again once it ended, with its token.
  CHECK(store.settled_cost_windows(1000, 62000, 10).value().empty());
  settled = store.settled_cost_windows(1000, 62001, 10);
  REQUIRE(settled.value().size() == 1);
  CHECK(settled.value()[0].claim_token == 11);

  // The lease ended: another pricer takes it over.
  claimed = other.claim_cost_window(theirs, 12, 62001, 122001);
  REQUIRE(claimed);
  CHECK(claimed.value());
  CHECK(theirs.claim_token == 12);
  CHECK(store.settled_cost_windows(1000, 122001, 10).value().empty());

  // (b) The pricer whose lease was taken over writes nothing and is told so.
  auto written = store.write_costs({usage_cost(event_id(11), kS, 2.0)}, mine);
  REQUIRE(written);
  CHECK_FALSE(written.value());
  CHECK(stored_usd(kS) == 1.0);
  CHECK(store.settled_cost_windows(1000, 122002, 10).value().size() == 1);  // still marked
  // The one holding it writes and clears the mark.
  written = other.write_costs({usage_cost(event_id(11), kS, 3.0)}, theirs);
  REQUIRE(written);
  CHECK(written.value());
  CHECK(stored_usd(kS) == 3.0);
  CHECK(store.settled_cost_windows(1000, 122002, 10).value().empty());
  CHECK(test_support::count_documents(db.uri, db.name, "cost_windows") == 0);

  // (c) Events stored while the window is priced: the costs are written, the new mark stays
  // with its claim released (claim_until 0; claim_token stays the releasing pricer's), and it
  // is settled and claimable at once, not after the lease.
  REQUIRE(store.mark_cost_windows({kS + kW}, 2000, 5));
  CostWindowMark pricing{kS + kW, 2000, 5};
  REQUIRE(store.claim_cost_window(pricing, 21, 3000, 63000).value());
  REQUIRE(other.mark_cost_windows({kS + kW}, 4000, 6));
  CHECK(store.settled_cost_windows(5000, 4000, 10).value().empty());  // the claim holds
  written = store.write_costs({usage_cost(event_id(12), kS + kW, 4.0)}, pricing);
  REQUIRE(written);
  CHECK(written.value());
  CHECK(stored_usd(kS + kW) == 4.0);
  settled = store.settled_cost_windows(5000, 4000, 10);
  REQUIRE(settled);
  REQUIRE(settled.value().size() == 1);
  CHECK(settled.value()[0].start_ms == kS + kW);
  CHECK(settled.value()[0].marked_at_ms == 4000);
  CHECK(settled.value()[0].nonce == 6);
  CHECK(settled.value()[0].claim_token == 21);
  CostWindowMark next = settled.value()[0];
  REQUIRE(other.claim_cost_window(next, 22, 4000, 64000).value());
  REQUIRE(other.write_costs({usage_cost(event_id(12), kS + kW, 5.0)}, next).value());
  CHECK(stored_usd(kS + kW) == 5.0);
  CHECK(test_support::count_documents(db.uri, db.name, "cost_windows") == 0);

  // A document gone meanwhile (the TTL) is no failure; the others are written.
  REQUIRE(store
              .write_costs({usage_cost(event_id(99), kS, 6.0), usage_cost(event_id(11), kS, 6.0)},
                           std::nullopt)
              .value());
  CHECK(stored_usd(kS) == 6.0);
}

TEST_CASE("MongoStore claims race: of two concurrent claimers, one writes", "[cost][itest]") {
  TestDatabase db;
  mongo::MongoStore store(db.settings());
  mongo::MongoStore other(db.settings());
  REQUIRE(store.prepare(events::GpuCatalog{}));
  // MongoDB lets one claim win. FerretDB 1.24 applies a filtered update as a read and then a
  // replacement, so both can win; the stored token then lets exactly one of them write.
  int both = 0;
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    const std::int64_t start = kS + round * kW;
    REQUIRE(store.mark_cost_windows({start}, 1000, 1));
    CostWindowMark a{start, 1000, 1}, b{start, 1000, 1};
    Result<bool> first = false, second = false;
    std::thread t([&] { first = store.claim_cost_window(a, 100 + round, 2000, 62000); });
    second = other.claim_cost_window(b, 200 + round, 2000, 62000);
    t.join();
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE((first.value() || second.value()));
    if (first.value() && second.value()) ++both;
    int wrote = 0;
    if (first.value()) wrote += store.write_costs({}, a).value() ? 1 : 0;
    if (second.value()) wrote += other.write_costs({}, b).value() ? 1 : 0;
    CHECK(wrote == 1);
  }
  WARN("both claims matched in " << both << " of " << kRounds << " rounds");
  CHECK(test_support::count_documents(db.uri, db.name, "cost_windows") == 0);
}

TEST_CASE("MongoStore prices a window from what write() stored and sums the cost blocks",
          "[cost][itest]") {
  TestDatabase db;
  mongo::MongoStore store(db.settings());
  REQUIRE(store.prepare(events::GpuCatalog{}));

  const std::string h100 = "NVIDIA H100 80GB HBM3";
  const std::string a100 = "NVIDIA A100-SXM4-40GB";
  // GPU-A on node-a with an energy counter (its baseline 10 s before the window), GPU-B on
  // node-b without one. Samples before the lookback and in the next window are left out.
  const auto events = decode_all({
      gpu_json(1, kS - 70000, "GPU-A", "node-a", h100,
               R"("utilization_gpu_percent":99,"energy_consumed_mj":1)"),
      gpu_json(2, kS - 10000, "GPU-A", "node-a", h100,
               R"("utilization_gpu_percent":10,"energy_consumed_mj":1000000)"),
      gpu_json(3, kS + 10000, "GPU-A", "node-a", h100,
               R"("utilization_gpu_percent":50,"energy_consumed_mj":1500000)"),
      gpu_json(4, kS + 40000, "GPU-A", "node-a", h100,
               R"("utilization_gpu_percent":70,"energy_consumed_mj":2000000)"),
      gpu_json(5, kS + 20000, "GPU-B", "node-b", a100, R"("utilization_gpu_percent":30)"),
      gpu_json(6, kS + kW, "GPU-B", "node-b", a100, R"("utilization_gpu_percent":90)"),
      usage_json_event(11, kS + 5000, "m1", "t1", 100, 300,
                       R"("deployment":"d1","host":"node-a","gpu_uuids":["GPU-A"])"),
      usage_json_event(12, kS + 15000, "m1", "t2", 50, 100, R"("deployment":"d1","host":"node-a")"),
      usage_json_event(13, kS + 30000, "m2", "t1", 10, 50, R"("host":"node-b")"),
      usage_json_event(14, kS + 45000, "m2", "t2", 20, 50, R"("deployment":"d2")"),
      usage_json_event(15, kS + 50000, "m2", "t1", 5, 25, R"("deployment":"d-unplaced")"),
      usage_json_event(16, kS + kW + 1000, "m1", "t1", 7, 9, R"("deployment":"d1")"),
  });
  const auto written = store.write(batch_of(events));
  REQUIRE(written);
  CHECK(written.value().gpu_metrics_inserted == 6);
  CHECK(written.value().token_usage_inserted == 6);
  CHECK(written.value().duplicate_indexes.empty());
  // d2 runs on GPU-B; d3 is first seen after the window and is not one of its inputs.
  REQUIRE(store.upsert_placements(
      {{"d2", "gpu:GPU-B", kS - 3600000, kS - 3600000}, {"d3", "host:node-a", kS + kW, kS + kW}}));

  auto inputs = store.cost_window_inputs(kS, kS + kW, kW);
  INFO((inputs ? "" : inputs.error().message));
  REQUIRE(inputs);
  const auto& usage = inputs.value().usage;
  REQUIRE(usage.size() == 5);
  CHECK(usage[0].id == event_id(11));
  CHECK(usage[0].time_ms == kS + 5000);
  CHECK(usage[0].model == "m1");
  CHECK(usage[0].tenant_id == "t1");
  CHECK(usage[0].deployment == "d1");
  CHECK(usage[0].host == "node-a");
  CHECK(usage[0].input_tokens == 100);
  CHECK(usage[0].output_tokens == 300);
  CHECK(usage[0].gpu_uuids == std::vector<std::string>{"GPU-A"});
  CHECK_FALSE(usage[0].stored.priced);
  CHECK_FALSE(usage[0].stored.amortized_usd);
  CHECK(usage[1].id == event_id(12));
  CHECK(usage[1].gpu_uuids.empty());
  CHECK(usage[2].id == event_id(13));
  CHECK(usage[2].deployment.empty());
  CHECK(usage[2].host == "node-b");
  CHECK(usage[3].id == event_id(14));
  CHECK(usage[3].deployment == "d2");
  CHECK(usage[3].host.empty());
  CHECK(usage[4].id == event_id(15));

  const auto& samples = inputs.value().samples;
  REQUIRE(samples.size() == 4);
  CHECK(samples[0].gpu_uuid == "GPU-A");  // the lookback one
  CHECK(samples[0].time_ms == kS - 10000);
  CHECK(samples[0].host == "node-a");
  CHECK(samples[0].model_name == h100);
  CHECK(samples[0].energy_consumed_mj == 1000000);
  CHECK(samples[0].utilization_gpu_percent == 10.0);
  CHECK(samples[1].time_ms == kS + 10000);
  CHECK(samples[2].gpu_uuid == "GPU-B");
  CHECK(samples[2].utilization_gpu_percent == 30.0);
  CHECK_FALSE(samples[2].energy_consumed_mj);
  CHECK(samples[3].energy_consumed_mj == 2000000);

  REQUIRE(inputs.value().placements.size() == 1);
  CHECK(inputs.value().placements[0].deployment == "d2");
  CHECK(inputs.value().placements[0].target == "gpu:GPU-B");
  CHECK(inputs.value().placements[0].first_seen_ms == kS - 3600000);

  const cost::Settings settings;  // 60 s windows, output tokens, 0.12 USD/kWh
  const cost::WindowResult priced =
      cost::price_window(kS, inputs.value(), settings, cost::PriceCatalog::builtin());
  REQUIRE(priced.costs.size() == 5);
  // GPU-A: 400 output tokens (events 11 and 12), 1000 J in the window; event 11 has 3/4.
  REQUIRE(priced.costs[0].amortized_usd);
  CHECK(*priced.costs[0].amortized_usd == Approx(0.75 * 2.49 / 60));
  CHECK(*priced.costs[0].energy_j == Approx(750));
  CHECK_FALSE(priced.costs[4].amortized_usd);  // d-unplaced
  REQUIRE(store.write_costs(priced.costs, std::nullopt));

  inputs = store.cost_window_inputs(kS, kS + kW, kW);
  REQUIRE(inputs);
  REQUIRE(inputs.value().usage.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& stored = inputs.value().usage[i].stored;
    const auto& c = priced.costs[i];
    INFO(c.id);
    CHECK(stored.priced);
    CHECK(stored.amortized_usd == c.amortized_usd);
    CHECK(stored.utilization_usd == c.utilization_usd);
    CHECK(stored.energy_usd == c.energy_usd);
    CHECK(stored.gpu_seconds == c.gpu_seconds);
    CHECK(stored.energy_j == c.energy_j);
    CHECK_FALSE(cost::cost_changed(stored, c));
  }

  // Expected sums per group from the priced blocks.
  const auto expect = [&](auto key_of) {
    std::map<std::string, std::map<std::string, double>> sums;
    for (std::size_t i = 0; i < 5; ++i) {
      const auto& u = inputs.value().usage[i];
      const auto& c = priced.costs[i];
      auto& row = sums[key_of(u)];
      row["requests"] += 1;
      row["input_tokens"] += static_cast<double>(u.input_tokens);
      row["output_tokens"] += static_cast<double>(u.output_tokens);
      row["cost_usd"] += c.amortized_usd.value_or(0);
      row["cost_utilization_usd"] += c.utilization_usd.value_or(0);
      row["cost_energy_usd"] += c.energy_usd.value_or(0);
      row["gpu_seconds"] += c.gpu_seconds.value_or(0);
      row["energy_j"] += c.energy_j.value_or(0);
      row["priced_requests"] += c.amortized_usd ? 1 : 0;
    }
    return sums;
  };
  const auto check_group = [&](const std::string& group_by, auto key_of) {
    UsageQuery query;
    query.group_by = group_by;
    query.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS));
    query.to = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + kW));
    const auto json = store.usage_json(query);
    REQUIRE(json);
    INFO(group_by << ": " << json.value());
    const auto rows = parse_usage(json.value());
    const auto sums = expect(key_of);
    REQUIRE(rows.size() == sums.size());
    for (const auto& [id, expected] : sums) {
      INFO(id);
      REQUIRE(rows.count(id) == 1);
      const UsageTotals& row = rows.at(id);
      CHECK(row.keys == kUsageKeys);
      for (const auto& [key, value] : expected) {
        INFO(key);
        CHECK(row.values.at(key) == Approx(value).margin(1e-12));
      }
    }
  };
  check_group("model", [](const cost::UsageRow& u) { return u.model; });
  check_group("tenant", [](const cost::UsageRow& u) { return u.tenant_id; });
  check_group("deployment", [](const cost::UsageRow& u) { return u.deployment; });

  // A tenant-scoped query token's filter ($in on both collections): t2's rows alone, its costs
  // exactly what the unfiltered tenant grouping gives t2.
  UsageQuery scoped;
  scoped.group_by = "tenant";
  scoped.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS));
  scoped.to = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + kW));
  scoped.tenants = std::vector<std::string>{"t2"};
  const auto scoped_rows = parse_usage(store.usage_json(scoped).value());
  REQUIRE(scoped_rows.size() == 1);
  const auto t2 = expect([](const cost::UsageRow& u) { return u.tenant_id; }).at("t2");
  for (const auto& [key, value] : t2) {
    INFO(key);
    CHECK(scoped_rows.at("t2").values.at(key) == Approx(value).margin(1e-12));
  }
  scoped.group_by = "model";
  const auto t2_models = parse_usage(store.usage_json(scoped).value());
  CHECK(t2_models.at("m1").values.at("input_tokens") == 50);  // event 12
  CHECK(t2_models.at("m2").values.at("input_tokens") == 20);  // event 14
  scoped.tenants = std::vector<std::string>{};
  CHECK(store.usage_json(scoped).value() == "[]");

  // Without a range: event 16 of the next window counts as a request, not as a priced one.
  UsageQuery all;
  const auto json = store.usage_json(all);
  REQUIRE(json);
  const auto rows = parse_usage(json.value());
  CHECK(rows.at("m1").values.at("requests") == 3);
  CHECK(rows.at("m1").values.at("priced_requests") == 2);
  CHECK(rows.at("m1").values.at("input_tokens") == 157);
  CHECK(rows.at("m2").values.at("requests") == 3);
  CHECK(rows.at("m2").values.at("priced_requests") == 2);
  CHECK(json.value().find(R"("requests":3,"input_tokens":157,"output_tokens":409,"cost_usd":)") !=
        std::string::npos);

  const auto starts = store.usage_window_starts(kS - kW, kS + 2 * kW, kW);
  REQUIRE(starts);
  CHECK(starts.value() == std::vector<std::int64_t>{kS, kS + kW});
  CHECK(store.usage_window_starts(kS + 2 * kW, kS + 3 * kW, kW).value().empty());

  // The previous release wrote `cost: {amount_usd}` on the usage document itself: cost_usd sums
  // it too. Event 11's cost moved there from its cost document leaves every sum as it was.
  unset_field(db.uri, db.name, "token_usage_costs", event_id(11), "cost.amortized_usd");
  set_double(db.uri, db.name, "token_usage", event_id(11), "cost.amount_usd",
             *priced.costs[0].amortized_usd);
  UsageQuery by_model;
  by_model.from = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS));
  by_model.to = std::chrono::system_clock::time_point(std::chrono::milliseconds(kS + kW));
  const auto old_rows = parse_usage(store.usage_json(by_model).value());
  const auto expected = expect([](const cost::UsageRow& u) { return u.model; });
  CHECK(old_rows.at("m1").values.at("cost_usd") ==
        Approx(expected.at("m1").at("cost_usd")).margin(1e-12));
  CHECK(old_rows.at("m2").values.at("cost_usd") ==
        Approx(expected.at("m2").at("cost_usd")).margin(1e-12));
}

TEST_CASE("MongoStore placements keep the earliest first_seen and the latest last_seen",
          "[cost][itest]") {
  TestDatabase db;
  mongo::MongoStore store(db.settings());
  REQUIRE(store.prepare(events::GpuCatalog{}));

  REQUIRE(store.upsert_placements({{"d", "gpu:X", 100, 200}, {"d", "host:h", 500, 600}}));
  // Earlier and later than what is stored, the same pair twice in one batch.
  REQUIRE(store.upsert_placements(
      {{"d", "gpu:X", 50, 150}, {"d", "gpu:X", 120, 300}, {"e", "gpu:X", 10, 10}}));
  auto inputs = store.cost_window_inputs(0, 101, 0);
  REQUIRE(inputs);
  auto& placements = inputs.value().placements;
  REQUIRE(placements.size() == 2);
  CHECK(placements[0].deployment == "d");
  CHECK(placements[0].target == "gpu:X");
  CHECK(placements[0].first_seen_ms == 50);
  CHECK(placements[0].last_seen_ms == 300);
  CHECK(placements[1].deployment == "e");
  inputs = store.cost_window_inputs(0, 1000, 0);
  REQUIRE(inputs);
  REQUIRE(inputs.value().placements.size() == 3);
  CHECK(inputs.value().placements[1].target == "host:h");
  CHECK(inputs.value().placements[1].first_seen_ms == 500);
  CHECK(inputs.value().placements[1].last_seen_ms == 600);

  // Two processors learning the same new placements at once: none fails, and every upsert of
  // both is applied (FerretDB ends an update batch at its first E11000, so the retry must run
  // the rest too).
  mongo::MongoStore other(db.settings());
  for (int round = 0; round < 5; ++round) {
    const std::string deployment = "race" + std::to_string(round);
    std::vector<cost::PlacementRow> mine, theirs;
    for (int i = 0; i < 20; ++i) {
      const std::string target = "gpu:" + std::to_string(i);
      mine.push_back({deployment, target, 1000 + i, 2000 + i});
      theirs.push_back({deployment, target, 900 + i, 2100 + i});
    }
    Result<bool> first = true, second = true;
    std::thread t([&] { first = store.upsert_placements(mine); });
    second = other.upsert_placements(theirs);
    t.join();
    INFO((first ? "" : first.error().message) << (second ? "" : second.error().message));
    CHECK(first);
    CHECK(second);
  }
  CHECK(test_support::count_documents(db.uri, db.name, "placements") == 3 + 5 * 20);
  inputs = store.cost_window_inputs(0, 1000000, 0);
  REQUIRE(inputs);
  int raced = 0;
  for (const auto& p : inputs.value().placements) {
    if (p.deployment.rfind("race", 0) != 0) continue;
    ++raced;
    const int i = std::stoi(p.target.substr(4));
    INFO(p.deployment << " " << p.target);
    CHECK(p.first_seen_ms == 900 + i);
    CHECK(p.last_seen_ms == 2100 + i);
  }
  CHECK(raced == 5 * 20);
}

TEST_CASE("MongoStore reports the batch indexes of a redelivery's duplicates", "[cost][itest]") {
  TestDatabase db;
  mongo::MongoStore store(db.settings());
  REQUIRE(store.prepare(events::GpuCatalog{}));

  const std::string sample1 = gpu_json(1, kS, "GPU-A", "node-a", "NVIDIA H100 80GB HBM3", "");
  const std::string usage11 = usage_json_event(11, kS, "m1", "t1", 1, 2, "");
  const std::string usage12 = usage_json_event(12, kS, "m1", "t1", 3, 4, "");
  const auto first = decode_all({sample1, usage11, usage12});
  auto written = store.write(batch_of(first));
  REQUIRE(written);
  CHECK(written.value().duplicates == 0);
  CHECK(written.value().duplicate_indexes.empty());

  // Usage 12, a new sample, usage 11, a new usage, sample 1.
  const auto second = decode_all({
      usage12,
      gpu_json(2, kS + 1000, "GPU-A", "node-a", "NVIDIA H100 80GB HBM3", ""),
      usage11,
      usage_json_event(13, kS, "m1", "t1", 5, 6, ""),
      sample1,
  });
  written = store.write(batch_of(second));
  REQUIRE(written);
  CHECK(written.value().duplicates == 3);
  CHECK(written.value().duplicate_indexes == std::vector<std::size_t>{0, 2, 4});
  CHECK(written.value().gpu_metrics_inserted == 1);
  CHECK(written.value().token_usage_inserted == 1);
  CHECK(written.value().rejected.empty());
}

TEST_CASE("MongoStore marks every minute of a database from before the usage rollups, once",
          "[rollup][itest]") {
  TestDatabase db;
  {
    mongo::MongoStore store(db.settings());
    REQUIRE(store.prepare(events::GpuCatalog{}));
    // A new database: nothing to mark, and the pass is done.
    CHECK(store.marked_usage_minutes().value().empty());
    const auto events = decode_all({
        usage_json_event(11, kS + 5000, "m1", "t1", 1, 2, ""),
        usage_json_event(12, kS + kW + 1000, "m1", "t2", 3, 4, ""),
        usage_json_event(13, kS + kW + 2000, "m2", "t1", 5, 6, ""),
    });
    REQUIRE(store.write(batch_of(events)));
    CHECK(store.roll_up_usage(unix_ms(std::chrono::system_clock::now()), 10).value() == 2);
  }
  // The previous release kept neither rollups nor marks nor the marker.
  for (const char* collection : {"usage_minutes", "usage_marks", "telemetryd_meta"}) {
    test_support::drop_collection(db.uri, db.name, collection);
  }
  UsageQuery all;
  all.group_by = "tenant";
  {
    mongo::MongoStore store(db.settings());
    REQUIRE(store.prepare(events::GpuCatalog{}));
    CHECK(store.marked_usage_minutes().value() == std::vector<std::int64_t>{kS, kS + kW});
    const auto before = parse_usage(store.usage_json(all).value());
    CHECK(before.at("t1").values.at("requests") == 2);
    CHECK(before.at("t2").values.at("input_tokens") == 3);
    CHECK(store.roll_up_usage(unix_ms(std::chrono::system_clock::now()), 10).value() == 2);
    CHECK(store.usage_minutes(kS, kS + 2 * kW).value().size() == 3);
    const auto after = parse_usage(store.usage_json(all).value());
    CHECK(after.at("t1").values == before.at("t1").values);
    CHECK(after.at("t2").values == before.at("t2").values);
  }
  // Rows and marks gone again (a TTL that expired every row): the marker keeps the pass from
  // running twice.
  test_support::drop_collection(db.uri, db.name, "usage_minutes");
  {
    mongo::MongoStore store(db.settings());
    REQUIRE(store.prepare(events::GpuCatalog{}));
    CHECK(store.marked_usage_minutes().value().empty());
  }
  // A pass that stopped halfway (one minute marked, the marker still "marking") runs again at
  // the next start and marks the rest.
  mongo::MongoStore store(db.settings());
  REQUIRE(
      store.write(batch_of(decode_all({usage_json_event(11, kS + 5000, "m1", "t1", 1, 2, "")}))));
  CHECK(store.marked_usage_minutes().value() == std::vector<std::int64_t>{kS});
  update_document(db.uri, db.name, "telemetryd_meta", "usage_rollups_initialized",
                  BCON_NEW("$set", "{", "state", BCON_UTF8("marking"), "}"));
  REQUIRE(store.prepare(events::GpuCatalog{}));
  CHECK(store.marked_usage_minutes().value() == std::vector<std::int64_t>{kS, kS + kW});
}
