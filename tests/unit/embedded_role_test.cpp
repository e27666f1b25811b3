// `telemetryd run --role all` on the embedded default: the whole pipeline moves within seconds,
// with no Kafka and no MongoDB.

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

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
