// Usage rollups: how a /v1/usage range splits into hour rows, minute rows and requests, and the
// SQLite store's upgrade and retention of them. That a rollup is exact and unchanged by redelivery
// is the sink conformance suite's (sink_conformance_sqlite_test.cpp).

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <limits>

#include "query/usage_rollup.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/sink_conformance.hpp"
#include "support/sqlite_shell.hpp"
#include "support/temp_dir.hpp"

using namespace telemetryd;
using query::kRollupMinuteMs;
using query::minute_of;
using query::plan_usage;
using Edges = std::vector<std::pair<std::int64_t, std::int64_t>>;

TEST_CASE("minute_of floors to the minute, before the epoch too", "[rollup]") {
  CHECK(minute_of(0) == 0);
  CHECK(minute_of(59999) == 0);
  CHECK(minute_of(60000) == 60000);
  CHECK(minute_of(-1) == -60000);
  CHECK(minute_of(-60000) == -60000);
  CHECK(minute_of(-60001) == -120000);
}

TEST_CASE("a usage range splits into whole rolled minutes and partial edges", "[rollup]") {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const std::int64_t m = 1000 * kRollupMinuteMs;

  SECTION("aligned bounds: minutes only") {
    const auto p = plan_usage(m, m + 3 * kRollupMinuteMs);
    CHECK(p.rolled_from_ms == m);
    CHECK(p.rolled_to_ms == m + 3 * kRollupMinuteMs);
    CHECK(p.edges.empty());
  }
  SECTION("cut minutes at both ends") {
    const auto p = plan_usage(m + 20000, m + 2 * kRollupMinuteMs + 5);
    CHECK(p.rolled_from_ms == m + kRollupMinuteMs);
    CHECK(p.rolled_to_ms == m + 2 * kRollupMinuteMs);
    CHECK(p.edges == Edges{{m + 20000, m + kRollupMinuteMs},
                           {m + 2 * kRollupMinuteMs, m + 2 * kRollupMinuteMs + 5}});
  }
  SECTION("inside one minute: all from the requests") {
    const auto p = plan_usage(m + 1, m + 59999);
    CHECK(p.rolled_from_ms == p.rolled_to_ms);
    CHECK(p.edges == Edges{{m + 1, m + 59999}});
  }
  SECTION("across one boundary without a whole minute") {
    const auto p = plan_usage(m + 30000, m + 90000);
    CHECK(p.rolled_from_ms == p.rolled_to_ms);
    CHECK(p.edges == Edges{{m + 30000, m + 90000}});
  }
  SECTION("unbounded sides take every minute, with no edge there") {
    const auto all = plan_usage(std::nullopt, std::nullopt);
    CHECK(all.rolled_from_ms == kMin);
    CHECK(all.rolled_to_ms == kMax);
    CHECK(all.edges.empty());
    const auto until = plan_usage(std::nullopt, m + 5);
    CHECK(until.rolled_from_ms == kMin);
    CHECK(until.rolled_to_ms == m);
    CHECK(until.edges == Edges{{m, m + 5}});
    const auto since = plan_usage(m - 5, std::nullopt);
    CHECK(since.rolled_from_ms == m);
    CHECK(since.rolled_to_ms == kMax);
    CHECK(since.edges == Edges{{m - 5, m}});
  }
  SECTION("an empty or reversed range reads nothing") {
    for (const auto& p : {plan_usage(m, m), plan_usage(m + kRollupMinuteMs, m)}) {
      CHECK(p.rolled_from_ms == p.rolled_to_ms);
      CHECK(p.edges.empty());
    }
  }
  SECTION("a bound near the end of time does not overflow") {
    const auto p = plan_usage(kMax - 10, std::nullopt);
    CHECK(p.rolled_from_ms == p.rolled_to_ms);
    CHECK(p.edges == Edges{{kMax - 10, kMax}});
  }
}

TEST_CASE("a usage range reads whole clean hours, other whole minutes, and requests", "[rollup]") {
  using query::kRollupHourMs;
  using query::plan_usage_reads;
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const std::int64_t h = 100 * kRollupHourMs;
  const std::int64_t m = kRollupMinuteMs;

  SECTION("no marks: hours inside, minutes round them, requests at the cut ends") {
    const auto r = plan_usage_reads(h - 2 * m - 5, h + 3 * kRollupHourMs + m + 7, {});
    CHECK(r.hours == Edges{{h, h + 3 * kRollupHourMs}});
    CHECK(r.minutes == Edges{{h - 2 * m, h}, {h + 3 * kRollupHourMs, h + 3 * kRollupHourMs + m}});
    CHECK(r.requests == Edges{{h - 2 * m - 5, h - 2 * m},
                              {h + 3 * kRollupHourMs + m, h + 3 * kRollupHourMs + m + 7}});
  }
  SECTION("a marked minute: its hour is read from minutes, the minute from requests") {
    const auto r = plan_usage_reads(h, h + 3 * kRollupHourMs,
                                    {h + kRollupHourMs + 5 * m, h - m, h + 9 * kRollupHourMs});
    CHECK(r.hours == Edges{{h, h + kRollupHourMs}, {h + 2 * kRollupHourMs, h + 3 * kRollupHourMs}});
    CHECK(r.minutes == Edges{{h + kRollupHourMs, h + kRollupHourMs + 5 * m},
                             {h + kRollupHourMs + 6 * m, h + 2 * kRollupHourMs}});
    CHECK(r.requests == Edges{{h + kRollupHourMs + 5 * m, h + kRollupHourMs + 6 * m}});
  }
  SECTION("adjacent marked minutes join; marks in the cut edges add nothing") {
    const auto r = plan_usage_reads(h + 30, h + 10 * m, {h, h + 3 * m, h + 4 * m, h + 3 * m});
    CHECK(r.hours.empty());
    CHECK(r.minutes == Edges{{h + m, h + 3 * m}, {h + 5 * m, h + 10 * m}});
    CHECK(r.requests == Edges{{h + 30, h + m}, {h + 3 * m, h + 5 * m}});
  }
  SECTION("unbounded: every hour but the marked ones'") {
    const auto r = plan_usage_reads(std::nullopt, std::nullopt, {h + m});
    CHECK(r.hours == Edges{{kMin, h}, {h + kRollupHourMs, kMax}});
    CHECK(r.minutes == Edges{{h, h + m}, {h + 2 * m, h + kRollupHourMs}});
    CHECK(r.requests == Edges{{h + m, h + 2 * m}});
  }
  SECTION("inside one minute: the requests only") {
    const auto r = plan_usage_reads(h + 1, h + 2, {h});
    CHECK(r.hours.empty());
    CHECK(r.minutes.empty());
    CHECK(r.requests == Edges{{h + 1, h + 2}});
  }
}

namespace {

namespace conformance = test_support::conformance;

std::vector<events::DecodedEvent> three_minutes_of_usage(std::int64_t m0) {
  std::vector<events::DecodedEvent> out;
  for (int i = 0; i < 6; ++i) {
    out.push_back(conformance::usage_at("upgrade" + std::to_string(i), m0 + i * 30000 + 7,
                                        "model-" + std::to_string(i % 2), "tenant", "", 10, i));
  }
  return out;
}

}  // namespace

TEST_CASE(
    "SQLite: a file written before the rollups gets its minutes marked and its costs "
    "copied to their columns at start, once",
    "[rollup][sqlite]") {
  test_support::TempDir dir{"rollup"};
  const std::string path = (dir.path / "old.sqlite3").string();
  const std::int64_t m0 = minute_of(conformance::base_ms());
  const auto events = three_minutes_of_usage(m0);
  conformance::RollupCosts costs;
  std::string answer;
  {
    sqlite::SqliteStore store(path);
    REQUIRE(store.prepare(events::GpuCatalog{}));
    conformance::written(store, events);
    const std::vector<cost::UsageCost> blocks{conformance::rollup_cost(events[1], true),
                                              conformance::rollup_cost(events[4], true)};
    for (const auto& c : blocks) costs[c.id] = c;
    REQUIRE(store.write_costs(blocks, std::nullopt));
    answer = store.usage_json({}).value();
    CHECK(answer.find("\"priced_requests\":1") != std::string::npos);
  }
  // What an older release left: the requests, their costs only in the documents, no rollups.
  test_support::SqliteShell(path).exec(
      "DROP TABLE usage_minutes; DROP TABLE usage_hours; DROP TABLE usage_marks; ALTER TABLE "
      "token_usage DROP COLUMN cost_utilization_usd; ALTER TABLE token_usage DROP COLUMN "
      "cost_energy_usd; ALTER TABLE token_usage DROP COLUMN cost_gpu_seconds; ALTER TABLE "
      "token_usage DROP COLUMN cost_energy_j");

  sqlite::SqliteStore store(path);
  REQUIRE(store.prepare(events::GpuCatalog{}));
  CHECK(store.marked_usage_minutes().value() ==
        std::vector<std::int64_t>{m0, m0 + kRollupMinuteMs, m0 + 2 * kRollupMinuteMs});
  CHECK(store.usage_json({}).value() == answer);  // the costs read from the new columns
  CHECK(store.roll_up_usage(0, 2).value() == 2);  // marked at 0: settled; two per round
  CHECK(store.roll_up_usage(0, 2).value() == 1);
  CHECK(store.usage_minutes(m0, m0 + 3 * kRollupMinuteMs).value() ==
        conformance::expected_rows(events, costs, m0, m0 + 3 * kRollupMinuteMs));
  CHECK(store.usage_hours(0, std::numeric_limits<std::int64_t>::max()).value() ==
        conformance::expected_rows(events, costs, 0, std::numeric_limits<std::int64_t>::max(),
                                   query::kRollupHourMs));
  // A later start finds rollups: nothing is marked again.
  sqlite::SqliteStore again(path);
  REQUIRE(again.prepare(events::GpuCatalog{}));
  CHECK(again.marked_usage_minutes().value().empty());
}

TEST_CASE("SQLite retention takes the rollups of what it deletes, and rolls up the cut hour again",
          "[rollup][sqlite]") {
  test_support::TempDir dir{"rollup"};
  const std::string path = (dir.path / "retention.sqlite3").string();
  const std::int64_t m0 = minute_of(conformance::base_ms());
  const auto events = three_minutes_of_usage(m0);
  sqlite::SqliteStore store(path);
  REQUIRE(store.prepare(events::GpuCatalog{}));
  conformance::written(store, events);
  REQUIRE(store.roll_up_usage(std::numeric_limits<std::int64_t>::max(), 100).value() == 3);

  // Everything older than m0 + 1.5 min goes: the first minute whole, half of the second.
  sqlite::RetentionSettings settings;
  settings.max_age_ms = 1;
  const std::int64_t cut = m0 + kRollupMinuteMs + 30000;
  const auto pass = store.enforce_retention(settings, cut + 1);
  REQUIRE(pass);
  // Marked: the minutes left of the hour the cut falls in (its hour rows are gone).
  std::vector<std::int64_t> left;
  for (const std::int64_t minute : {m0 + kRollupMinuteMs, m0 + 2 * kRollupMinuteMs}) {
    if (query::hour_of(minute) == query::hour_of(cut)) left.push_back(minute);
  }
  CHECK(store.marked_usage_minutes().value() == left);
  REQUIRE(store.roll_up_usage(std::numeric_limits<std::int64_t>::max(), 100).value() ==
          left.size());
  std::vector<events::DecodedEvent> kept;
  for (const auto& e : events)
    if (unix_ms(e.time) >= cut) kept.push_back(e);
  CHECK(kept.size() == 3);
  CHECK(store.usage_minutes(m0 - kRollupMinuteMs, m0 + 3 * kRollupMinuteMs).value() ==
        conformance::expected_rows(kept, {}, m0, m0 + 3 * kRollupMinuteMs));
  CHECK(store.usage_hours(0, std::numeric_limits<std::int64_t>::max()).value() ==
        conformance::expected_rows(kept, {}, 0, std::numeric_limits<std::int64_t>::max(),
                                   query::kRollupHourMs));
}
