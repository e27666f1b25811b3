// The SQLite store's latest-sample-per-GPU view (gpu_latest): a file written before the view
// existed gets it filled at start, and the in-memory copy. Newest wins under redelivery and late
// samples is the sink conformance suite's (sink_conformance_sqlite_test.cpp).

#include <catch2/catch.hpp>
#include <filesystem>

#include "processor/latest_view.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/gpu_history_samples.hpp"
#include "support/latest_view_checks.hpp"
#include "support/sqlite_shell.hpp"
#include "support/temp_dir.hpp"

using namespace telemetryd;

namespace {

struct TempFile {
  test_support::TempDir dir{"latest"};
  std::filesystem::path path = dir.path / "latest.sqlite3";
};

}  // namespace

TEST_CASE("SQLite latest view: a file written before the view is filled from history at start",
          "[sqlite][latest]") {
  TempFile file;
  {
    sqlite::SqliteStore store(file.path.string());
    REQUIRE(store.prepare(events::GpuCatalog{}));
    REQUIRE(store.write(test_support::stored(test_support::history_events())));
  }
  // What an older release left: the history without the view.
  test_support::SqliteShell(file.path.string()).exec("DROP TABLE gpu_latest");

  sqlite::SqliteStore store(file.path.string());
  REQUIRE(store.prepare(events::GpuCatalog{}));
  CHECK(store.devices_json().value() == test_support::kHistoryDevicesJson);
  CHECK(test_support::latest_id(store, "GPU-hist-1") == "h-5");
  CHECK(test_support::latest_id(store, "GPU-hist-2") == "h-other");

  // A later start leaves a filled view as it is, and writes go on from it.
  sqlite::SqliteStore again(file.path.string());
  REQUIRE(again.prepare(events::GpuCatalog{}));
  test_support::write_events(
      again, {test_support::history_event("h-6", "GPU-hist-1", std::chrono::seconds(50), "")});
  CHECK(test_support::latest_id(again, "GPU-hist-1") == "h-6");
  CHECK(test_support::latest_id(again, "", "node-b") == "h-other");
}

TEST_CASE("the in-memory copy of the view answers without the store until this process writes",
          "[sqlite][latest]") {
  TempFile file;
  sqlite::SqliteStore store(file.path.string());
  REQUIRE(store.prepare(events::GpuCatalog{}));
  REQUIRE(store.keeps_latest_view());
  processor::LatestViewCache cache(store, std::chrono::hours(1));
  CHECK_FALSE(cache.cached_devices_json());  // nothing read yet
  CHECK(cache.devices_json().value() == "[]");
  CHECK(cache.cached_devices_json() == std::optional<std::string>("[]"));

  test_support::write_events(store, {test_support::latest_view_event("c-1", "GPU-lv-1", 1, 10)});
  CHECK_FALSE(cache.cached_latest_json({"GPU-lv-1", ""}));  // stale: this process wrote
  CHECK(cache.latest_json({"GPU-lv-1", ""}).value() ==
        store.latest_gpu_json({"GPU-lv-1", ""}).value());
  CHECK(cache.cached_devices_json() == store.devices_json().value());
  CHECK(cache.cached_latest_json({"GPU-nope", ""}) == std::optional<std::string>("null"));

  // A write that changes nothing (a redelivery) leaves the copy as it is.
  const std::vector<events::DecodedEvent> again{
      test_support::latest_view_event("c-1", "GPU-lv-1", 1, 10)};
  REQUIRE(store.write(test_support::stored(again)));
  CHECK(cache.cached_devices_json());

  // Older than max_age: read again.
  processor::LatestViewCache young(store, std::chrono::milliseconds(0));
  REQUIRE(young.devices_json());
  CHECK_FALSE(young.cached_devices_json());
}
