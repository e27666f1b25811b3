// Per-GPU series on /metrics of the running binary: the all role on the synthetic fleet, and the
// gpu-exporter role on the fake NVML (and without any NVML: up, but not ready, with the reason).

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/http_client.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// The uuid label of every series of `name`, once per series.
std::vector<std::string> uuids_of(const std::string& text, const std::string& name,
                                  const std::string& label = "uuid") {
  std::vector<std::string> out;
  const std::regex line("^" + name + "\\{[^}]*\\b" + label + "=\"([^\"]*)\"[^}]*\\} \\S+$");
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) out.push_back(m[1]);
  }
  return out;
}

std::size_t series_of(const std::string& body, const std::string& name) {
  std::size_t found = 0;
  for (auto at = body.find("\n" + name + "{"); at != std::string::npos;
       at = body.find("\n" + name + "{", at + 1))
    ++found;
  return found;
}

// Until every one of `names` has `series` series, 15 s at most: the first scrapes can land
// mid-tick, and under ASan the first samples of some GPUs arrive without every reading yet.
HttpResult wait_for_metrics(int port, const std::vector<std::string>& names, std::size_t series) {
  HttpResult metrics;
  for (int i = 0; i < 75; ++i) {
    metrics = http_get(port, "/metrics");
    bool all = true;
    for (const auto& name : names) all = all && series_of(metrics.body, name) >= series;
    if (all) break;
    std::this_thread::sleep_for(200ms);
  }
  return metrics;
}

HttpResult wait_for_metric(int port, const std::string& name, std::size_t series = 1) {
  return wait_for_metrics(port, {name}, series);
}

// Readings every GPU has, the fake NVML's consumer card included (it has no power readings).
const std::vector<std::string> kEveryGpu{
    "telemetryd_gpu_utilization_ratio", "telemetryd_gpu_memory_used_bytes",
    "telemetryd_gpu_memory_total_bytes", "telemetryd_gpu_temperature_celsius",
    "telemetryd_gpu_sm_clock_hertz"};

void check_one_series_per_gpu(const std::string& text, std::size_t gpus,
                              const std::vector<std::string>& names) {
  for (const auto& name : names) {
    INFO(name);
    const auto uuids = uuids_of(text, name);
    CHECK(uuids.size() == gpus);
    CHECK(std::set<std::string>(uuids.begin(), uuids.end()).size() == gpus);
  }
}

}  // namespace

TEST_CASE("the all role exports one series per synthetic GPU and metric", "[gpu_metrics][cli]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-gpum-" + std::to_string(getpid()));
  // 2 hosts x 3 GPUs: six distinct GPUs, across hosts.
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + dir.string(), "--set",
                      "synthetic.sample_interval_ms=200", "--set", "synthetic.gpus_per_host=3"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  auto names = kEveryGpu;
  for (const char* more :
       {"telemetryd_gpu_power_watts", "telemetryd_gpu_energy_joules_total",
        "telemetryd_gpu_memory_free_bytes", "telemetryd_gpu_pstate",
        "telemetryd_gpu_sm_active_ratio", "telemetryd_gpu_tensor_active_ratio"}) {
    names.push_back(more);
  }
  wait_for_metrics(port, names, 6);
  std::this_thread::sleep_for(400ms);  // and a whole tick (200 ms) later
  const auto metrics = http_get(port, "/metrics");
  INFO(metrics.body.substr(0, 4000));
  check_one_series_per_gpu(metrics.body, 6, names);
  CHECK(uuids_of(metrics.body, "telemetryd_gpu_tensor_active_ratio").size() == 6);
  CHECK(uuids_of(metrics.body, "telemetryd_gpu_clock_event_reason").size() == 6 * 9);
  const auto promtool = run_command({"promtool", "check", "metrics"}, metrics.body);
  INFO(promtool.output);
  CHECK(promtool.status == 0);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the gpu-exporter role serves the fake NVML's GPUs and nothing else",
          "[gpu_metrics][cli][nvml]") {
  const std::string fake = required_env("TELEMETRYD_FAKE_NVML");
  ChildProcess child({telemetryd_bin(), "run", "--role", "gpu-exporter", "--set",
                      "http.listen=127.0.0.1:0", "--set", "nvml.library=" + fake, "--set",
                      "nvml.sample_interval_ms=200"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  HttpResult ready;
  for (int i = 0; i < 50 && ready.status != 200; ++i) {
    std::this_thread::sleep_for(100ms);
    ready = http_get(port, "/ready");
  }
  INFO(child.stdout_text().substr(0, 3000));
  INFO(ready.body);
  REQUIRE(ready.status == 200);
  // The role has no Kafka or MongoDB connection to wait for.
  CHECK(ready.body.find("kafka") == std::string::npos);
  CHECK(ready.body.find("mongodb") == std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(ready.body, m, std::regex("sampling (\\d+) GPU")));
  const auto gpus = static_cast<std::size_t>(std::stoul(m[1]));
  CHECK(gpus >= 1);

  // Every GPU seen, then a scrape after a whole tick (200 ms), so none is caught mid-update.
  wait_for_metric(port, "telemetryd_gpu_utilization_ratio", gpus);
  std::this_thread::sleep_for(400ms);
  const auto metrics = http_get(port, "/metrics");
  INFO(metrics.body.substr(0, 4000));
  check_one_series_per_gpu(metrics.body, gpus, kEveryGpu);
  CHECK(metrics.body.find("gpu_exporter_samples_total{source=\"nvml\"}") != std::string::npos);
  CHECK(metrics.body.find("producer_") == std::string::npos);
  CHECK(metrics.body.find("processor_") == std::string::npos);
  const auto promtool = run_command({"promtool", "check", "metrics"}, metrics.body);
  INFO(promtool.output);
  CHECK(promtool.status == 0);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
}

TEST_CASE("the gpu-exporter role without NVML stays up, not ready, with the reason",
          "[gpu_metrics][cli][nvml]") {
  ChildProcess child({telemetryd_bin(), "run", "--role", "gpu-exporter", "--set",
                      "http.listen=127.0.0.1:0", "--set",
                      "nvml.library=/nonexistent/libnvidia-ml.so.1", "--set",
                      "gpu_exporter.retry_interval_ms=200"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  HttpResult ready;
  for (int i = 0; i < 50; ++i) {
    ready = http_get(port, "/ready");
    if (ready.body.find("cannot load") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(ready.body);
  CHECK(ready.status == 503);
  CHECK(ready.body.find("gpu_exporter") != std::string::npos);
  CHECK(ready.body.find("cannot load /nonexistent/libnvidia-ml.so.1") != std::string::npos);
  CHECK(http_get(port, "/health").status == 200);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
}

TEST_CASE("the gpu-exporter role speaks dcgm-exporter's names on request", "[gpu_metrics][cli]") {
  ChildProcess child({telemetryd_bin(), "run", "--role", "gpu-exporter", "--set",
                      "http.listen=127.0.0.1:0", "--set", "gpu_exporter.source=synthetic", "--set",
                      "synthetic.sample_interval_ms=200", "--set", "synthetic.hosts=1", "--set",
                      "gpu_metrics.naming=dcgm"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  // Four GPUs seen, then one more scrape after a whole tick (200 ms): a scrape can land while
  // the fourth GPU's series are being created (seen under ASan: 3 of 4).
  wait_for_metric(port, "DCGM_FI_DEV_GPU_UTIL", 4);
  std::this_thread::sleep_for(400ms);
  const auto metrics = http_get(port, "/metrics");
  INFO(metrics.body.substr(0, 3000));
  CHECK(uuids_of(metrics.body, "DCGM_FI_DEV_GPU_UTIL", "UUID").size() == 4);
  CHECK(uuids_of(metrics.body, "DCGM_FI_DEV_FB_USED", "UUID").size() == 4);
  CHECK(metrics.body.find("telemetryd_gpu_") == std::string::npos);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
}

TEST_CASE("gpu_metrics.enabled: false keeps the all role's /metrics free of GPU series",
          "[gpu_metrics][cli]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-gpum-off-" + std::to_string(getpid()));
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + dir.string(), "--set",
                      "synthetic.sample_interval_ms=100", "--set", "gpu_metrics.enabled=false"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  // Samples flow (stored), but none is exported.
  const auto metrics = wait_for_metric(port, "processor_db_writes_total");
  INFO(metrics.body.substr(0, 2000));
  CHECK(metrics.body.find("processor_db_writes_total{collection=\"gpu_metrics\"}") !=
        std::string::npos);
  CHECK(metrics.body.find("telemetryd_gpu_") == std::string::npos);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
  std::filesystem::remove_all(dir);
}
