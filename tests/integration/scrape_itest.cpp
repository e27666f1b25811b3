// The scrape source against a vLLM and an SGLang /metrics served over real HTTP by
// tests/tools/model_server.py (prometheus_client, with their metric definitions): the stored
// token totals equal the counter increases after the first scrape, exactly, across a counter
// reset (a server restart) and a telemetryd restart; a malformed exposition is one target's
// error, in /ready's detail and a metric, never a crash.

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "support/child_process.hpp"
#include "support/http_client.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct ModelServer {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  explicit ModelServer(const std::string& kind, bool openmetrics = false) {
    std::vector<std::string> argv{required_env("TELEMETRYD_TEST_OTEL_PYTHON"),
                                  source_root() + "/tests/tools/model_server.py", "--kind", kind};
    if (openmetrics) argv.push_back("--openmetrics");
    process = std::make_unique<ChildProcess>(argv);
    const auto line = process->wait_for_line("listening ", 20s);
    INFO(process->stderr_text());
    REQUIRE(line);
    port = std::stoi(line->substr(line->find(' ') + 1));
  }
  std::string url(const std::string& path = "/metrics") const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  void advance(const std::string& model, int prompt, int generation, int cached = 0,
               const std::string& engine = "0") {
    const auto res = http_request("127.0.0.1", port, "POST",
                                  "/advance?model=" + model + "&prompt=" + std::to_string(prompt) +
                                      "&generation=" + std::to_string(generation) +
                                      "&cached=" + std::to_string(cached) + "&engine=" + engine);
    REQUIRE(res.status == 200);
  }
  void reset() { REQUIRE(http_request("127.0.0.1", port, "POST", "/reset").status == 200); }
};

struct Tokens {
  std::int64_t input = 0, output = 0;
  bool operator==(const Tokens&) const = default;
};

std::map<std::string, Tokens> usage(int port) {
  std::map<std::string, Tokens> out;
  const HttpResult res = http_get(port, "/v1/usage?group_by=model");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (res.status != 200 || parser.parse(res.body).get(doc)) return out;
  for (simdjson::dom::element row : doc["groups"].get_array()) {
    const std::string model(row["_id"].get_string().value());
    if (model.rfind("scrape-", 0) != 0) continue;  // the synthetic fleet's own models
    out[model] = {row["input_tokens"].get_int64(), row["output_tokens"].get_int64()};
  }
  return out;
}

std::map<std::string, Tokens> wait_for(int port, const std::map<std::string, Tokens>& want) {
  std::map<std::string, Tokens> got;
  for (int i = 0; i < 60; ++i) {
    got = usage(port);
    if (got == want) break;
    std::this_thread::sleep_for(250ms);
  }
  return got;
}

std::string describe(const std::map<std::string, Tokens>& totals) {
  std::string out;
  for (const auto& [model, t] : totals) {
    out += model + ": " + std::to_string(t.input) + " in, " + std::to_string(t.output) + " out\n";
  }
  return out;
}

struct Telemetryd {
  std::unique_ptr<ChildProcess> child;
  int port = 0;
  Telemetryd(const std::filesystem::path& dir, const std::vector<std::string>& targets) {
    std::vector<std::string> argv{
        telemetryd_bin(), "run",
        "--config",       source_root() + "/config/roles/all.yaml",
        "--set",          "http.listen=127.0.0.1:0",
        "--set",          "otlp.enabled=false",
        "--set",          "embedded.data_dir=" + dir.string(),
        "--set",          "scrape.enabled=true",
        "--set",          "scrape.interval_ms=1000",
        "--set",          "scrape.state_file=" + (dir / "scrape-state.jsonl").string()};
    // One per line, from a file (the list a deployment tool would write).
    std::filesystem::create_directories(dir);
    {
      std::ofstream file(dir / "targets.txt");
      file << "# model servers\n";
      for (const auto& target : targets) file << target << "\n";
    }
    argv.push_back("--set");
    argv.push_back("scrape.targets_file=" + (dir / "targets.txt").string());
    child = std::make_unique<ChildProcess>(argv);
    const auto line = child->wait_for_line("\"listener\":\"main\"", 15s);
    INFO(child->stdout_text().substr(0, 3000));
    REQUIRE(line);
    port = port_from_listening_line(*line);
  }
  // Waits until every target has been scraped once (the baseline).
  void wait_scraped(std::size_t targets) {
    std::string metrics;
    for (int i = 0; i < 60; ++i) {
      metrics = http_get(port, "/metrics").body;
      std::size_t up = 0;
      for (auto at = metrics.find("scrape_target_up{"); at != std::string::npos;
           at = metrics.find("scrape_target_up{", at + 1)) {
        ++up;
      }
      if (up >= targets) return;
      std::this_thread::sleep_for(250ms);
    }
    FAIL("no scrape of every target: " << metrics.substr(0, 2000));
  }
  void stop() {
    child->send_signal(SIGTERM);
    CHECK(child->wait_exit(20s) == 0);
  }
};

}  // namespace

TEST_CASE("scraped vLLM and SGLang token counters are stored exactly, across a reset and a restart",
          "[scrape][itest]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("telemetryd-scrape-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  ModelServer vllm("vllm");
  ModelServer sglang("sglang", /*openmetrics=*/true);
  // Served before telemetryd starts: the first scrape is the baseline, not usage.
  vllm.advance("scrape-llama", 5000, 900, 100);
  sglang.advance("scrape-qwen", 3000, 300, 50);

  const std::vector<std::string> targets{vllm.url() + " host=gpu-node-01 deployment=llama-vllm",
                                         sglang.url() + " host=gpu-node-02 deployment=qwen-sglang",
                                         vllm.url("/broken")};
  std::map<std::string, Tokens> want;
  {
    Telemetryd td(dir, targets);
    td.wait_scraped(3);
    vllm.advance("scrape-llama", 100, 20, 5, "0");
    vllm.advance("scrape-llama", 50, 10, 0, "1");  // a second data-parallel engine
    vllm.advance("scrape-mistral", 70, 7, 3);      // a model first seen after the baseline
    sglang.advance("scrape-qwen", 300, 40, 100);
    want = {{"scrape-llama", {150, 30}}, {"scrape-mistral", {70, 7}}, {"scrape-qwen", {300, 40}}};
    auto got = wait_for(td.port, want);
    INFO("want:\n" << describe(want) << "got:\n" << describe(got));
    REQUIRE(got == want);

    // The broken target is an error of its own; the others go on.
    const std::string ready = http_get(td.port, "/ready").body;
    CHECK(ready.find("2 of 3 targets scraped") != std::string::npos);
    CHECK(ready.find("malformed exposition") != std::string::npos);
    const std::string metrics = http_get(td.port, "/metrics").body;
    CHECK(metrics.find("scrape_errors_total{target=\"" + vllm.url("/broken") +
                       "\",reason=\"malformed\"}") != std::string::npos);
    CHECK(metrics.find("scrape_kv_cache_usage_ratio{target=\"" + vllm.url() +
                       "\",model=\"scrape-llama\",server_kind=\"vllm\"} 0.42") !=
          std::string::npos);
    CHECK(metrics.find("scrape_requests_running{target=\"" + sglang.url() +
                       "\",model=\"scrape-qwen\",server_kind=\"sglang\"} 2") != std::string::npos);

    // The vLLM server restarts: its counters start again from zero.
    vllm.reset();
    vllm.advance("scrape-llama", 11, 3);
    want["scrape-llama"] = {161, 33};
    got = wait_for(td.port, want);
    INFO("after the reset, want:\n" << describe(want) << "got:\n" << describe(got));
    REQUIRE(got == want);
    td.stop();
  }
  // While telemetryd is down the servers go on; the saved counters make the next delta exact.
  vllm.advance("scrape-mistral", 8, 2);
  sglang.advance("scrape-qwen", 9, 1);
  want["scrape-mistral"] = {78, 9};
  want["scrape-qwen"] = {309, 41};
  Telemetryd again(dir, targets);
  const auto got = wait_for(again.port, want);
  INFO("after the restart, want:\n" << describe(want) << "got:\n" << describe(got));
  CHECK(got == want);
  std::this_thread::sleep_for(2500ms);  // more scrapes with no traffic add nothing
  CHECK(usage(again.port) == want);
  again.stop();
  std::filesystem::remove_all(dir);
}
