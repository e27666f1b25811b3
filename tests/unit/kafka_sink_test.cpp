// The Kafka sink and the producer role against librdkafka's built-in mock cluster (no broker).

#include <unistd.h>
#include <catch2/catch.hpp>

#include "app/roles.hpp"
#include "kafka/client_properties.hpp"
#include "sinks/kafka_sink.hpp"
#include "support/cert_files.hpp"
#include "support/child_process.hpp"
#include "telemetryd/errors.hpp"

using namespace telemetryd;
using namespace std::chrono_literals;

namespace {
Config producer_config(std::vector<std::string> overrides) {
  return load_config({.role = "producer", .overrides = std::move(overrides)}, app::role_catalog());
}
}  // namespace

TEST_CASE("producer defaults: acks=all, idempotent, bounded queue, no timeout", "[kafka]") {
  const auto p = kafka::producer_properties(producer_config({}));
  CHECK(p.at("acks") == "all");
  CHECK(p.at("enable.idempotence") == "true");
  CHECK(p.at("queue.buffering.max.kbytes") == "65536");
  CHECK(p.at("message.timeout.ms") == "0");
  CHECK(p.at("compression.type") == "lz4");
  CHECK(p.at("socket.nagle.disable") == "true");
  CHECK(p.at("security.protocol") == "plaintext");
  CHECK(p.count("sasl.password") == 0);
}

TEST_CASE("SASL settings pass through; the password comes from its file", "[kafka]") {
  char path[] = "/tmp/telemetryd-sasl-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(write(fd, "s3cret\n", 7) == 7);
  close(fd);
  const auto p = kafka::client_properties(
      producer_config({"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=telemetryd",
                       std::string("kafka.sasl_password_file=") + path,
                       "kafka.ssl_ca_file=" + test_support::generated_certs_dir() + "/ca.pem",
                       "kafka.extra_properties=socket.keepalive.enable=true"}));
  CHECK(p.at("sasl.mechanism") == "SCRAM-SHA-512");
  CHECK(p.at("sasl.username") == "telemetryd");
  CHECK(p.at("sasl.password") == "s3cret");
  CHECK(p.at("ssl.ca.location") == test_support::generated_certs_dir() + "/ca.pem");
  CHECK(p.at("socket.keepalive.enable") == "true");
  // Gone after the role file loaded: the clients cannot start.
  const Config loaded =
      producer_config({"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=telemetryd",
                       std::string("kafka.sasl_password_file=") + path});
  unlink(path);
  CHECK_THROWS_AS(kafka::client_properties(loaded), StartupError);
  // Missing when it loads: a configuration error, exit 78.
  CHECK_THROWS_AS(
      producer_config({"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=telemetryd",
                       "kafka.sasl_password_file=/nonexistent"}),
      ConfigError);
}

TEST_CASE("a full local queue is backpressure: every event is still delivered", "[kafka]") {
  const Config config =
      producer_config({"kafka.extra_properties=test.mock.num.brokers=1",
                       "kafka.producer.queue_max_messages=1000", "kafka.producer.linger_ms=50"});
  metrics::Registry registry;
  int delivered = 0, failed = 0;
  sinks::KafkaSink sink(config, registry,
                        [&](const sinks::DeliveryReport& r) { r.ok ? ++delivered : ++failed; });
  std::atomic<bool> abort{false};
  std::string error;
  for (int i = 0; i < 5000; ++i) {
    Event e{"mock.topic",
            "k" + std::to_string(i % 7),
            "id-" + std::to_string(i),
            "{\"n\":" + std::to_string(i) + "}",
            {}};
    REQUIRE(sink.produce(e, abort, error));
  }
  CHECK(sink.flush(30s) == 0);
  CHECK(delivered == 5000);
  CHECK(failed == 0);
  const std::string text = registry.expose();
  CHECK(text.find("producer_messages_sent_total{topic=\"mock.topic\"} 5000\n") !=
        std::string::npos);
  CHECK(text.find("producer_backpressure_waits_total 0\n") == std::string::npos);
}

TEST_CASE("producer role: --count N on a mock cluster exits 0 with N delivered", "[kafka][cli]") {
  test_support::ChildProcess child(
      {test_support::telemetryd_bin(), "run", "--role", "producer", "--count", "3000", "--set",
       "producer.rate=0", "--set", "synthetic.sample_interval_ms=10", "--set",
       "http.listen=127.0.0.1:0", "--set", "kafka.extra_properties=test.mock.num.brokers=1"});
  const auto status = child.wait_exit(60s);
  INFO(child.stdout_text().substr(0, 4000));
  REQUIRE(status == 0);
  CHECK(child.stdout_text().find(
            "\"produced\":3000,\"delivered\":3000,\"failed\":0,\"undelivered\":0") !=
        std::string::npos);
}

TEST_CASE("--count is refused for roles without a producer", "[cli]") {
  const auto result = test_support::run_command(
      {test_support::telemetryd_bin(), "run", "--role", "processor", "--count", "5"});
  CHECK(result.status == 78);
  CHECK(result.output.find("producer: section is not used by role 'processor'") !=
        std::string::npos);
}
