// GPU history from the processor's MongoDB store against the real FerretDB: the known samples
// written through MongoStore::write come back as exactly the buckets and latest devices SQLite
// answers (tests/support/gpu_history_samples.hpp), and a database that does not answer is a
// retryable error (the routes' 503).

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "mongo/mongo_store.hpp"
#include "support/child_process.hpp"
#include "support/gpu_history_samples.hpp"
#include "support/latest_view_checks.hpp"
#include "support/mongo_probe.hpp"

using namespace telemetryd;
using namespace std::chrono_literals;

namespace {

mongo::MongoStoreSettings settings_for(const std::string& uri, const std::string& database) {
  mongo::MongoStoreSettings settings;
  settings.connection.uri = uri;
  settings.database = database;
  return settings;
}

// A database of its own, dropped when the test ends.
struct TestDatabase {
  std::string uri = test_support::required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string name;
  explicit TestDatabase(const char* prefix)
      : name(prefix + std::to_string(getpid()) + "_" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() %
                            100000000)) {}
  ~TestDatabase() { test_support::drop_database(uri, name); }
};

}  // namespace

TEST_CASE("MongoStore answers the known samples' buckets and latest devices exactly",
          "[history][itest]") {
  const std::string uri = test_support::required_env("TELEMETRYD_TEST_MONGO_URI");
  const std::string database =
      "hitest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
  struct Drop {
    std::string uri, database;
    ~Drop() { test_support::drop_database(uri, database); }
  } drop{uri, database};

  mongo::MongoStore store(settings_for(uri, database));
  REQUIRE(store.prepare(events::GpuCatalog{}));
  CHECK(store.devices_json().value() == "[]");
  const auto events = test_support::history_events();
  const auto written = store.write(test_support::stored(events));
  REQUIRE(written);
  CHECK(written.value().gpu_metrics_inserted == events.size());

  const auto series = store.gpu_series_json(test_support::history_query());
  INFO((series ? series.value() : series.error().message));
  REQUIRE(series);
  CHECK(series.value() == test_support::kHistoryPointsJson);
  const auto devices = store.devices_json();
  REQUIRE(devices);
  CHECK(devices.value() == test_support::kHistoryDevicesJson);

  query::SeriesQuery minute = test_support::history_query();
  minute.step_ms = 60000;
  const auto one = store.gpu_series_json(minute);
  REQUIRE(one);
  CHECK(one.value().find("\"samples\":5,\"utilization_gpu_percent\":{\"avg\":28,\"max\":60}") !=
        std::string::npos);

  query::SeriesQuery empty = test_support::history_query();
  empty.from += 1h;
  empty.to += 1h;
  CHECK(store.gpu_series_json(empty).value() == "[]");
  query::SeriesQuery unknown = test_support::history_query();
  unknown.gpu_uuid = "GPU-nope";
  CHECK(store.gpu_series_json(unknown).value() == "null");

  // A redelivery stores nothing new and changes no average.
  const auto again = store.write(test_support::stored(events));
  REQUIRE(again);
  CHECK(again.value().duplicates == events.size());
  CHECK(store.gpu_series_json(test_support::history_query()).value() ==
        test_support::kHistoryPointsJson);
}

TEST_CASE("MongoStore history queries fail retryably when the database does not answer",
          "[history][itest]") {
  // Nothing listens on port 1: server selection gives up after make_store_pool's 3 s.
  mongo::MongoStore store(settings_for("mongodb://127.0.0.1:1/", "unused"));
  const auto series = store.gpu_series_json(test_support::history_query());
  REQUIRE_FALSE(series);
  CHECK(series.error().kind == Error::Kind::kRetryable);
  const auto devices = store.devices_json();
  REQUIRE_FALSE(devices);
  CHECK(devices.error().kind == Error::Kind::kRetryable);
}

TEST_CASE("MongoStore latest view: a database from before the view is filled at start",
          "[history][latest][itest]") {
  const TestDatabase db("lvbackfill");
  {
    mongo::MongoStore store(settings_for(db.uri, db.name));
    REQUIRE(store.prepare(events::GpuCatalog{}));
    REQUIRE(store.write(test_support::stored(test_support::history_events())));
  }
  // What an older release left: the history without the view.
  test_support::drop_collection(db.uri, db.name, "gpu_latest");
  REQUIRE(test_support::count_documents(db.uri, db.name, "gpu_latest") == 0);

  mongo::MongoStore store(settings_for(db.uri, db.name));
  REQUIRE(store.prepare(events::GpuCatalog{}));
  CHECK(store.devices_json().value() == test_support::kHistoryDevicesJson);
  CHECK(test_support::latest_id(store, "GPU-hist-1") == "h-5");
  CHECK(test_support::latest_id(store, "", "node-b") == "h-other");

  // A later start leaves a filled view as it is, and writes go on from it.
  mongo::MongoStore again(settings_for(db.uri, db.name));
  REQUIRE(again.prepare(events::GpuCatalog{}));
  test_support::write_events(
      again, {test_support::history_event("h-6", "GPU-hist-1", std::chrono::seconds(50), "")});
  CHECK(test_support::latest_id(again, "GPU-hist-1") == "h-6");
  CHECK(test_support::count_documents(db.uri, db.name, "gpu_latest") == 2);
}
