// `telemetryd run --role all` on the embedded default: the whole pipeline moves within seconds,
// with no Kafka and no MongoDB.

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <thread>

#include "events/gpu_catalog.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"

using namespace test_support;
using namespace std::chrono_literals;

TEST_CASE("the all role serves /gpu/info, /v1/usage and /metrics that move", "[embedded][cli]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-all-" + std::to_string(getpid()));
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + dir.string(), "--set",
                      "synthetic.sample_interval_ms=200"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);

  HttpResult gpu;
  for (int i = 0; i < 50 && gpu.status != 200; ++i) {
    std::this_thread::sleep_for(200ms);
    gpu = http_get(port, "/gpu/info");
  }
  INFO(child.stdout_text().substr(0, 3000));
  REQUIRE(gpu.status == 200);
  CHECK(gpu.body.find("\"collector\":\"synthetic\"") != std::string::npos);
  const std::string first_ts = gpu.body.substr(gpu.body.find("\"ts\":"), 31);
  std::this_thread::sleep_for(1500ms);
  const auto later = http_get(port, "/gpu/info");
  CHECK(later.body.substr(later.body.find("\"ts\":"), 31) != first_ts);  // it moves

  const auto usage = http_get(port, "/v1/usage?group_by=tenant");
  CHECK(usage.status == 200);
  CHECK(usage.body.find("\"_id\":\"tenant-acme\"") != std::string::npos);
  const auto bad = http_get(port, "/v1/usage?group_by=planet");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("\"field\":\"group_by\"") != std::string::npos);
  const auto gpus = http_get(port, "/v1/gpus");
  CHECK(gpus.body.find("\"name\":\"RTX 3090\"") != std::string::npos);
  const auto ready = http_get(port, "/ready");
  CHECK(ready.status == 200);

  const auto metrics = http_get(port, "/metrics");
  CHECK(metrics.body.find("processor_db_writes_total{collection=\"gpu_metrics\"}") !=
        std::string::npos);
  const auto promtool = run_command({"promtool", "check", "metrics"}, metrics.body);
  INFO(promtool.output);
  CHECK(promtool.status == 0);

  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
  CHECK(std::filesystem::exists(dir / "telemetryd.sqlite3"));
  std::filesystem::remove_all(dir);
}

namespace {
std::vector<std::string> values_of(const std::string& body, const std::string& key) {
  std::vector<std::string> out;
  const std::string needle = "\"" + key + "\":\"";
  for (auto at = body.find(needle); at != std::string::npos; at = body.find(needle, at + 1)) {
    const auto start = at + needle.size();
    out.push_back(body.substr(start, body.find('"', start) - start));
  }
  return out;
}

std::size_t occurrences(const std::string& body, const std::string& text) {
  std::size_t n = 0;
  for (auto at = body.find(text); at != std::string::npos; at = body.find(text, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("the all role serves /v1/devices and a GPU's history from SQLite", "[embedded][cli]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-hist-" + std::to_string(getpid()));
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + dir.string(), "--set",
                      "synthetic.sample_interval_ms=200", "--set", "synthetic.hosts=2", "--set",
                      "synthetic.gpus_per_host=3"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);

  // Every synthetic GPU, once, with its host and model.
  HttpResult devices;
  std::vector<std::string> uuids;
  for (int i = 0; i < 50 && uuids.size() < 6; ++i) {
    std::this_thread::sleep_for(200ms);
    devices = http_get(port, "/v1/devices");
    uuids = values_of(devices.body, "gpu_uuid");
  }
  INFO(devices.body);
  REQUIRE(devices.status == 200);
  REQUIRE(uuids.size() == 6);
  CHECK(std::set<std::string>(uuids.begin(), uuids.end()).size() == 6);
  CHECK(std::is_sorted(uuids.begin(), uuids.end()));
  CHECK(values_of(devices.body, "host").size() == 6);
  CHECK(values_of(devices.body, "model_name").size() == 6);
  CHECK(values_of(devices.body, "ts").size() == 6);
  CHECK(occurrences(devices.body, "\"utilization_gpu_percent\":") == 6);
  CHECK(occurrences(devices.body, "\"power_draw_watts\":") == 6);

  // Samples every 200 ms: more than one 1 s bucket within a few seconds.
  HttpResult series;
  for (int i = 0; i < 30 && occurrences(series.body, "\"samples\":") < 2; ++i) {
    std::this_thread::sleep_for(200ms);
    series = http_get(port, "/v1/gpus/" + uuids[0] + "/metrics?step=1s");
  }
  INFO(series.body);
  CHECK(series.status == 200);
  CHECK(series.body.find("\"gpu_uuid\":\"" + uuids[0] + "\"") != std::string::npos);
  CHECK(series.body.find("\"step\":\"1s\",\"step_ms\":1000,\"points\":[{\"ts\":") !=
        std::string::npos);
  CHECK(occurrences(series.body, "\"samples\":") >= 2);
  CHECK(occurrences(series.body, "\"temperature_gpu_celsius\":{\"avg\":") >= 2);
  const auto by_default = http_get(port, "/v1/gpus/" + uuids[1] + "/metrics");
  CHECK(by_default.status == 200);
  CHECK(by_default.body.find("\"step\":\"5s\"") != std::string::npos);

  const auto bad_step = http_get(port, "/v1/gpus/" + uuids[0] + "/metrics?step=fast");
  CHECK(bad_step.status == 400);
  CHECK(bad_step.body.find("\"field\":\"step\"") != std::string::npos);
  const auto bad_from = http_get(port, "/v1/gpus/" + uuids[0] + "/metrics?from=noon");
  CHECK(bad_from.status == 400);
  CHECK(bad_from.body.find("\"field\":\"from\"") != std::string::npos);
  const auto unknown = http_get(port, "/v1/gpus/GPU-00000000-no-such-gpu/metrics");
  CHECK(unknown.status == 404);
  CHECK(unknown.body.find("\"code\":\"not_found\"") != std::string::npos);
  const auto long_ago = http_get(
      port, "/v1/gpus/" + uuids[0] + "/metrics?from=2020-01-01T00:00:00Z&to=2020-01-01T01:00:00Z");
  CHECK(long_ago.status == 200);  // a known GPU, an empty range: no points
  CHECK(long_ago.body.find("\"points\":[]") != std::string::npos);

  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the all role deletes what is older than embedded.retention_days at start",
          "[embedded][cli][retention]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-ret-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db_path = (dir / "telemetryd.sqlite3").string();
  {
    // A database left by an earlier run: 50 samples 5 days old, 20 two days old.
    telemetryd::sqlite::SqliteStore store(db_path);
    REQUIRE(store.prepare(telemetryd::events::GpuCatalog{}));
    sqlite3* db = nullptr;
    sqlite3_open(db_path.c_str(), &db);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (int i = 0; i < 70; ++i) {
      const std::int64_t age_ms = (i < 50 ? 5 : 2) * 86400000LL;
      const std::string sql = "INSERT INTO gpu_metrics VALUES ('old-" + std::to_string(i) + "', " +
                              std::to_string(now_ms - age_ms - i) +
                              ", 'GPU-old', 'host-old', '{}')";
      REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    sqlite3_close(db);
  }
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + dir.string(), "--set",
                      "embedded.retention_days=3", "--set", "embedded.max_size_mb=64"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  const auto pass = child.wait_for_line("\"msg\":\"retention pass\"", 10s);
  INFO(child.stdout_text().substr(0, 3000));
  REQUIRE(pass);
  CHECK(pass->find("\"gpu_metrics\":50,") != std::string::npos);
  CHECK(pass->find("\"file_bytes\":") != std::string::npos);

  const auto metrics = http_get(port, "/metrics");
  CHECK(metrics.body.find("embedded_retention_deleted_total{table=\"gpu_metrics\"} 50\n") !=
        std::string::npos);
  CHECK(metrics.body.find("embedded_database_bytes{pages=\"used\"} ") != std::string::npos);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
  // The two-day-old samples are kept.
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM gpu_metrics WHERE gpu_uuid = 'GPU-old'", -1, &s,
                     nullptr);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(sqlite3_column_int64(s, 0) == 20);
  sqlite3_finalize(s);
  sqlite3_close(db);
  std::filesystem::remove_all(dir);
}
