#pragma once
// Shared by tls_itest.cpp and secrets_itest.cpp: the TLS services' addresses, certificates and
// test passwords from <state>/env (scripts/services.sh up), role-file settings for each way of
// connecting, and polling /ready until it says what a test waits for.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"

namespace tls_fixture {

using namespace std::chrono_literals;
using test_support::required_env;

struct Services {
  std::string certs = required_env("TELEMETRYD_TEST_CERTS_DIR");
  std::string kafka_plain = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string kafka_ssl = required_env("TELEMETRYD_TEST_KAFKA_SSL_BROKERS");
  std::string kafka_sasl_ssl = required_env("TELEMETRYD_TEST_KAFKA_SASL_SSL_BROKERS");
  std::string scram_user = required_env("TELEMETRYD_TEST_KAFKA_SCRAM_USER");
  std::string scram_password = required_env("TELEMETRYD_TEST_KAFKA_SCRAM_PASSWORD");
  std::string mongo_plain_uri = required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string mongo_tls_address = required_env("TELEMETRYD_TEST_MONGO_TLS_ADDRESS");
  std::string mongo_tls_uri = required_env("TELEMETRYD_TEST_MONGO_TLS_URI");
  std::string mongo_user = required_env("TELEMETRYD_TEST_MONGO_TLS_USER");
  std::string mongo_password = required_env("TELEMETRYD_TEST_MONGO_TLS_PASSWORD");
  std::string mongo_auth_source = required_env("TELEMETRYD_TEST_MONGO_TLS_AUTH_SOURCE");

  std::string cert(const std::string& name) const { return certs + "/" + name; }

  /// librdkafka properties of a test reader on the SSL listener (client certificate).
  std::map<std::string, std::string> ssl_reader() const {
    return {{"bootstrap.servers", kafka_ssl},
            {"security.protocol", "ssl"},
            {"ssl.ca.location", cert("ca.pem")},
            {"ssl.certificate.location", cert("client.pem")},
            {"ssl.key.location", cert("client.key")}};
  }
  /// ... and on the SASL_SSL listener.
  std::map<std::string, std::string> sasl_reader() const {
    return {{"bootstrap.servers", kafka_sasl_ssl}, {"security.protocol", "sasl_ssl"},
            {"ssl.ca.location", cert("ca.pem")},   {"sasl.mechanism", "SCRAM-SHA-512"},
            {"sasl.username", scram_user},         {"sasl.password", scram_password}};
  }

  /// A MongoDB URI for the tests' own counting client (TLS, client certificate, the user),
  /// with the password percent-encoded here independently of the product's builder.
  std::string mongo_counting_uri() const {
    std::string encoded;
    for (const unsigned char c : mongo_password) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        encoded.push_back(static_cast<char>(c));
      } else {
        static constexpr char kHex[] = "0123456789ABCDEF";
        encoded += {'%', kHex[c >> 4], kHex[c & 15]};
      }
    }
    std::string uri = mongo_tls_uri;
    uri.insert(uri.find("://") + 3, mongo_user + ":" + encoded + "@");
    return uri + "&authSource=" + mongo_auth_source;
  }
};

/// A file holding `text` (a password file), removed when the test ends.
struct SecretFile {
  std::string path;
  explicit SecretFile(const std::string& text) {
    char name[] = "/tmp/telemetryd-itest-secret-XXXXXX";
    const int fd = mkstemp(name);  // 0600
    close(fd);
    path = name;
    std::ofstream(path) << text << "\n";
  }
  ~SecretFile() { unlink(path.c_str()); }
  SecretFile(const SecretFile&) = delete;
  SecretFile& operator=(const SecretFile&) = delete;
};

inline void append(std::vector<std::string>& argv, const std::vector<std::string>& sets) {
  for (const auto& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
}

/// --set values for Kafka over the SSL listener with the client certificate.
inline std::vector<std::string> kafka_ssl_sets(const Services& s,
                                               const std::string& ca = "ca.pem") {
  return {"kafka.brokers=" + s.kafka_ssl, "kafka.security_protocol=ssl",
          "kafka.ssl_ca_file=" + s.cert(ca), "kafka.ssl_certificate_file=" + s.cert("client.pem"),
          "kafka.ssl_key_file=" + s.cert("client.key")};
}

/// --set values for Kafka over SASL_SSL, the password from `password_file`.
inline std::vector<std::string> kafka_sasl_sets(const Services& s, const std::string& password_file,
                                                const std::string& ca = "ca.pem") {
  return {"kafka.brokers=" + s.kafka_sasl_ssl, "kafka.security_protocol=sasl_ssl",
          "kafka.ssl_ca_file=" + s.cert(ca), "kafka.sasl_username=" + s.scram_user,
          "kafka.sasl_password_file=" + password_file};
}

/// --set values for ferretdb-tls: TLS with the client certificate, the user, its password file.
inline std::vector<std::string> mongo_tls_sets(const Services& s, const std::string& password_file,
                                               const std::string& ca = "ca.pem") {
  return {"mongodb.uri=mongodb://" + s.mongo_tls_address + "/",
          "mongodb.tls=true",
          "mongodb.tls_ca_file=" + s.cert(ca),
          "mongodb.tls_certificate_key_file=" + s.cert("client-combined.pem"),
          "mongodb.username=" + s.mongo_user,
          "mongodb.password_file=" + password_file,
          "mongodb.auth_source=" + s.mongo_auth_source,
          "mongodb.check_interval_ms=500"};
}

inline std::vector<std::string> processor_argv(const std::string& topic_prefix,
                                               const std::vector<std::string>& sets) {
  std::vector<std::string> argv{test_support::telemetryd_bin(), "run", "--role", "processor"};
  append(argv, {"http.listen=127.0.0.1:0", "processor.topics.gpu_metrics=" + topic_prefix + "-gpu",
                "processor.topics.token_usage=" + topic_prefix + "-usage",
                "processor.group_id=" + topic_prefix + "-group", "kafka.check_interval_ms=500",
                "processor.retry_backoff_max_ms=1000",
                // these tests query nothing; a case that does sets auth and tokens_file
                "processor.query.auth=none"});
  append(argv, sets);
  return argv;
}

inline std::vector<std::string> producer_argv(const std::string& topic_prefix, int count,
                                              const std::vector<std::string>& sets) {
  std::vector<std::string> argv{
      test_support::telemetryd_bin(), "run", "--role", "producer", "--count",
      std::to_string(count)};
  append(argv, {"http.listen=127.0.0.1:0", "producer.rate=2000",
                "producer.topics.gpu_metrics=" + topic_prefix + "-gpu",
                "producer.topics.token_usage=" + topic_prefix + "-usage"});
  append(argv, sets);
  return argv;
}

/// The HTTP port of a started child, from its "listening" log line (-1 if it never listened).
inline int http_port(const test_support::ChildProcess& child) {
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 15s);
  return line ? test_support::port_from_listening_line(*line) : -1;
}

/// Polls /ready until its body contains every needle (or the timeout); returns the last answer.
inline test_support::HttpResult wait_ready_body(int port, const std::vector<std::string>& needles,
                                                std::chrono::seconds timeout = 30s) {
  test_support::HttpResult ready;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    ready = test_support::http_get(port, "/ready");
    bool all = ready.status != 0;
    for (const auto& n : needles) all = all && ready.body.find(n) != std::string::npos;
    if (all) break;
    std::this_thread::sleep_for(250ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return ready;
}

}  // namespace tls_fixture
