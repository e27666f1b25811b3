// The producer role against the real broker: exactly N events delivered and read back, every one
// valid against the JSON Schemas with the specified keys, also across a broker restart.

#include <signal.h>
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "support/child_process.hpp"
#include "support/kafka_reader.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct ProducerRun {
  std::string gpu_topic = unique_topic("itest-gpu");
  std::string usage_topic = unique_topic("itest-usage");

  std::vector<std::string> argv(int count, int rate) const {
    return {telemetryd_bin(), "run",
            "--role",         "producer",
            "--count",        std::to_string(count),
            "--set",          "producer.rate=" + std::to_string(rate),
            "--set",          "http.listen=127.0.0.1:0",
            "--set",          "kafka.brokers=" + required_env("TELEMETRYD_TEST_KAFKA_BROKERS"),
            "--set",          "producer.topics.gpu_metrics=" + gpu_topic,
            "--set",          "producer.topics.token_usage=" + usage_topic};
  }
};

// Checks ids, keys and schemas of everything read back; returns the number of distinct ids.
std::size_t check_messages(const std::vector<ConsumedMessage>& messages, const ProducerRun& run) {
  std::set<std::string> ids;
  std::size_t gpu = 0, usage = 0, bad_keys = 0;
  const std::string ndjson_path =
      "/tmp/telemetryd-itest-events-" + std::to_string(getpid()) + ".ndjson";
  std::ofstream ndjson(ndjson_path);
  simdjson::dom::parser parser;
  for (const auto& m : messages) {
    ndjson << m.value << "\n";
    simdjson::dom::element doc = parser.parse(m.value);
    ids.insert(std::string(std::string_view(doc["id"])));
    if (m.topic == run.gpu_topic) {
      ++gpu;
      const std::string_view uuid = doc["data"]["gpu_uuid"];
      if (m.key != uuid || std::string_view(doc["subject"]) != uuid) ++bad_keys;
    } else if (m.topic == run.usage_topic) {
      ++usage;
      const std::string_view deployment = doc["data"]["deployment"];
      if (m.key != deployment) ++bad_keys;
    }
  }
  ndjson.close();
  CHECK(gpu > 0);
  CHECK(usage > 0);
  CHECK(bad_keys == 0);
  const auto validation =
      run_command({"/usr/bin/python3", source_root() + "/scripts/validate_events.py", ndjson_path});
  INFO(validation.output.substr(0, 2000));
  CHECK(validation.status == 0);
  CHECK(validation.output.find("validated: " + std::to_string(messages.size()) +
                               " events, 0 invalid") != std::string::npos);
  std::remove(ndjson_path.c_str());
  return ids.size();
}

}  // namespace

TEST_CASE("producer --count 20000 delivers exactly 20000 valid events", "[producer][itest]") {
  const ProducerRun run;
  ChildProcess child(run.argv(20000, 20000));
  const auto status = child.wait_exit(120s);
  INFO(child.stdout_text().substr(0, 4000));
  REQUIRE(status == 0);
  CHECK(child.stdout_text().find("\"delivered\":20000,\"failed\":0,\"undelivered\":0") !=
        std::string::npos);

  const auto messages = read_topics(required_env("TELEMETRYD_TEST_KAFKA_BROKERS"),
                                    {run.gpu_topic, run.usage_topic}, 20000, 90s);
  CHECK(messages.size() == 20000);
  CHECK(check_messages(messages, run) == 20000);
}

TEST_CASE("a broker restart during a run loses and duplicates nothing", "[producer][itest]") {
  const ProducerRun run;
  // 20000 events at 2000/s take about 10 s: the restart lands in the middle.
  ChildProcess child(run.argv(20000, 2000));
  REQUIRE(child.wait_for_line("\"msg\":\"started\"", 15s));
  std::this_thread::sleep_for(3s);
  const auto restart = run_command({source_root() + "/scripts/services.sh", "restart", "kafka"});
  INFO(restart.output);
  REQUIRE(restart.status == 0);
  const auto status = child.wait_exit(240s);
  INFO(child.stdout_text().substr(
      child.stdout_text().size() > 6000 ? child.stdout_text().size() - 6000 : 0));
  REQUIRE(status == 0);

  const auto messages = read_topics(required_env("TELEMETRYD_TEST_KAFKA_BROKERS"),
                                    {run.gpu_topic, run.usage_topic}, 20000, 120s);
  CHECK(messages.size() == 20000);
  CHECK(check_messages(messages, run) == 20000);
}
