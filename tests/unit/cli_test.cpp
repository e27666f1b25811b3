// Black-box tests of the telemetryd binary: the CLI, check-config against the example role files
// and the broken fixtures, and a running processor's HTTP endpoints, logs, signals and sd_notify.

#include <signal.h>
#include <unistd.h>

#include <simdjson.h>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/notify_socket.hpp"

using namespace test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// `# expect: LINE KEY` comments in a fixture name each problem check-config must report.
std::vector<std::pair<int, std::string>> expectations(const fs::path& fixture) {
  std::vector<std::pair<int, std::string>> out;
  std::ifstream in(fixture);
  const std::regex pattern(R"(^# expect: (\d+) (\S+))");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, pattern)) out.emplace_back(std::stoi(m[1]), m[2]);
  }
  return out;
}

}  // namespace

TEST_CASE("version prints the version", "[cli]") {
  const auto result = run_command({telemetryd_bin(), "version"});
  CHECK(result.status == 0);
  INFO(result.output);
  CHECK(result.stdout_only.rfind("telemetryd 0.", 0) == 0);
}

TEST_CASE("docs/config-reference.md matches the built-in schemas", "[cli][config]") {
  const auto result = run_command({telemetryd_bin(), "config-reference"});
  REQUIRE(result.status == 0);
  std::ifstream in(source_root() + "/docs/config-reference.md");
  std::stringstream committed;
  committed << in.rdbuf();
  INFO("regenerate with: telemetryd config-reference > docs/config-reference.md");
  CHECK(committed.str() == result.stdout_only);
  CHECK(result.stdout_only.find("| `http.listen` | string | `0.0.0.0:8000` |") !=
        std::string::npos);
}

TEST_CASE("--help works on every command", "[cli]") {
  for (const char* command :
       {"run", "check-config", "reprice", "dlq", "version", "config-reference"}) {
    INFO(command);
    const auto result = run_command({telemetryd_bin(), command, "--help"});
    CHECK(result.status == 0);
    CHECK(result.output.find("Usage") != std::string::npos);
  }
}

TEST_CASE("dlq replay: bad times, ranges and role files exit 78 before connecting", "[cli][dlq]") {
  const std::string processor = source_root() + "/config/roles/processor.yaml";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--config", processor, "--since", "yesterday"}, "--since: 'yesterday' is not an RFC 3339"},
      {{"--config", processor, "--since", "2026-12-02T00:00:00Z", "--until",
        "2026-12-01T00:00:00Z"},
       "--until must be after --since"},
      {{"--config", processor, "--from-offset", "5", "--to-offset", "1"},
       "--to-offset must not be below --from-offset"},
      {{"--config", source_root() + "/config/roles/all.yaml"}, "file is for role 'all'"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> argv{telemetryd_bin(), "dlq", "replay", "--set",
                                  "kafka.brokers=127.0.0.1:1"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = run_command(argv);
    INFO(result.output);
    CHECK(result.status == 78);
    CHECK(result.output.find(message) != std::string::npos);
  }
}

TEST_CASE("check-config accepts every example role file", "[cli][config]") {
  std::vector<std::string> argv{telemetryd_bin(), "check-config"};
  int count = 0;
  for (const auto& entry : fs::directory_iterator(source_root() + "/config/roles")) {
    argv.push_back(entry.path().string());
    ++count;
  }
  REQUIRE(count == 5);
  const auto result = run_command(argv);
  INFO(result.output);
  CHECK(result.status == 0);
  for (const char* role : {"producer", "processor", "worker", "all", "gpu-exporter"}) {
    CHECK(result.output.find(std::string("ok (role ") + role + ")") != std::string::npos);
  }
}

TEST_CASE("check-config rejects each broken fixture with file:line and key", "[cli][config]") {
  int fixtures = 0;
  for (const auto& entry : fs::directory_iterator(source_root() + "/tests/fixtures/broken")) {
    const auto expected = expectations(entry.path());
    DYNAMIC_SECTION(entry.path().filename().string()) {
      REQUIRE_FALSE(expected.empty());
      const auto result = run_command({telemetryd_bin(), "check-config", entry.path().string()});
      INFO(result.output);
      CHECK(result.status == 78);
      for (const auto& [line, key] : expected) {
        const std::string prefix = entry.path().string() + ":" + std::to_string(line) + ":";
        bool found = false;
        std::istringstream lines(result.output);
        for (std::string text; std::getline(lines, text);) {
          if (text.rfind(prefix, 0) != 0) continue;
          const auto after_column = text.find(": ", prefix.size());
          found = found || (after_column != std::string::npos &&
                            text.compare(after_column + 2, key.size() + 2, key + ": ") == 0);
        }
        INFO("expected " << prefix << "COL: " << key);
        CHECK(found);
      }
    }
    ++fixtures;
  }
  CHECK(fixtures >= 10);
}

TEST_CASE("run with a bad override exits 78 and logs the problem as JSON", "[cli][config]") {
  ChildProcess child(
      {telemetryd_bin(), "run", "--role", "producer", "--set", "http.listen=nowhere"});
  REQUIRE(child.wait_exit(10s) == 78);
  const std::string out = child.stdout_text();
  CHECK(out.find("\"level\":\"error\"") != std::string::npos);
  CHECK(out.find("--set:1:1: http.listen: expected host:port") != std::string::npos);
}

TEST_CASE("a problem a component finds at start is placed at the key in the file, exit 78",
          "[cli][config]") {
  // The processor checks processor.query.tokens_file when it is built, not when the file is
  // loaded (the key may come from the environment): the problem still names file:line:col, at
  // the key's section when the key itself is absent.
  const std::string path = "/tmp/telemetryd-cli-located-" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream file(path);
    file << "role: processor\nhttp:\n  listen: 127.0.0.1:0\nprocessor:\n  query:\n"
            "    auth: bearer\n";
  }
  ChildProcess child({telemetryd_bin(), "run", "--config", path});
  REQUIRE(child.wait_exit(10s) == 78);
  std::remove(path.c_str());
  CHECK(child.stdout_text().find(path + ":5:3: processor.query.tokens_file: is required when "
                                        "processor.query.auth is bearer") != std::string::npos);
}

TEST_CASE("run fails with exit 1 when the listen port is taken", "[cli]") {
  ChildProcess first(
      {telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0"});
  const auto line = first.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  ChildProcess second({telemetryd_bin(), "run", "--role", "all", "--set",
                       "http.listen=127.0.0.1:" + std::to_string(port)});
  CHECK(second.wait_exit(10s) == 1);
  CHECK(second.stdout_text().find("cannot listen on 127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
}

TEST_CASE("a processor without its dependencies is alive, not ready, and drains on SIGTERM",
          "[cli][http]") {
  NotifySocket notify;
  // Port 1 on loopback refuses connections: both dependencies are down for the whole test.
  ChildProcess child({telemetryd_bin(), "run", "--role", "processor", "--set",
                      "http.listen=127.0.0.1:0", "--set", "kafka.brokers=127.0.0.1:1", "--set",
                      "mongodb.uri=mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "--set",
                      "kafka.check_timeout_ms=300", "--set", "processor.query.auth=none"},
                     {{"NOTIFY_SOCKET", notify.path}, {"WATCHDOG_USEC", "200000"}});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);

  const auto health = http_get(port, "/health");
  CHECK(health.status == 200);
  CHECK(health.body.find("\"status\":\"alive\"") != std::string::npos);
  CHECK(health.body.find("\"role\":\"processor\"") != std::string::npos);
  // libmongoc's shared-memory counters are off, so a SIGKILLed daemon leaves nothing in /dev/shm
  // (see mongo/mongoc_runtime.cpp).
  CHECK_FALSE(fs::exists("/dev/shm/mongoc-" + std::to_string(child.pid())));

  // Wait until both checks have run once and failed, then the reasons must name them.
  REQUIRE(child.wait_for_line("\"stage\":\"mongodb\",\"msg\":\"dependency unreachable\"", 15s));
  REQUIRE(child.wait_for_line("\"stage\":\"kafka\",\"msg\":\"dependency unreachable\"", 15s));
  const auto ready = http_get(port, "/ready");
  CHECK(ready.status == 503);
  CHECK(ready.content_type == "application/json");
  CHECK(ready.body.find("\"status\":\"not_ready\"") != std::string::npos);
  CHECK(
      ready.body.find("\"name\":\"kafka\",\"ready\":false,\"reason\":\"metadata request failed") !=
      std::string::npos);
  CHECK(ready.body.find("\"name\":\"mongodb\",\"ready\":false,\"reason\":\"ping failed") !=
        std::string::npos);

  const auto missing = http_get(port, "/nope");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("\"error\":{\"code\":\"not_found\"") != std::string::npos);

  const auto metrics = http_get(port, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(metrics.body.find("telemetryd_dependency_up{dependency=\"kafka\"} 0\n") !=
        std::string::npos);
  CHECK(metrics.body.find("http_requests_total{route=\"/health\",method=\"GET\",code=\"200\"} 1") !=
        std::string::npos);
  const auto promtool = run_command({"promtool", "check", "metrics"}, metrics.body);
  INFO(promtool.output);
  CHECK(promtool.status == 0);

  std::this_thread::sleep_for(300ms);  // at least one watchdog period of 100 ms
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);

  const std::string notified = notify.drain();
  CHECK(notified.find("READY=1") != std::string::npos);
  CHECK(notified.find("WATCHDOG=1") != std::string::npos);
  CHECK(notified.find("STOPPING=1") != std::string::npos);

  // Every line on stdout is one JSON object with the four required keys.
  std::istringstream lines(child.stdout_text());
  simdjson::dom::parser parser;
  int parsed = 0;
  for (std::string text; std::getline(lines, text);) {
    INFO(text);
    simdjson::dom::element doc;
    REQUIRE(parser.parse(text).get(doc) == simdjson::SUCCESS);
    for (const char* key : {"ts", "level", "stage", "msg"}) CHECK(doc[key].is_string());
    ++parsed;
  }
  CHECK(parsed >= 5);
  CHECK(child.stdout_text().find("\"msg\":\"stopped\"") != std::string::npos);
  INFO("stderr: " << child.stderr_text());
  CHECK(child.stderr_text().empty());
}
