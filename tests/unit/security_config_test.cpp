// TLS and authentication settings as the role file loads: file keys must name readable PEM
// files, rules joining keys (SASL needs a user and a password, a certificate its key, TLS files
// a TLS protocol), secrets read from files, and no secret ever in a problem's text.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>

#include "app/roles.hpp"
#include "kafka/client_properties.hpp"
#include "support/cert_files.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"

using namespace telemetryd;
using test_support::generated_certs_dir;

namespace {

std::string cert(const std::string& name) {
  return generated_certs_dir() + "/" + name;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/telemetryd-security-XXXXXX";
    close(mkstemp(name));
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { unlink(path.c_str()); }
};

std::vector<ConfigProblem> problems_of(const LoadOptions& options) {
  try {
    load_config(options, app::role_catalog());
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

std::vector<ConfigProblem> problems_of_sets(const std::string& role,
                                            std::vector<std::string> overrides) {
  return problems_of({.role = role, .overrides = std::move(overrides)});
}

std::string paths(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += (out.empty() ? "" : " ") + p.path;
  return out;
}

std::string all_text(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += p.to_string() + "\n";
  return out;
}

}  // namespace

TEST_CASE("file checks: readable, not empty, PEM of the right kind", "[security][config]") {
  CHECK_FALSE(check_readable_file(""));
  CHECK(check_readable_file("/nonexistent/x") ==
        "cannot open the file (No such file or directory)");
  CHECK(check_readable_file("/tmp") == "cannot read the file (Is a directory)");
  const TempFile empty("");
  CHECK(check_readable_file(empty.path) == "the file is empty");
  const TempFile text("not a certificate\n");
  CHECK_FALSE(check_readable_file(text.path));

  CHECK_FALSE(check_pem_certificate_file(cert("ca.pem")));
  CHECK_FALSE(check_pem_certificate_file(cert("server-chain.pem")));
  CHECK(check_pem_certificate_file(text.path) == "no PEM certificate in the file");
  CHECK(check_pem_certificate_file(cert("client.key")) == "no PEM certificate in the file");

  CHECK_FALSE(check_pem_key_file(cert("client.key")));
  CHECK(check_pem_key_file(cert("client.pem")));
  // The broker's keystore key is encrypted: refused rather than prompting for a passphrase.
  CHECK(check_pem_key_file(cert("server-keystore.pem")));

  CHECK_FALSE(check_pem_certificate_and_key_file(cert("client-combined.pem")));
  CHECK(check_pem_certificate_and_key_file(cert("client.pem"))->find("no PEM private key") !=
        std::string::npos);
  const TempFile mismatched([] {
    std::ifstream a(cert("client.pem")), b(cert("server.key"));
    return std::string(std::istreambuf_iterator<char>(a), {}) +
           std::string(std::istreambuf_iterator<char>(b), {});
  }());
  CHECK(check_pem_certificate_and_key_file(mismatched.path) ==
        "the private key does not belong to the certificate");
  CHECK_FALSE(check_key_matches_certificate(cert("client.pem"), cert("client.key")));
  CHECK(check_key_matches_certificate(cert("client.pem"), cert("server.key")));
}

TEST_CASE("a missing certificate fails the load with file:line and the key", "[security][config]") {
  const TempFile file(
      "role: producer\n"
      "kafka:\n"
      "  security_protocol: ssl\n"
      "  ssl_ca_file: /nonexistent/ca.pem\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].to_string() ==
        file.path +
            ":4:16: kafka.ssl_ca_file: cannot open the file (No such file or directory), got "
            "'/nonexistent/ca.pem' (a PEM file with the CA certificate(s))");
}

TEST_CASE("an unreadable password file is a config problem", "[security][config]") {
  const TempFile secret("s3cret-value\n");
  chmod(secret.path.c_str(), 0);
  const auto problems =
      problems_of_sets("producer", {"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=u",
                                    "kafka.sasl_password_file=" + secret.path});
  if (geteuid() == 0) {
    // root reads anything: the file passes, the load succeeds.
    CHECK(problems.empty());
  } else {
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].path == "kafka.sasl_password_file");
    CHECK(problems[0].message.find("Permission denied") != std::string::npos);
  }
  const TempFile empty("");
  const auto empty_problems =
      problems_of_sets("producer", {"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=u",
                                    "kafka.sasl_password_file=" + empty.path});
  REQUIRE(empty_problems.size() == 1);
  CHECK(empty_problems[0].message.rfind("the file is empty", 0) == 0);
}

TEST_CASE("kafka: rules joining the security keys", "[security][config]") {
  SECTION("sasl without user or password") {
    const auto problems = problems_of_sets("producer", {"kafka.security_protocol=sasl_ssl"});
    CHECK(paths(problems) == "kafka.sasl_username kafka.sasl_password");
    CHECK(problems[0].message == "required when kafka.security_protocol is sasl_ssl");
  }
  SECTION("SASL keys without a SASL protocol") {
    const auto problems = problems_of_sets(
        "producer", {"kafka.sasl_username=u", "kafka.sasl_password=secret-value-1"});
    CHECK(paths(problems) == "kafka.sasl_username kafka.sasl_password");
    CHECK(problems[1].message ==
          "takes effect only when kafka.security_protocol is sasl_plaintext or sasl_ssl (it is "
          "plaintext)");
  }
  SECTION("TLS files without a TLS protocol") {
    const auto problems = problems_of_sets(
        "producer", {"kafka.security_protocol=sasl_plaintext", "kafka.sasl_username=u",
                     "kafka.sasl_password=x", "kafka.ssl_ca_file=" + cert("ca.pem")});
    CHECK(paths(problems) == "kafka.ssl_ca_file");
    CHECK(problems[0].message ==
          "takes effect only when kafka.security_protocol is ssl or sasl_ssl (it is "
          "sasl_plaintext)");
  }
  SECTION("a certificate without its key, and the other way round") {
    CHECK(
        paths(problems_of_sets("producer", {"kafka.security_protocol=ssl",
                                            "kafka.ssl_certificate_file=" + cert("client.pem")})) ==
        "kafka.ssl_certificate_file");
    CHECK(paths(problems_of_sets("producer", {"kafka.security_protocol=ssl",
                                              "kafka.ssl_key_file=" + cert("client.key")})) ==
          "kafka.ssl_key_file");
  }
  SECTION("a key that belongs to another certificate") {
    const auto problems =
        problems_of_sets("producer", {"kafka.security_protocol=ssl",
                                      "kafka.ssl_certificate_file=" + cert("client.pem"),
                                      "kafka.ssl_key_file=" + cert("server.key")});
    REQUIRE(paths(problems) == "kafka.ssl_key_file");
    CHECK(problems[0].message == "the private key does not belong to the certificate");
    CHECK(problems[0].file == "--set");
    CHECK(problems[0].line == 3);
  }
  SECTION("both a password and a password file") {
    const TempFile secret("from-file\n");
    const auto problems =
        problems_of_sets("producer", {"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=u",
                                      "kafka.sasl_password=inline-secret",
                                      "kafka.sasl_password_file=" + secret.path});
    CHECK(paths(problems) == "kafka.sasl_password_file");
    CHECK(all_text(problems).find("inline-secret") == std::string::npos);
  }
  SECTION("a complete mTLS and a complete SASL_SSL setup load") {
    CHECK(problems_of_sets("producer",
                           {"kafka.security_protocol=ssl", "kafka.ssl_ca_file=" + cert("ca.pem"),
                            "kafka.ssl_certificate_file=" + cert("client.pem"),
                            "kafka.ssl_key_file=" + cert("client.key")})
              .empty());
    CHECK(problems_of_sets("processor", {"kafka.security_protocol=sasl_ssl",
                                         "kafka.ssl_ca_file=" + cert("ca.pem"),
                                         "kafka.sasl_username=u", "kafka.sasl_password=x"})
              .empty());
  }
}

TEST_CASE("kafka: a rule is not evaluated over a key that already has a problem",
          "[security][config]") {
  // security_protocol is invalid, so there is no protocol to reason about: one problem only.
  const auto problems =
      problems_of_sets("producer", {"kafka.security_protocol=tls", "kafka.sasl_username=u"});
  CHECK(paths(problems) == "kafka.security_protocol");
}

TEST_CASE("kafka: extra_properties cannot carry secrets, and never echo them",
          "[security][config]") {
  const auto problems = problems_of_sets(
      "producer", {"kafka.extra_properties=[debug=security, sasl.password=hunter2-extra]"});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].path == "kafka.extra_properties");
  CHECK(problems[0].message.find("'sasl.password' holds a secret") == 0);
  CHECK(all_text(problems).find("hunter2") == std::string::npos);
  const auto malformed = problems_of_sets("producer", {"kafka.extra_properties=hunter2-alone"});
  REQUIRE(malformed.size() == 1);
  CHECK(all_text(malformed).find("hunter2") == std::string::npos);
}

TEST_CASE("kafka: client properties carry TLS and the SASL password from its file",
          "[security][config]") {
  const TempFile secret("pw-from-file\n");
  const Config config = load_config(
      {.role = "producer",
       .overrides = {"kafka.security_protocol=sasl_ssl", "kafka.ssl_ca_file=" + cert("ca.pem"),
                     "kafka.sasl_username=svc", "kafka.sasl_password_file=" + secret.path}},
      app::role_catalog());
  const auto p = kafka::client_properties(config);
  CHECK(p.at("security.protocol") == "sasl_ssl");
  CHECK(p.at("ssl.ca.location") == cert("ca.pem"));
  CHECK(p.at("ssl.endpoint.identification.algorithm") == "https");
  CHECK(p.at("sasl.mechanism") == "SCRAM-SHA-512");
  CHECK(p.at("sasl.username") == "svc");
  CHECK(p.at("sasl.password") == "pw-from-file");
  CHECK_FALSE(p.contains("ssl.certificate.location"));

  const Config plain = load_config({.role = "producer"}, app::role_catalog());
  const auto q = kafka::client_properties(plain);
  CHECK(q.at("security.protocol") == "plaintext");
  CHECK_FALSE(q.contains("sasl.password"));
  CHECK_FALSE(q.contains("ssl.ca.location"));
}

TEST_CASE("mongodb: rules joining TLS and credential keys", "[security][config]") {
  SECTION("TLS files with tls: false") {
    const auto problems = problems_of_sets(
        "processor", {"mongodb.tls_ca_file=" + cert("ca.pem"),
                      "mongodb.tls_certificate_key_file=" + cert("client-combined.pem")});
    CHECK(paths(problems) == "mongodb.tls_ca_file mongodb.tls_certificate_key_file");
    CHECK(problems[0].message == "takes effect only with mongodb.tls: true");
  }
  SECTION("a certificate file without its key") {
    const auto problems = problems_of_sets(
        "processor",
        {"mongodb.tls=true", "mongodb.tls_certificate_key_file=" + cert("client.pem")});
    CHECK(paths(problems) == "mongodb.tls_certificate_key_file");
  }
  SECTION("a user without a password, a password without a user") {
    CHECK(paths(problems_of_sets("processor", {"mongodb.username=svc"})) == "mongodb.password");
    const auto problems = problems_of_sets(
        "processor", {"mongodb.password=hunter2-mongo", "mongodb.auth_source=admin"});
    CHECK(paths(problems) == "mongodb.password mongodb.auth_source");
    CHECK(all_text(problems).find("hunter2") == std::string::npos);
  }
  SECTION("the same thing in the URI and in a key") {
    const auto problems = problems_of_sets(
        "processor",
        {"mongodb.uri=mongodb://old:hunter2-uri@db/?tls=true&authSource=x", "mongodb.tls=true",
         "mongodb.username=svc", "mongodb.password=p", "mongodb.auth_source=admin"});
    CHECK(paths(problems) == "mongodb.username mongodb.tls mongodb.auth_source");
    CHECK(all_text(problems).find("hunter2") == std::string::npos);
  }
  SECTION("a complete TLS and user setup loads") {
    const TempFile secret("pw\n");
    CHECK(problems_of_sets("processor",
                           {"mongodb.tls=true", "mongodb.tls_ca_file=" + cert("ca.pem"),
                            "mongodb.tls_certificate_key_file=" + cert("client-combined.pem"),
                            "mongodb.username=svc", "mongodb.password_file=" + secret.path,
                            "mongodb.auth_source=admin"})
              .empty());
  }
}

TEST_CASE("read_secret: the file's first line, else the key, never the value in errors",
          "[security][config]") {
  const TempFile secret("line-one\r\nline-two\n");
  const Config from_file =
      load_config({.role = "producer",
                   .overrides = {"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=u",
                                 "kafka.sasl_password_file=" + secret.path}},
                  app::role_catalog());
  CHECK(read_secret(from_file, "kafka.sasl_password") == "line-one");

  setenv("TELEMETRYD_TEST_SECRET", "from-env-7", 1);
  const TempFile role(
      "role: producer\nkafka:\n  security_protocol: sasl_ssl\n  sasl_username: u\n"
      "  sasl_password: ${TELEMETRYD_TEST_SECRET}\n");
  const Config from_env = load_config({.file = role.path}, app::role_catalog());
  CHECK(read_secret(from_env, "kafka.sasl_password") == "from-env-7");
  unsetenv("TELEMETRYD_TEST_SECRET");

  const TempFile blank_first("\nsecond\n");
  const Config blank =
      load_config({.role = "producer",
                   .overrides = {"kafka.security_protocol=sasl_ssl", "kafka.sasl_username=u",
                                 "kafka.sasl_password_file=" + blank_first.path}},
                  app::role_catalog());
  CHECK_THROWS_WITH(
      read_secret(blank, "kafka.sasl_password"),
      "kafka.sasl_password_file: the first line of '" + blank_first.path + "' is empty");
}

TEST_CASE("cross-key problems point at the key, or at its section when it was left out",
          "[security][config]") {
  const TempFile file(
      "role: producer\n"
      "kafka:\n"
      "  brokers: 127.0.0.1:9095\n"
      "  security_protocol: sasl_ssl\n"
      "  sasl_password: hunter2-file\n"
      "  ssl_key_file: " +
      cert("client.key") + "\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(paths(problems) == "kafka.ssl_key_file kafka.sasl_username");
  CHECK(problems[0].line == 6);  // written in the file
  CHECK(problems[0].column == 17);
  CHECK(problems[1].line == 3);  // not written: the kafka section's first key
  CHECK(all_text(problems).find("hunter2") == std::string::npos);
}
