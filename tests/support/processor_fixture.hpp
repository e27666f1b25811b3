#pragma once
// A processor under test against the real broker and FerretDB (or PostgreSQL): unique topics,
// database and group, the command line that runs it, and the stored count. Header-only: it lives
// with Catch2.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"
#include "support/postgres_probe.hpp"

namespace test_support {

using namespace std::chrono_literals;

// Where a processor under test reads and stores.
struct ProcessorTarget {
  std::string brokers, mongo, database, group, gpu_topic, usage_topic;
};

// The query API's one token for every tenant in the processors tests start.
constexpr const char* kQueryToken = "itest-query-token-0123456789";

// A tokens file holding kQueryToken, written once per test process (removed at exit).
inline const std::string& query_tokens_file() {
  static const struct File {
    std::string path = "/tmp/telemetryd-itest-tokens-" + std::to_string(getpid());
    File() { std::ofstream(path) << "itest " << kQueryToken << "\n"; }
    ~File() { unlink(path.c_str()); }
  } file;
  return file.path;
}

// A query route asked with kQueryToken.
inline HttpResult query(int port, const std::string& target) {
  return http_request("127.0.0.1", port, "GET", target, {}, {},
                      {{"Authorization", std::string("Bearer ") + kQueryToken}});
}

// The command line of a processor of `t` on an ephemeral HTTP port, retrying the store every
// second at most, its query API behind kQueryToken; `sets` are more `--set` values.
inline std::vector<std::string> processor_command(const ProcessorTarget& t,
                                                  const std::vector<std::string>& sets) {
  std::vector<std::string> argv{
      telemetryd_bin(), "run",
      "--role",         "processor",
      "--set",          "http.listen=127.0.0.1:0",
      "--set",          "kafka.brokers=" + t.brokers,
      "--set",          "mongodb.uri=" + t.mongo,
      "--set",          "mongodb.database=" + t.database,
      "--set",          "processor.group_id=" + t.group,
      "--set",          "processor.topics.gpu_metrics=" + t.gpu_topic,
      "--set",          "processor.topics.token_usage=" + t.usage_topic,
      "--set",          "processor.retry_backoff_max_ms=1000",
      "--set",          "processor.query.tokens_file=" + query_tokens_file()};
  for (const auto& set : sets) argv.insert(argv.end(), {"--set", set});
  return argv;
}

// Where the processor under test stores: processor.store's default (MongoDB on FerretDB), or
// PostgreSQL (a database of its own on the services.sh server).
enum class StoreKind { kMongo, kPostgres };

struct ProcessorFixture {
  explicit ProcessorFixture(StoreKind kind = StoreKind::kMongo) {
    if (kind == StoreKind::kPostgres) postgres = std::make_unique<PostgresDatabase>();
  }

  std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string gpu_topic = unique_topic("pitest-gpu");
  std::string usage_topic = unique_topic("pitest-usage");
  std::string database =
      "pitest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
  std::string group = unique_topic("pitest-group");
  std::unique_ptr<PostgresDatabase> postgres;  // set with StoreKind::kPostgres
  ~ProcessorFixture() { drop_database(mongo, database); }

  std::vector<std::string> processor_argv() const {
    std::vector<std::string> sets{"mongodb.check_interval_ms=500", "processor.cost.settle_s=1"};
    if (postgres) {
      for (auto& set : postgres->processor_sets()) sets.push_back(std::move(set));
    }
    return processor_command({brokers, mongo, database, group, gpu_topic, usage_topic}, sets);
  }

  std::int64_t stored() const {
    const auto a =
        postgres ? postgres->count("gpu_metrics") : count_documents(mongo, database, "gpu_metrics");
    const auto b =
        postgres ? postgres->count("token_usage") : count_documents(mongo, database, "token_usage");
    return a < 0 || b < 0 ? -1 : a + b;
  }

  // Waits until the store holds `expected` documents; returns the last count seen.
  std::int64_t wait_stored(std::int64_t expected, std::chrono::seconds timeout) const {
    std::int64_t n = -1;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      n = stored();
      if (n >= expected) break;
      std::this_thread::sleep_for(250ms);
    }
    // Give a late duplicate the chance to show up as an extra document.
    std::this_thread::sleep_for(1s);
    return stored();
  }
};

}  // namespace test_support
