// TLS and authentication against the real services: the producer over Kafka's SSL listener
// (client certificate) and SASL_SSL listener (SCRAM-SHA-512) with exact counts read back; the
// producer -> processor -> ferretdb-tls pipeline with a database user; a wrong CA or password
// keeps the process alive with /ready 503 naming the cause; plaintext clients are refused by the
// TLS-only listeners; missing certificate or password files stop the start with exit 78.

#include <signal.h>
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <set>

#include "support/mongo_probe.hpp"
#include "support/test_certs.hpp"
#include "support/tls_client.hpp"
#include "tls_fixture.hpp"

using namespace test_support;
using namespace tls_fixture;

namespace {

std::size_t distinct_ids(const std::vector<ConsumedMessage>& messages) {
  simdjson::dom::parser parser;
  std::set<std::string> ids;
  for (const auto& m : messages) {
    simdjson::dom::element doc = parser.parse(m.value);
    ids.insert(std::string(std::string_view(doc["id"])));
  }
  return ids.size();
}

std::string tail(const std::string& text, std::size_t n = 4000) {
  return text.size() > n ? text.substr(text.size() - n) : text;
}

std::string unique_database(const char* prefix) {
  return prefix + std::to_string(getpid()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
}

// Starts a processor with `sets`, waits for /ready to contain `needles`, checks it is a 503
// from a live process, and that SIGTERM still ends it cleanly.
void expect_not_ready_with(const std::vector<std::string>& sets,
                           const std::vector<std::string>& needles) {
  ChildProcess child(processor_argv(unique_topic("tls-fail"), sets));
  const int port = http_port(child);
  REQUIRE(port > 0);
  const auto ready = wait_ready_body(port, needles);
  INFO(ready.body);
  INFO(tail(child.stdout_text()));
  CHECK(ready.status == 503);
  for (const auto& n : needles) CHECK(ready.body.find(n) != std::string::npos);
  CHECK(http_get(port, "/health").status == 200);  // alive, not crashed
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(20s) == 0);
}

}  // namespace

TEST_CASE("producer over SSL with a client certificate delivers exactly N", "[tls][itest]") {
  const Services s;
  const std::string prefix = unique_topic("tls-ssl");
  ChildProcess child(producer_argv(prefix, 3000, kafka_ssl_sets(s)));
  const auto status = child.wait_exit(120s);
  INFO(tail(child.stdout_text()));
  REQUIRE(status == 0);
  CHECK(child.stdout_text().find("\"delivered\":3000,\"failed\":0,\"undelivered\":0") !=
        std::string::npos);
  const auto messages =
      read_topics(s.ssl_reader(), {prefix + "-gpu", prefix + "-usage"}, 3000, 90s);
  CHECK(messages.size() == 3000);
  CHECK(distinct_ids(messages) == 3000);
}

TEST_CASE("producer over SASL_SSL (SCRAM-SHA-512) delivers exactly N", "[tls][itest]") {
  const Services s;
  const SecretFile password(s.scram_password);
  const std::string prefix = unique_topic("tls-sasl");
  ChildProcess child(producer_argv(prefix, 3000, kafka_sasl_sets(s, password.path)));
  const auto status = child.wait_exit(120s);
  INFO(tail(child.stdout_text()));
  REQUIRE(status == 0);
  CHECK(child.stdout_text().find("\"delivered\":3000,\"failed\":0,\"undelivered\":0") !=
        std::string::npos);
  const auto messages =
      read_topics(s.sasl_reader(), {prefix + "-gpu", prefix + "-usage"}, 3000, 90s);
  CHECK(messages.size() == 3000);
  CHECK(distinct_ids(messages) == 3000);
}

TEST_CASE("producer -> processor over SASL_SSL -> ferretdb-tls with a user stores exactly N",
          "[tls][itest]") {
  const Services s;
  const SecretFile kafka_password(s.scram_password);
  const SecretFile mongo_password(s.mongo_password);
  const std::string prefix = unique_topic("tls-pipe");
  const std::string database = unique_database("tlsitest");
  const std::string counting_uri = s.mongo_counting_uri();
  constexpr int kEvents = 2000;

  ChildProcess producer(producer_argv(prefix, kEvents, kafka_sasl_sets(s, kafka_password.path)));
  REQUIRE(producer.wait_exit(120s) == 0);

  auto sets = kafka_sasl_sets(s, kafka_password.path);
  for (auto& m : mongo_tls_sets(s, mongo_password.path)) sets.push_back(m);
  sets.push_back("mongodb.database=" + database);
  ChildProcess processor(processor_argv(prefix, sets));
  const int port = http_port(processor);
  REQUIRE(port > 0);
  const auto ready = wait_ready_body(
      port, {"\"name\":\"kafka\",\"ready\":true", "\"name\":\"mongodb\",\"ready\":true"});
  INFO(ready.body);
  CHECK(ready.status == 200);

  std::int64_t stored = -1;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto a = count_documents(counting_uri, database, "gpu_metrics");
    const auto b = count_documents(counting_uri, database, "token_usage");
    stored = a < 0 || b < 0 ? -1 : a + b;
    if (stored >= kEvents) break;
    std::this_thread::sleep_for(250ms);
  }
  std::this_thread::sleep_for(1s);  // a late duplicate would show up as an extra document
  stored = count_documents(counting_uri, database, "gpu_metrics") +
           count_documents(counting_uri, database, "token_usage");
  INFO(tail(processor.stdout_text()));
  CHECK(stored == kEvents);
  // The counting client is refused without the user: authentication is really on.
  CHECK(count_documents(s.mongo_tls_uri, database, "gpu_metrics") == -1);

  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
  drop_database(counting_uri, database);
}

TEST_CASE("a wrong CA: alive, /ready 503 with the cause, clean SIGTERM", "[tls][itest]") {
  const Services s;
  const SecretFile kafka_password(s.scram_password);
  const SecretFile mongo_password(s.mongo_password);
  SECTION("Kafka SSL and ferretdb-tls verified against an unrelated CA") {
    auto sets = kafka_ssl_sets(s, "wrong-ca.pem");
    for (auto& m : mongo_tls_sets(s, mongo_password.path, "wrong-ca.pem")) sets.push_back(m);
    expect_not_ready_with(sets,
                          {"\"name\":\"kafka\",\"ready\":false", "SSL handshake failed",
                           "certificate verify failed", "\"name\":\"mongodb\",\"ready\":false",
                           "TLS handshake failed: certificate verify failed"});
  }
  SECTION("Kafka SASL_SSL verified against an unrelated CA") {
    auto sets = kafka_sasl_sets(s, kafka_password.path, "wrong-ca.pem");
    sets.push_back("mongodb.uri=" + s.mongo_plain_uri);
    expect_not_ready_with(sets, {"\"name\":\"kafka\",\"ready\":false", "certificate verify failed",
                                 "\"name\":\"mongodb\",\"ready\":true"});
  }
}

TEST_CASE("a wrong password: alive, /ready 503 with the cause, clean SIGTERM", "[tls][itest]") {
  const Services s;
  const SecretFile wrong("not-the-password-" + std::to_string(getpid()));
  auto sets = kafka_sasl_sets(s, wrong.path);
  for (auto& m : mongo_tls_sets(s, wrong.path)) sets.push_back(m);
  expect_not_ready_with(sets, {"\"name\":\"kafka\",\"ready\":false",
                               "SASL authentication error: Authentication failed",
                               "\"name\":\"mongodb\",\"ready\":false", "Authentication failed."});
}

TEST_CASE("the SSL listener refuses plaintext clients and clients without a good certificate",
          "[tls][itest]") {
  const Services s;
  const std::string mongo = "mongodb.uri=" + s.mongo_plain_uri;
  SECTION("plaintext to the SSL listener") {
    expect_not_ready_with({"kafka.brokers=" + s.kafka_ssl, mongo},
                          {"\"name\":\"kafka\",\"ready\":false", "metadata request failed"});
  }
  SECTION("plaintext to the SASL_SSL listener") {
    expect_not_ready_with({"kafka.brokers=" + s.kafka_sasl_ssl, mongo},
                          {"\"name\":\"kafka\",\"ready\":false", "metadata request failed"});
  }
  SECTION("TLS without a client certificate (ssl.client.auth=required)") {
    expect_not_ready_with({"kafka.brokers=" + s.kafka_ssl, "kafka.security_protocol=ssl",
                           "kafka.ssl_ca_file=" + s.cert("ca.pem"), mongo},
                          {"\"name\":\"kafka\",\"ready\":false", "metadata request failed"});
  }
  SECTION("a client certificate signed by an unrelated CA") {
    expect_not_ready_with({"kafka.brokers=" + s.kafka_ssl, "kafka.security_protocol=ssl",
                           "kafka.ssl_ca_file=" + s.cert("ca.pem"),
                           "kafka.ssl_certificate_file=" + s.cert("wrong-client.pem"),
                           "kafka.ssl_key_file=" + s.cert("wrong-client.key"), mongo},
                          {"\"name\":\"kafka\",\"ready\":false", "metadata request failed"});
  }
}

TEST_CASE("ferretdb-tls refuses plaintext clients and clients without a certificate",
          "[tls][itest]") {
  const Services s;
  const SecretFile mongo_password(s.mongo_password);
  SECTION("plaintext") {
    expect_not_ready_with(
        {"kafka.brokers=" + s.kafka_plain, "mongodb.uri=mongodb://" + s.mongo_tls_address + "/",
         "mongodb.check_interval_ms=500"},
        {"\"name\":\"mongodb\",\"ready\":false", "ping failed"});
  }
  SECTION("TLS without a client certificate") {
    auto sets = mongo_tls_sets(s, mongo_password.path);
    std::erase_if(sets, [](const std::string& v) {
      return v.rfind("mongodb.tls_certificate_key_file=", 0) == 0;
    });
    sets.push_back("kafka.brokers=" + s.kafka_plain);
    expect_not_ready_with(sets, {"\"name\":\"mongodb\",\"ready\":false", "ping failed"});
  }
}

TEST_CASE("missing certificate and password files stop the start with exit 78 naming the key",
          "[tls][itest]") {
  const Services s;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"kafka.security_protocol=ssl", "kafka.ssl_ca_file=/nonexistent/ca.pem"},
       "kafka.ssl_ca_file"},
      {{"kafka.security_protocol=ssl", "kafka.ssl_ca_file=" + s.cert("ca.pem"),
        "kafka.ssl_certificate_file=" + s.cert("client.pem"),
        "kafka.ssl_key_file=/nonexistent/client.key"},
       "kafka.ssl_key_file"},
      {{"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=u",
        "kafka.sasl_password_file=/nonexistent/password"},
       "kafka.sasl_password_file"},
      {{"mongodb.tls=true", "mongodb.tls_ca_file=/nonexistent/ca.pem"}, "mongodb.tls_ca_file"},
      {{"mongodb.tls=true", "mongodb.tls_certificate_key_file=" + s.cert("client.pem")},
       "mongodb.tls_certificate_key_file"},
      {{"mongodb.username=u", "mongodb.password_file=/nonexistent/password"},
       "mongodb.password_file"},
  };
  for (const auto& [sets, key] : cases) {
    std::vector<std::string> argv{telemetryd_bin(), "run", "--role", "processor"};
    append(argv, {"http.listen=127.0.0.1:0"});
    append(argv, sets);
    ChildProcess child(argv);
    const auto status = child.wait_exit(15s);
    INFO(key);
    INFO(child.stdout_text() + child.stderr_text());
    CHECK(status == 78);
    CHECK(child.stdout_text().find("\"key\":\"" + key + "\"") != std::string::npos);
    CHECK(child.stdout_text().find("\"msg\":\"--set:") != std::string::npos);
  }
}

TEST_CASE("HTTPS ingest -> Kafka SASL_SSL -> worker -> ferretdb-tls with a user: exactly N",
          "[tls][itest]") {
  const Services s;
  const SecretFile kafka_password(s.scram_password);
  const SecretFile mongo_password(s.mongo_password);
  const SecretFile tokens("tls-itest tls-itest-token-0123456789abcdef\n");
  const test_support::TestCerts certs;  // the ingest listener's own server certificate
  const std::string topic = unique_topic("tls-edge");
  const std::string database = unique_database("tlsedge");
  const std::string counting_uri = s.mongo_counting_uri();
  constexpr int kEvents = 50;

  auto ingest_sets = kafka_sasl_sets(s, kafka_password.path);
  ingest_sets.insert(
      ingest_sets.end(),
      {"ingest.enabled=true", "ingest.tokens_file=" + tokens.path, "processor.query.auth=bearer",
       "processor.query.tokens_file=" + tokens.path, "ingest.topics.gpu_metadata=" + topic,
       "http.tls_cert_file=" + certs.server_cert, "http.tls_key_file=" + certs.server_key,
       "mongodb.uri=" + s.mongo_plain_uri});
  ChildProcess ingest(processor_argv(unique_topic("tls-edge-unused"), ingest_sets));
  const int ingest_port = http_port(ingest);
  REQUIRE(ingest_port > 0);

  auto worker_sets = kafka_sasl_sets(s, kafka_password.path);
  for (auto& m : mongo_tls_sets(s, mongo_password.path)) worker_sets.push_back(m);
  std::vector<std::string> worker_argv{test_support::telemetryd_bin(), "run", "--role", "worker"};
  append(worker_argv, {"http.listen=127.0.0.1:0", "worker.topic=" + topic,
                       "worker.group_id=" + topic + "-group", "mongodb.database=" + database});
  append(worker_argv, worker_sets);
  ChildProcess worker(worker_argv);
  const int worker_port = http_port(worker);
  REQUIRE(worker_port > 0);
  const auto ready = wait_ready_body(
      worker_port, {"\"name\":\"kafka\",\"ready\":true", "\"name\":\"mongodb\",\"ready\":true"});
  INFO(ready.body);
  CHECK(ready.status == 200);

  int accepted = 0;
  for (int i = 0; i < kEvents; ++i) {
    test_support::TlsClientOptions options;
    options.ca_file = certs.ca_cert;
    const auto answer = test_support::https_request(
        ingest_port, "POST", "/metadata",
        R"({"gpu_uuid":"GPU-tls-)" + std::to_string(i % 5) +
            R"(","host":"h","model_name":"m","observed_at":"2026-12-01T10:00:)" +
            (i < 10 ? "0" : "") + std::to_string(i) + R"(Z"})",
        "application/json", {{"Authorization", "Bearer tls-itest-token-0123456789abcdef"}},
        options);
    if (answer.status == 202) ++accepted;
  }
  REQUIRE(accepted == kEvents);
  std::int64_t stored = -1;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < deadline) {
    stored = count_documents(counting_uri, database, "gpu_metadata");
    if (stored >= kEvents) break;
    std::this_thread::sleep_for(250ms);
  }
  std::this_thread::sleep_for(1s);
  INFO(tail(worker.stdout_text()));
  CHECK(count_documents(counting_uri, database, "gpu_metadata") == kEvents);
  CHECK(count_documents(counting_uri, database, "gpu_devices") == 5);
  worker.send_signal(SIGTERM);
  CHECK(worker.wait_exit(20s) == 0);
  ingest.send_signal(SIGTERM);
  CHECK(ingest.wait_exit(20s) == 0);
  drop_database(counting_uri, database);
}
