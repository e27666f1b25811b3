// A processor against the real broker and database: /ready turns 200 once both answer, and its
// /metrics passes promtool.

#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "support/child_process.hpp"
#include "support/http_client.hpp"

using namespace test_support;
using namespace std::chrono_literals;

TEST_CASE("a processor with real Kafka and FerretDB becomes ready", "[processor][itest]") {
  ChildProcess child({telemetryd_bin(), "run", "--config",
                      source_root() + "/config/roles/processor.yaml", "--set",
                      "http.listen=127.0.0.1:0", "--set",
                      "kafka.brokers=" + required_env("TELEMETRYD_TEST_KAFKA_BROKERS"), "--set",
                      "mongodb.uri=" + required_env("TELEMETRYD_TEST_MONGO_URI"), "--set",
                      // the example's /etc/telemetryd/query-tokens is not on a test machine
                      "processor.query.auth=none"});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);

  HttpResult ready;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  do {
    ready = http_get(port, "/ready");
    if (ready.status == 200) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < deadline);
  INFO(ready.body);
  CHECK(ready.status == 200);
  CHECK(ready.body.find("\"name\":\"kafka\",\"ready\":true") != std::string::npos);
  CHECK(ready.body.find("\"name\":\"mongodb\",\"ready\":true,\"detail\":\"ping ok\"") !=
        std::string::npos);

  const auto metrics = http_get(port, "/metrics");
  CHECK(metrics.body.find("telemetryd_dependency_up{dependency=\"kafka\"} 1\n") !=
        std::string::npos);
  CHECK(metrics.body.find("telemetryd_dependency_up{dependency=\"mongodb\"} 1\n") !=
        std::string::npos);
  const auto promtool = run_command({"promtool", "check", "metrics"}, metrics.body);
  INFO(promtool.output);
  CHECK(promtool.status == 0);

  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
}
