// Retention of the embedded SQLite store at an explicit `now`: the age, the size bound, the
// cost rows that go with deleted time, and what is never deleted.

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "app/roles.hpp"
#include "processor/processor_core.hpp"
#include "sqlite/retention_task.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/sqlite_shell.hpp"
#include "telemetryd/source.hpp"
#include "telemetryd/time_format.hpp"

using namespace telemetryd;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;
constexpr std::int64_t kNow = 1'760'000'000'000;  // 2025-10-09

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("telemetryd-retention-" + std::to_string(getpid()));
  TempDir() {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// A second connection, as an operator's sqlite3 shell would open the file.
class Db : public test_support::SqliteShell {
 public:
  using SqliteShell::SqliteShell;
  // Events at the given times, with documents about as large as the synthetic fleet's.
  void insert(const std::string& table, const std::vector<std::int64_t>& times) {
    exec("BEGIN");
    static std::int64_t next_id = 0;
    for (const std::int64_t ts : times) {
      const std::string id = "'" + table + std::to_string(next_id++) + "'";
      const std::string doc = "'{\"pad\":\"" + std::string(400, 'x') + "\"}'";
      exec(table == "gpu_metrics"
               ? "INSERT INTO gpu_metrics VALUES (" + id + ", " + std::to_string(ts) +
                     ", 'GPU-1', 'host-1', " + doc + ")"
               : "INSERT INTO token_usage (id, ts, model, tenant_id, input_tokens, "
                 "output_tokens, amount_usd, doc) VALUES (" +
                     id + ", " + std::to_string(ts) + ", 'm', 't', 10, 20, NULL, " + doc + ")");
    }
    exec("COMMIT");
  }
};

// count times from `first`, `step` apart.
std::vector<std::int64_t> times(std::int64_t first, std::int64_t step, int count) {
  std::vector<std::int64_t> out;
  for (int i = 0; i < count; ++i) out.push_back(first + i * step);
  return out;
}

// A prepared store and a second connection to its file; a legacy file was created before
// retention (without auto_vacuum).
struct StoreFile {
  explicit StoreFile(bool legacy_file = false)
      : path(created(dir, legacy_file)), store(path), db(path) {
    REQUIRE(store.prepare(telemetryd::events::GpuCatalog{}));
  }
  static std::string created(const TempDir& dir, bool legacy_file) {
    const std::string path = (dir.path / "r.sqlite3").string();
    if (legacy_file) Db(path).exec("CREATE TABLE created_before_retention (x)");
    return path;
  }
  TempDir dir;
  std::string path;
  sqlite::SqliteStore store;
  Db db;
};

}  // namespace

TEST_CASE("retention deletes events older than the age in batches, with their cost rows",
          "[sqlite][retention]") {
  StoreFile file;
  auto& store = file.store;
  auto& db = file.db;
  // Ten days of samples every 5 minutes and usage every 20: 2880 and 720 rows.
  db.insert("gpu_metrics", times(kNow - 10 * kDay, 5 * kMinute, 2880));
  db.insert("token_usage", times(kNow - 10 * kDay, 20 * kMinute, 720));
  const std::int64_t cutoff = kNow - 7 * kDay;
  const std::int64_t old_metrics =
      db.integer("SELECT count(*) FROM gpu_metrics WHERE ts < " + std::to_string(cutoff));
  const std::int64_t old_usage =
      db.integer("SELECT count(*) FROM token_usage WHERE ts < " + std::to_string(cutoff));
  REQUIRE(old_metrics == 864);
  REQUIRE(old_usage == 216);
  // A window older than the retention goes; a recent one stays.
  REQUIRE(store.mark_cost_windows({kNow - 9 * kDay, kNow - kMinute}, kNow, 1));
  // Placements last seen 9 days ago serve no window kept (TTL one day); 6.5 days ago they do.
  REQUIRE(store.upsert_placements(
      {{"old", "gpu:GPU-1", kNow - 10 * kDay, kNow - 9 * kDay},
       {"kept", "gpu:GPU-1", kNow - 10 * kDay, kNow - 6 * kDay - 12 * kHour},
       {"new", "gpu:GPU-1", kNow - kDay, kNow}}));

  sqlite::RetentionSettings settings;
  settings.max_age_ms = 7 * kDay;
  settings.batch_rows = 100;
  settings.max_batches = 5;
  metrics::Registry registry;
  sqlite::RetentionTask task(store, settings, registry);

  // Five statements a pass: the first passes stop with work left, the writer's turn between.
  auto first = task.run_once(kNow);
  REQUIRE(first);
  CHECK(first.value().more);
  CHECK(first.value().gpu_metrics == 500);
  CHECK(first.value().batch_seconds.size() == 5);
  std::int64_t metrics_deleted = first.value().gpu_metrics;
  std::int64_t usage_deleted = first.value().token_usage;
  for (int pass = 0; pass < 20; ++pass) {
    auto next = task.run_once(kNow);
    REQUIRE(next);
    metrics_deleted += next.value().gpu_metrics;
    usage_deleted += next.value().token_usage;
    if (!next.value().more) break;
  }
  CHECK(metrics_deleted == old_metrics);
  CHECK(usage_deleted == old_usage);
  CHECK(db.integer("SELECT min(ts) FROM gpu_metrics") >= cutoff);
  CHECK(db.integer("SELECT min(ts) FROM token_usage") >= cutoff);
  CHECK(db.integer("SELECT count(*) FROM gpu_metrics") == 2880 - old_metrics);
  CHECK(db.integer("SELECT count(*) FROM cost_windows") == 1);
  CHECK(db.integer("SELECT start FROM cost_windows") == kNow - kMinute);
  CHECK(db.integer("SELECT count(*) FROM placements WHERE deployment = 'old'") == 0);
  CHECK(db.integer("SELECT count(*) FROM placements") == 2);

  const std::string text = registry.expose();
  CHECK(text.find("\nembedded_retention_deleted_total{table=\"gpu_metrics\"} 864\n") !=
        std::string::npos);
  CHECK(text.find("\nembedded_retention_deleted_total{table=\"token_usage\"} 216\n") !=
        std::string::npos);
  CHECK(text.find("\nembedded_retention_deleted_total{table=\"cost_windows\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("\nembedded_retention_deleted_total{table=\"placements\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("\nembedded_database_bytes{pages=\"used\"} ") != std::string::npos);
  CHECK(text.find("embedded_retention_batch_seconds_count") != std::string::npos);

  // Nothing more is due at the same time; with no age nothing is ever due.
  auto again = store.enforce_retention(settings, kNow);
  REQUIRE(again);
  CHECK(again.value().gpu_metrics + again.value().token_usage == 0);
  auto forever = store.enforce_retention({}, kNow + 100 * kDay);
  REQUIRE(forever);
  CHECK(forever.value().gpu_metrics + forever.value().token_usage == 0);
}

TEST_CASE("retention keeps the GPU samples an unpriced window past the cutoff reads",
          "[sqlite][retention]") {
  StoreFile file;
  auto& store = file.store;
  auto& db = file.db;
  const std::int64_t cutoff = kNow - 7 * kDay;
  db.insert("gpu_metrics", times(cutoff - 10 * kMinute, kMinute, 20));
  // Marked, not yet priced, starting 2 minutes after the cutoff: the pricer reads one window
  // (lookback_ms) of samples before it.
  REQUIRE(store.mark_cost_windows({cutoff + 2 * kMinute}, kNow, 1));
  sqlite::RetentionSettings settings;
  settings.max_age_ms = 7 * kDay;
  settings.lookback_ms = 5 * kMinute;
  auto pass = store.enforce_retention(settings, kNow);
  REQUIRE(pass);
  CHECK(db.integer("SELECT min(ts) FROM gpu_metrics") == cutoff - 3 * kMinute);
  CHECK(pass.value().gpu_metrics == 7);
  CHECK(db.integer("SELECT count(*) FROM cost_windows") == 1);
}

TEST_CASE("the size bound deletes the oldest first and the file stops growing",
          "[sqlite][retention]") {
  // New files give freed pages back (auto_vacuum=INCREMENTAL); files from before retention
  // cannot switch without a VACUUM, and reuse them instead.
  const bool legacy_file = GENERATE(false, true);
  INFO("file without auto_vacuum: " << legacy_file);
  StoreFile file(legacy_file);
  auto& store = file.store;
  auto& db = file.db;
  CHECK(db.integer("PRAGMA auto_vacuum") == (legacy_file ? 0 : 2));

  sqlite::RetentionSettings settings;
  settings.max_bytes = 2 * 1024 * 1024;
  settings.keep_recent_ms = 10 * kMinute;
  settings.batch_rows = 500;
  std::int64_t now = kNow;
  std::int64_t largest_file = 0;
  for (int cycle = 0; cycle < 12; ++cycle) {
    INFO("cycle " << cycle);
    // About 1.5 MB a cycle: 2000 samples and 500 usage documents over the last hour.
    db.insert("gpu_metrics", times(now - kHour, kHour / 2000, 2000));
    db.insert("token_usage", times(now - kHour, kHour / 500, 500));
    auto pass = store.enforce_retention(settings, now);
    REQUIRE(pass);
    const auto& p = pass.value();
    CHECK_FALSE(p.more);
    CHECK_FALSE(p.over_size);
    CHECK(p.file_bytes - p.free_bytes <= settings.max_bytes);
    if (cycle > 0) {
      // Oldest first, and never the last 10 minutes.
      CHECK(p.gpu_metrics > 0);
      CHECK(db.integer("SELECT min(ts) FROM gpu_metrics") >= p.cutoff_ms);
      CHECK(p.cutoff_ms <= now - settings.keep_recent_ms);
      CHECK(db.integer("SELECT count(*) FROM gpu_metrics WHERE ts >= " +
                       std::to_string(now - settings.keep_recent_ms)) >= 333);
    }
    if (!legacy_file) CHECK(p.file_bytes <= settings.max_bytes + 512 * 1024);
    // The file reaches its size within a few cycles, then stays there.
    const std::int64_t pages = db.integer("PRAGMA page_count");
    const std::int64_t file = pages * db.integer("PRAGMA page_size");
    if (cycle == 4) largest_file = file;
    if (cycle > 4) CHECK(file <= largest_file + largest_file / 10);
    now += kHour;
  }
}

TEST_CASE("the size bound keeps the last hour and unpriced windows, and says so",
          "[sqlite][retention]") {
  StoreFile file;
  auto& store = file.store;
  auto& db = file.db;
  db.insert("gpu_metrics", times(kNow - 3 * kHour, kMinute, 180));
  // A window two hours ago is not priced yet: nothing from (its start - lookback) on goes.
  const std::int64_t pending = kNow - 2 * kHour;
  REQUIRE(store.mark_cost_windows({pending}, kNow, 1));
  sqlite::RetentionSettings settings;
  settings.max_bytes = 1;  // far too small
  settings.lookback_ms = kMinute;
  metrics::Registry registry;
  sqlite::RetentionTask task(store, settings, registry);
  auto pass = task.run_once(kNow);
  REQUIRE(pass);
  CHECK(pass.value().over_size);
  CHECK(pass.value().gpu_metrics == 59);
  CHECK(db.integer("SELECT min(ts) FROM gpu_metrics") == pending - kMinute);
  CHECK(db.integer("SELECT count(*) FROM cost_windows") == 1);

  // Once priced, the bound goes on to the last hour, and no further.
  db.exec("DELETE FROM cost_windows");
  pass = task.run_once(kNow);
  REQUIRE(pass);
  CHECK(pass.value().over_size);
  CHECK(db.integer("SELECT min(ts) FROM gpu_metrics") == kNow - kHour);
  CHECK(db.integer("SELECT count(*) FROM gpu_metrics") == 60);
}

// Not run by default: how long one delete statement holds the database while the processor
// writes the default fleet's rate (about 96 events/s), and how long a write waits. Run with
// unit_tests '[.retention_bench]'.
TEST_CASE("retention lock hold at the default fleet's rate", "[.retention_bench]") {
  StoreFile file;
  auto& store = file.store;
  metrics::Registry registry;
  processor::TenantLabels tenants({}, 20);
  processor::ProcessorCore core(processor::CoreSettings{}, store, store, registry, tenants);
  const Config config = load_config({.role = "all"}, app::role_catalog());
  auto source = SourceRegistry::instance().find("synthetic")->create(config, Topics{});
  std::vector<Event> events;
  std::string error;
  std::int64_t offset = 0;
  std::map<processor::PartitionKey, std::int64_t> done;
  // Eight days' worth would be 66 M rows; 200 k aged ones show the per-batch cost, which
  // depends on the batch, not on the table's size (log n index depth).
  while (offset < 200'000) {
    events.clear();
    source->sample(events, error);
    for (const auto& e : events) REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
    if (core.pending() >= 500) REQUIRE(core.flush(done));
  }
  REQUIRE(core.flush(done));
  file.db.exec("UPDATE gpu_metrics SET ts = ts - 8 * 86400000");
  file.db.exec("UPDATE token_usage SET ts = ts - 8 * 86400000");

  // The writer stores what the fleet samples at 96 events/s, timing each transaction: first
  // alone, then while retention deletes the aged rows.
  std::atomic<bool> stop{false};
  std::atomic<bool> retaining{false};
  double longest_write[2] = {0, 0};
  std::thread writer([&] {
    while (!stop) {
      events.clear();
      source->sample(events, error);
      for (const auto& e : events) REQUIRE(core.accept({e.topic, 0, offset++, e.key, e.payload}));
      const bool during = retaining;
      const auto started = std::chrono::steady_clock::now();
      REQUIRE(core.flush(done));
      double& longest = longest_write[during ? 1 : 0];
      longest = std::max(
          longest,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(1000 * events.size() / 96));
    }
  });
  std::this_thread::sleep_for(3s);
  retaining = true;
  sqlite::RetentionSettings settings;
  settings.max_age_ms = 7 * kDay;
  settings.max_batches = 1000;
  const auto started = std::chrono::steady_clock::now();
  auto pass = store.enforce_retention(settings, unix_ms(std::chrono::system_clock::now()));
  const double pass_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  stop = true;
  writer.join();
  REQUIRE(pass);
  std::vector<double> batches = pass.value().batch_seconds;
  std::sort(batches.begin(), batches.end());
  WARN("deleted " << pass.value().gpu_metrics << " + " << pass.value().token_usage << " in "
                  << batches.size() << " statements, " << pass_seconds << " s; per statement "
                  << "median " << batches[batches.size() / 2] * 1000 << " ms, max "
                  << batches.back() * 1000 << " ms; longest write alone " << longest_write[0] * 1000
                  << " ms, during the pass " << longest_write[1] * 1000 << " ms");
}
