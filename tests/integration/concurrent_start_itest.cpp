// Five processors started at the same moment on one fresh database (FerretDB): every start-up
// write (indexes, which create the collections, and the GPU catalog) races the four others, and
// each race must end as a success, so all five become ready and none exits.

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

constexpr int kProcessors = 5;

std::string unique_database() {
  return "concurrent_start_" + std::to_string(getpid()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
}

}  // namespace

TEST_CASE("five processors started at once on one fresh database all become ready",
          "[concurrent_start][ferretdb][kafka]") {
  const std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  const std::string mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  const std::string database = unique_database();
  struct DropDatabase {
    std::string uri, database;
    ~DropDatabase() { drop_database(uri, database); }
  } drop{mongo, database};
  const std::string group = unique_topic("concurrent-start-group");

  std::vector<std::unique_ptr<ChildProcess>> processors;
  for (int i = 0; i < kProcessors; ++i) {
    processors.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
        telemetryd_bin(), "run", "--role", "processor", "--set", "http.listen=127.0.0.1:0", "--set",
        "kafka.brokers=" + brokers, "--set", "mongodb.uri=" + mongo, "--set",
        "mongodb.database=" + database, "--set", "processor.group_id=" + group, "--set",
        "mongodb.check_interval_ms=500", "--set", "processor.query.auth=none"}));
  }
  std::vector<int> ports;
  for (const auto& p : processors) ports.push_back(listening_port(*p));

  // Bounded: a prepare that failed with a retryable error is retried with backoff (up to
  // processor.retry_backoff_max_ms), so a race costs seconds; a permanent one exits the process.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::vector<int> status(kProcessors, 0);
  for (int i = 0; i < kProcessors; ++i) {
    std::string body;
    while (std::chrono::steady_clock::now() < deadline) {
      const HttpResult ready = http_get(ports[i], "/ready");
      status[i] = ready.status;
      body = ready.body;
      if (ready.status == 200 || processors[i]->wait_exit(0ms).has_value()) break;
      std::this_thread::sleep_for(200ms);
    }
    INFO("processor " << i << ": /ready " << status[i] << " " << body << "\n"
                      << processors[i]->stdout_text().substr(0, 6000));
    CHECK(status[i] == 200);
  }
  for (int i = 0; i < kProcessors; ++i) {
    INFO("processor " << i << "\n" << processors[i]->stdout_text().substr(0, 6000));
    CHECK_FALSE(processors[i]->wait_exit(0ms).has_value());
    // No race was reported as an error on the way.
    CHECK(processors[i]->stdout_text().find("\"msg\":\"cannot prepare the store\"") ==
          std::string::npos);
  }
  // The catalog is there once, whoever won each race.
  CHECK(count_documents(mongo, database, "gpus") > 0);
  CHECK(http_get(ports[0], "/v1/gpus").status == 200);

  for (const auto& p : processors) p->send_signal(SIGTERM);
  for (const auto& p : processors) CHECK(p->wait_exit(20s) == std::optional<int>(0));
}
