// Several sinks (processor.sinks: [mongodb, influxdb]): the TeeStore over a real SQLite primary and
// a scripted secondary (a stand-in for InfluxDB's answers: an outage, then a refusal of one point).

#include "sinks/tee_store.hpp"

#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <deque>
#include <filesystem>

#include "app/roles.hpp"
#include "sqlite/sqlite_store.hpp"
#include "telemetryd/source.hpp"

using namespace telemetryd;
using namespace telemetryd::sinks;

namespace {

class ScriptedStore final : public Store {
 public:
  std::deque<Result<WriteOutcome>> answers;
  int writes = 0;
  Result<bool> prepare(const events::GpuCatalog&) override { return true; }
  Result<WriteOutcome> write(const std::vector<StoredEvent>&) override {
    ++writes;
    Result<WriteOutcome> next = answers.front();
    answers.pop_front();
    return next;
  }
  Result<std::string> latest_gpu_json(const GpuQuery&) override { return std::string("null"); }
  Result<std::string> gpus_json() override { return std::string("[]"); }
  Result<std::string> usage_json(const UsageQuery&) override { return std::string("[]"); }
  Result<std::string> gpu_series_json(const query::SeriesQuery&) override {
    return std::string("null");
  }
  Result<std::string> devices_json() override { return std::string("[]"); }
  bool supports_queries() const override { return false; }
};

std::vector<events::DecodedEvent> decoded(std::size_t count) {
  const Config config = load_config({.role = "producer"}, app::role_catalog());
  auto source = SourceRegistry::instance().find("synthetic")->create(config, Topics{});
  std::vector<Event> events;
  std::string error;
  while (events.size() < count) source->sample(events, error);
  events.resize(count);
  simdjson::dom::parser parser;
  std::vector<events::DecodedEvent> out;
  for (const auto& e : events)
    out.push_back(std::get<events::DecodedEvent>(events::decode_event(e.payload, parser)));
  return out;
}

}  // namespace

TEST_CASE(
    "store both: a retry after the secondary failed skips the primary; refusals of either "
    "leave the counts exact",
    "[influx][store]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-tee-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto primary = std::make_unique<sqlite::SqliteStore>((dir / "db.sqlite3").string());
  auto secondary = std::make_unique<ScriptedStore>();
  ScriptedStore& influx = *secondary;
  WriteOutcome refuse_one;
  refuse_one.rejected.emplace_back(1, "influxdb write answered 400: field type conflict");
  influx.answers = {Error::retryable("influxdb 127.0.0.1:8086: connect: Connection refused"),
                    refuse_one};
  TeeStore tee(std::move(primary), std::move(secondary));
  events::GpuCatalog catalog;
  REQUIRE(tee.prepare(catalog));
  CHECK(tee.supports_queries());  // from the primary

  const auto events = decoded(10);
  std::vector<StoredEvent> batch;
  for (const auto& e : events) batch.push_back({&e});
  CHECK(tee.keeps_latest_view());  // the primary's view, served through the tee
  const auto generation = tee.latest_generation();
  Result<WriteOutcome> first = tee.write(batch);
  REQUIRE_FALSE(first);
  // The primary stored GPU samples before the secondary failed: cached views are stale now.
  CHECK(tee.latest_generation() > generation);
  REQUIRE(tee.latest_samples());
  CHECK_FALSE(tee.latest_samples()->empty());
  CHECK(first.error().kind == Error::Kind::kRetryable);

  Result<WriteOutcome> second = tee.write(batch);
  REQUIRE(second);
  CHECK(influx.writes == 2);
  // Had the primary been written again, its 10 events would be 10 duplicates now.
  CHECK(second->duplicates == 0);
  CHECK(second->gpu_metrics_inserted + second->token_usage_inserted == 9);
  REQUIRE(second->rejected.size() == 1);
  CHECK(second->rejected[0].first == 1);

  // A new batch (the same events again: a redelivery) goes to the primary again.
  influx.answers = {WriteOutcome{}};
  Result<WriteOutcome> third = tee.write({batch.begin(), batch.begin() + 4});
  REQUIRE(third);
  CHECK(third->duplicates == 4);

  // The usage rollups are the primary's too: its marks, its roll-up, its rows.
  CHECK(tee.keeps_usage_rollups());
  const auto rolled = tee.roll_up_usage(INT64_MAX, 100);
  REQUIRE(rolled);
  CHECK(tee.marked_usage_minutes().value().empty());
  CHECK(tee.usage_minutes(0, INT64_MAX).value().size() >= (rolled.value() > 0 ? 1U : 0U));
  CHECK(tee.usage_hours(0, INT64_MAX));
  std::filesystem::remove_all(dir);
}
