// No secret ever leaves the process in text: the producer and the processor run with every secret
// they take (the SCRAM password, the MongoDB password, a MongoDB URI with credentials) given
// through *_file keys and through ${ENV}, at log level debug with every librdkafka debug context,
// in success and in failure (wrong passwords, broken role files holding secrets). Every line of
// their stdout and stderr, /metrics, /ready, /health and check-config's output is searched for
// each secret value, raw and percent-encoded: none may appear.

#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>

#include "support/mongo_probe.hpp"
#include "tls_fixture.hpp"

using namespace test_support;
using namespace tls_fixture;

namespace {

std::string percent_encoded(const std::string& text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// Collects everything the product wrote, then looks for each secret in it.
class Leaks {
 public:
  explicit Leaks(std::vector<std::string> secrets) {
    for (const auto& s : secrets) {
      REQUIRE(s.size() >= 8);  // short values could match by chance
      needles_.push_back(s);
      if (percent_encoded(s) != s) needles_.push_back(percent_encoded(s));
    }
  }

  void add(const std::string& where, const std::string& text) {
    texts_.emplace_back(where, text);
    lines_ += static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  }

  // Scrapes the HTTP endpoints of a running child.
  void scrape(const std::string& where, int port) {
    for (const char* target : {"/metrics", "/ready", "/health"}) {
      const auto answer = http_get(port, target);
      CHECK(answer.status != 0);
      add(where + " " + target, answer.body);
    }
  }

  void add_output(const std::string& where, const ChildProcess& child) {
    add(where + " stdout", child.stdout_text());
    add(where + " stderr", child.stderr_text());
  }

  // Every secret against every line: none may appear. `min_lines` proves the runs really
  // wrote something to search.
  void check(std::size_t min_lines) const {
    std::size_t found = 0;
    for (const auto& [where, text] : texts_) {
      for (const auto& needle : needles_) {
        if (text.find(needle) != std::string::npos) {
          ++found;
          UNSCOPED_INFO("a secret appears in " << where);
        }
      }
    }
    INFO("searched " << texts_.size() << " outputs, " << lines_ << " lines, for " << needles_.size()
                     << " secret forms");
    CHECK(found == 0);
    CHECK(lines_ >= min_lines);
  }

 private:
  std::vector<std::string> needles_;
  std::vector<std::pair<std::string, std::string>> texts_;
  std::size_t lines_ = 0;
};

const std::vector<std::string> kDebug{"daemon.log_level=debug", "kafka.extra_properties=debug=all"};

std::vector<std::string> with_debug(std::vector<std::string> sets) {
  sets.insert(sets.end(), kDebug.begin(), kDebug.end());
  return sets;
}

// Runs a long-lived role until /ready contains `needles`, scrapes it, then stops it.
void run_and_scrape(Leaks& leaks, const std::string& where, const std::vector<std::string>& argv,
                    const std::vector<std::string>& needles, int expected_ready_status,
                    const std::map<std::string, std::string>& env = {}) {
  ChildProcess child(argv, env);
  const int port = http_port(child);
  REQUIRE(port > 0);
  const auto ready = wait_ready_body(port, needles);
  INFO(where << ": " << ready.body);
  CHECK(ready.status == expected_ready_status);
  leaks.scrape(where, port);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(20s) == 0);
  leaks.add_output(where, child);
}

struct EnvGuard {
  std::vector<std::string> names;
  explicit EnvGuard(const std::map<std::string, std::string>& env) {
    for (const auto& [name, value] : env) {
      setenv(name.c_str(), value.c_str(), 1);
      names.push_back(name);
    }
  }
  ~EnvGuard() {
    for (const auto& name : names) unsetenv(name.c_str());
  }
};

std::string write_role_file(const std::string& text) {
  char name[] = "/tmp/telemetryd-itest-role-XXXXXX";
  close(mkstemp(name));
  std::ofstream(name) << text;
  return name;
}

}  // namespace

TEST_CASE("no secret appears in logs, errors, /metrics, /ready, /health or check-config",
          "[secrets][itest]") {
  const Services s;
  const std::string wrong_scram = "wrong-scram-" + std::to_string(getpid()) + "-x9";
  const std::string wrong_mongo = "wrong:mongo@" + std::to_string(getpid()) + "/%x9";
  Leaks leaks({s.scram_password, s.mongo_password, wrong_scram, wrong_mongo});
  const SecretFile scram_file(s.scram_password);
  const SecretFile mongo_file(s.mongo_password);
  const SecretFile wrong_scram_file(wrong_scram);
  const std::string prefix = unique_topic("secrets");
  const std::string database = "secretsitest" + std::to_string(getpid());
  const std::map<std::string, std::string> env{
      {"TELEMETRYD_ITEST_SCRAM_PASSWORD", s.scram_password},
      {"TELEMETRYD_ITEST_MONGO_PASSWORD", s.mongo_password},
      {"TELEMETRYD_ITEST_WRONG_MONGO_PASSWORD", wrong_mongo},
      {"TELEMETRYD_ITEST_MONGO_URI",
       "mongodb://" + s.mongo_user + ":" + percent_encoded(s.mongo_password) + "@" +
           s.mongo_tls_address + "/?authSource=" + s.mongo_auth_source}};
  const EnvGuard env_guard(env);  // for run_command (check-config), which takes no environment
  const std::string kafka_ready = "\"name\":\"kafka\",\"ready\":true";
  const std::string mongo_ready = "\"name\":\"mongodb\",\"ready\":true";

  SECTION("success and failure, secrets from files and from the environment") {
    // 1. producer, SCRAM password from a file, to completion.
    {
      ChildProcess producer(
          producer_argv(prefix, 400, with_debug(kafka_sasl_sets(s, scram_file.path))));
      CHECK(producer.wait_exit(120s) == 0);
      CHECK(producer.stdout_text().find("\"delivered\":400,") != std::string::npos);
      leaks.add_output("producer (file)", producer);
    }
    // 2. producer, SCRAM password from ${ENV} in a role file, scraped while it runs.
    {
      const std::string role = write_role_file(
          "role: producer\n"
          "kafka:\n"
          "  brokers: " +
          s.kafka_sasl_ssl +
          "\n"
          "  security_protocol: sasl_ssl\n"
          "  ssl_ca_file: " +
          s.cert("ca.pem") +
          "\n"
          "  sasl_username: " +
          s.scram_user +
          "\n"
          "  sasl_password: ${TELEMETRYD_ITEST_SCRAM_PASSWORD}\n");
      std::vector<std::string> argv{telemetryd_bin(), "run", "--config", role};
      append(argv, with_debug({"http.listen=127.0.0.1:0", "producer.rate=200",
                               "producer.topics.gpu_metrics=" + prefix + "-gpu",
                               "producer.topics.token_usage=" + prefix + "-usage"}));
      run_and_scrape(leaks, "producer (env)", argv, {kafka_ready}, 200, env);
      const auto check = run_command({telemetryd_bin(), "check-config", role});
      CHECK(check.status == 0);
      leaks.add("check-config (valid, env)", check.output);
      unlink(role.c_str());
    }
    // 3. processor: SCRAM password from ${ENV} via --set, MongoDB password from a file.
    {
      auto sets = kafka_sasl_sets(s, scram_file.path);
      sets.erase(sets.end() - 1);  // no password file: the environment instead
      sets.push_back("kafka.sasl_password=${TELEMETRYD_ITEST_SCRAM_PASSWORD}");
      for (auto& m : mongo_tls_sets(s, mongo_file.path)) sets.push_back(m);
      sets.push_back("mongodb.database=" + database);
      run_and_scrape(leaks, "processor (env, file)", processor_argv(prefix, with_debug(sets)),
                     {kafka_ready, mongo_ready, "\"name\":\"processor\",\"ready\":true"}, 200, env);
    }
    // 4. processor: MongoDB password from ${ENV}, and credentials inside mongodb.uri.
    {
      auto sets = kafka_sasl_sets(s, scram_file.path);
      for (auto& m : mongo_tls_sets(s, mongo_file.path)) {
        if (m.rfind("mongodb.password_file=", 0) != 0) sets.push_back(m);
      }
      sets.push_back("mongodb.password=${TELEMETRYD_ITEST_MONGO_PASSWORD}");
      sets.push_back("mongodb.database=" + database);
      run_and_scrape(leaks, "processor (mongo env)", processor_argv(prefix, with_debug(sets)),
                     {kafka_ready, mongo_ready}, 200, env);

      std::vector<std::string> uri_sets = kafka_sasl_sets(s, scram_file.path);
      uri_sets.insert(uri_sets.end(),
                      {"mongodb.uri=${TELEMETRYD_ITEST_MONGO_URI}", "mongodb.tls=true",
                       "mongodb.tls_ca_file=" + s.cert("ca.pem"),
                       "mongodb.tls_certificate_key_file=" + s.cert("client-combined.pem"),
                       "mongodb.database=" + database});
      run_and_scrape(leaks, "processor (uri)", processor_argv(prefix, with_debug(uri_sets)),
                     {kafka_ready, mongo_ready}, 200, env);
    }
    // 5. failures: a wrong SCRAM password from a file, a wrong MongoDB password from ${ENV}.
    {
      auto sets = kafka_sasl_sets(s, wrong_scram_file.path);
      for (auto& m : mongo_tls_sets(s, mongo_file.path)) {
        if (m.rfind("mongodb.password_file=", 0) != 0) sets.push_back(m);
      }
      sets.push_back("mongodb.password=${TELEMETRYD_ITEST_WRONG_MONGO_PASSWORD}");
      run_and_scrape(leaks, "processor (wrong passwords)", processor_argv(prefix, with_debug(sets)),
                     {"Authentication failed during authentication", "Authentication failed."}, 503,
                     env);
    }
    // Debug level and every librdkafka debug context: thousands of lines.
    leaks.check(2000);
    drop_database(s.mongo_counting_uri(), database);
  }

  SECTION("broken role files holding secrets") {
    const std::string secret_a = s.scram_password;
    const std::string secret_b = s.mongo_password;
    const std::vector<std::string> files{
        // problems around secrets: unknown keys, rules, a bad URI, a secret in extra_properties
        write_role_file("role: processor\n"
                        "kafka:\n"
                        "  security_protocol: ssl\n"
                        "  sasl_password: \"" +
                        secret_a +
                        "\"\n"
                        "  sasl_pasword: \"" +
                        secret_a +
                        "\"\n"
                        "  extra_properties: [\"sasl.password=" +
                        secret_a + "\", \"" + secret_a +
                        "\"]\n"
                        "mongodb:\n"
                        "  uri: \"notauri://u:" +
                        secret_b +
                        "@h\"\n"
                        "  password: \"" +
                        secret_b +
                        "\"\n"
                        // a non-secret key whose value comes from the environment
                        "  check_interval_ms: ${TELEMETRYD_ITEST_MONGO_PASSWORD}\n"),
        // a rule over secrets that are valid on their own
        write_role_file("role: processor\n"
                        "kafka:\n"
                        "  sasl_password: \"" +
                        secret_a +
                        "\"\n"
                        "mongodb:\n"
                        "  uri: \"mongodb://u:" +
                        percent_encoded(secret_b) +
                        "@h/\"\n"
                        "  username: u\n"
                        "  password: \"" +
                        secret_b + "\"\n"),
        // YAML that does not parse, with a secret near the error
        write_role_file("role: processor\nmongodb: {uri: \"mongodb://u:" +
                        percent_encoded(secret_b) + "@h/\", password: \"" + secret_b +
                        "\"\nkafka:\n  sasl_password: \"" + secret_a + "\"\n"),
        write_role_file("role: processor\nkafka:\n  sasl_password: " + secret_a +
                        "\n   brokers: " + secret_a + "\n"),
        // a type error on a secret key
        write_role_file("role: processor\nmongodb:\n  password: [\"" + secret_b + "\"]\n"),
    };
    std::string problems;  // the reports themselves, to prove the files were really refused
    for (const auto& file : files) {
      const auto check = run_command({telemetryd_bin(), "check-config", file});
      CHECK(check.status == 78);
      problems += check.output;
      leaks.add("check-config " + file, check.output);
      ChildProcess run(
          {telemetryd_bin(), "run", "--config", file, "--set", "daemon.log_level=debug"});
      CHECK(run.wait_exit(15s) == 78);
      leaks.add_output("run --config " + file, run);
      unlink(file.c_str());
    }
    // Bad --set overrides that carry secrets.
    ChildProcess bad_set({telemetryd_bin(), "run", "--role", "processor", "--set",
                          "kafka.sasl_pasword=" + secret_a, "--set",
                          "mongodb.password=" + secret_b});
    CHECK(bad_set.wait_exit(15s) == 78);
    leaks.add_output("run --set", bad_set);
    ChildProcess no_key({telemetryd_bin(), "run", "--role", "processor", "--set", secret_a});
    CHECK(no_key.wait_exit(15s) == 78);
    CHECK(no_key.stdout_text().find("override is not key.path=value") != std::string::npos);
    leaks.add_output("run --set without a key", no_key);
    INFO(problems);
    for (const char* expected :
         {"kafka.sasl_pasword: unknown key",
          "kafka.extra_properties: 'sasl.password' holds a secret",
          "mongodb.uri: invalid MongoDB URI", "mongodb.check_interval_ms: expected an integer",
          "mongodb.username: mongodb.uri has credentials too",
          "YAML syntax error: end of map flow not found", "YAML syntax error: illegal map value",
          "mongodb.password: expected a single value"}) {
      CHECK(problems.find(expected) != std::string::npos);
    }
    leaks.check(10);
  }
}

TEST_CASE("no ingest token or S3 secret key appears, in success or failure", "[secrets][itest]") {
  const Services s;
  const std::string token = "ingest-secret-token-" + std::to_string(getpid()) + "-zq";
  const std::string wrong_token = "ingest-wrong-token-" + std::to_string(getpid()) + "-zq";
  const std::string s3_secret = required_env("TELEMETRYD_TEST_S3_SECRET_KEY");
  const std::string wrong_s3_secret = "wrong-s3-secret-" + std::to_string(getpid()) + "-zq";
  Leaks leaks({token, wrong_token, s3_secret, wrong_s3_secret});
  const SecretFile tokens("edge " + token + "\n");
  const SecretFile s3_secret_file(s3_secret);
  const std::string topic = unique_topic("secrets-edge");
  const std::string database = "secretsedge" + std::to_string(getpid());

  // The ingest API: one request with the right token, one with a wrong one.
  {
    std::vector<std::string> argv{telemetryd_bin(), "run", "--role", "processor"};
    append(argv, with_debug({"http.listen=127.0.0.1:0", "kafka.brokers=" + s.kafka_plain,
                             "mongodb.uri=" + s.mongo_plain_uri, "ingest.enabled=true",
                             "ingest.tokens_file=" + tokens.path,
                             "processor.query.tokens_file=" + tokens.path,
                             "ingest.topics.gpu_metadata=" + topic,
                             "processor.topics.gpu_metrics=" + topic + "-unused-gpu",
                             "processor.topics.token_usage=" + topic + "-unused-usage"}));
    ChildProcess ingest(argv);
    const int port = http_port(ingest);
    REQUIRE(port > 0);
    const std::string body =
        R"({"gpu_uuid":"GPU-s","host":"h","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})";
    const auto ok = http_request("127.0.0.1", port, "POST", "/metadata", body, "application/json",
                                 {{"Authorization", "Bearer " + token}});
    CHECK(ok.status == 202);
    const auto refused =
        http_request("127.0.0.1", port, "POST", "/metadata", body, "application/json",
                     {{"Authorization", "Bearer " + wrong_token}});
    std::string lifecycle;  // the daemon's own lines, for a failure's message
    {
      std::istringstream lines(ingest.stdout_text());
      for (std::string line; std::getline(lines, line);) {
        if (line.find("\"stage\":\"kafka\"") == std::string::npos) lifecycle += line + "\n";
      }
    }
    INFO(refused.error << "\n" << lifecycle.substr(0, 4000));
    CHECK(refused.status == 401);
    leaks.add("ingest 202 body", ok.body);
    leaks.add("ingest 401 body", refused.body);
    leaks.scrape("ingest", port);
    ingest.send_signal(SIGTERM);
    CHECK(ingest.wait_exit(20s) == 0);
    leaks.add_output("ingest", ingest);
  }

  // The worker archiving to S3: the secret key from a file, then a wrong one from the environment.
  const auto worker_argv = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{telemetryd_bin(), "run", "--role", "worker"};
    std::vector<std::string> sets{
        "http.listen=127.0.0.1:0",
        "kafka.brokers=" + s.kafka_plain,
        "mongodb.uri=" + s.mongo_plain_uri,
        "mongodb.database=" + database,
        "worker.topic=" + topic,
        "worker.group_id=" + unique_topic("secrets-edge-group"),
        "archive.enabled=true",
        "archive.store=s3",
        "archive.max_age_ms=500",
        "archive.prefix=secrets-" + std::to_string(getpid()) + "/",
        "archive.s3.endpoint=" + required_env("TELEMETRYD_TEST_S3_ENDPOINT"),
        "archive.s3.bucket=" + required_env("TELEMETRYD_TEST_S3_BUCKET"),
        "archive.s3.access_key_id=" + required_env("TELEMETRYD_TEST_S3_ACCESS_KEY")};
    sets.insert(sets.end(), extra.begin(), extra.end());
    append(argv, with_debug(sets));
    return argv;
  };
  run_and_scrape(leaks, "worker (S3 key from a file)",
                 worker_argv({"archive.s3.secret_access_key_file=" + s3_secret_file.path}),
                 {"\"status\":\"ready\""}, 200);
  run_and_scrape(leaks, "worker (wrong S3 key from the environment)", worker_argv({}),
                 {"SignatureDoesNotMatch"}, 503, {{"AWS_SECRET_ACCESS_KEY", wrong_s3_secret}});
  leaks.check(200);
  drop_database(s.mongo_plain_uri, database);
}
