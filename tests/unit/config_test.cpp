#include <unistd.h>
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "app/roles.hpp"
#include "telemetryd/config.hpp"

using namespace telemetryd;

namespace {

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/telemetryd-config-XXXXXX";
    const int fd = mkstemp(name);
    close(fd);
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

}  // namespace

TEST_CASE("defaults fill every declared key of the role", "[config]") {
  const Config config = load_config({.role = "processor"}, app::role_catalog());
  CHECK(config.role() == "processor");
  CHECK(config.str("http.listen") == "0.0.0.0:8000");
  CHECK(config.integer("http.body_limit_bytes") == 1048576);
  CHECK(config.str("kafka.brokers") == "127.0.0.1:9092");
  CHECK(config.str("mongodb.database") == "telemetry");
  CHECK(config.str("daemon.log_level") == "info");
  // A producer has no database section at all.
  const Config producer = load_config({.role = "producer"}, app::role_catalog());
  CHECK_FALSE(producer.has("mongodb.uri"));
}

TEST_CASE("values from the file keep their types", "[config]") {
  TempFile file("role: processor\nhttp:\n  listen: 127.0.0.1:9000\n  read_timeout_ms: 2500\n");
  const Config config = load_config({.file = file.path}, app::role_catalog());
  CHECK(config.str("http.listen") == "127.0.0.1:9000");
  CHECK(config.integer("http.read_timeout_ms") == 2500);
  CHECK(config.source() == file.path);
}

TEST_CASE("--set overrides the file and keeps the YAML type", "[config]") {
  TempFile file("role: producer\nhttp:\n  listen: 127.0.0.1:9000\n");
  const Config config =
      load_config({.file = file.path,
                   .overrides = {"http.listen=127.0.0.1:9100", "kafka.check_interval_ms=250"}},
                  app::role_catalog());
  CHECK(config.str("http.listen") == "127.0.0.1:9100");
  CHECK(config.integer("kafka.check_interval_ms") == 250);
}

TEST_CASE("a bad --set is reported against --set with its index", "[config]") {
  const auto problems = problems_of({.role = "producer", .overrides = {"http.listen=x", "oops"}});
  REQUIRE(problems.size() == 1);  // the malformed override stops before validation
  CHECK(problems[0].file == "--set");
  CHECK(problems[0].line == 2);
  const auto invalid = problems_of({.role = "producer", .overrides = {"http.listen=nope"}});
  REQUIRE(invalid.size() == 1);
  CHECK(invalid[0].to_string().rfind("--set:1:1: http.listen: expected host:port", 0) == 0);
}

TEST_CASE("${VAR} and ${VAR:-default} are interpolated", "[config]") {
  setenv("TELEMETRYD_TEST_BROKERS", "10.1.2.3:9092", 1);
  unsetenv("TELEMETRYD_TEST_UNSET");
  TempFile file(
      "role: processor\nkafka:\n  brokers: ${TELEMETRYD_TEST_BROKERS}\n"
      "mongodb:\n  database: ${TELEMETRYD_TEST_UNSET:-fallback}\n"
      "  uri: mongodb://127.0.0.1:27017/?appname=$$x\n");
  const Config config = load_config({.file = file.path}, app::role_catalog());
  CHECK(config.str("kafka.brokers") == "10.1.2.3:9092");
  CHECK(config.str("mongodb.database") == "fallback");
  CHECK(config.str("mongodb.uri") == "mongodb://127.0.0.1:27017/?appname=$x");
}

TEST_CASE("interpolate_env reports broken syntax", "[config]") {
  std::string error;
  CHECK_FALSE(interpolate_env("${UNTERMINATED", error));
  CHECK(error == "unterminated ${ in value");
  CHECK_FALSE(interpolate_env("${}", error));
  for (const char* bad : {"${1ABC}", "${A-B}", "${A=B}", "${A B}", "${\xff}"}) {
    CHECK_FALSE(interpolate_env(bad, error));
    CHECK(error.find("invalid variable name") != std::string::npos);
  }
  CHECK(interpolate_env("price $5", error) == std::optional<std::string>("price $5"));
}

TEST_CASE("every problem is reported with line, column and key path", "[config]") {
  TempFile file(
      "role: processor\n"
      "http:\n"
      "  listne: 127.0.0.1:8000\n"
      "  read_timeout_ms: soon\n"
      "  body_limit_bytes: -1\n"
      "daemon:\n"
      "  log_level: verbose\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 4);
  auto find = [&](const std::string& path) {
    const auto it = std::find_if(problems.begin(), problems.end(),
                                 [&](const ConfigProblem& p) { return p.path == path; });
    REQUIRE(it != problems.end());
    return *it;
  };
  CHECK(find("http.listne").to_string() ==
        file.path + ":3:3: http.listne: unknown key (did you mean 'listen'?)");
  CHECK(find("http.read_timeout_ms").line == 4);
  CHECK(find("http.read_timeout_ms").message == "expected an integer, got 'soon'");
  CHECK(find("http.body_limit_bytes").line == 5);
  CHECK(find("http.body_limit_bytes").message == "value '-1' is out of range");
  CHECK(find("http.body_limit_bytes").hint == "must be >= 0 and <= 268435456");
  CHECK(find("daemon.log_level").line == 7);
  CHECK(find("daemon.log_level").column == 14);
}

TEST_CASE("secrets are never echoed in errors", "[config]") {
  TempFile file("role: processor\nmongodb:\n  uri: \"notauri://hunter2@db\"\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].path == "mongodb.uri");
  CHECK(problems[0].to_string().find("hunter2") == std::string::npos);
}

TEST_CASE("role mismatches and unknown roles are errors", "[config]") {
  TempFile file("role: producer\n");
  auto problems = problems_of({.file = file.path, .role = "processor"});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].line == 1);
  CHECK(problems[0].message == "file is for role 'producer' but --role processor was given");
  TempFile unknown("role: consumer\n");
  problems = problems_of({.file = unknown.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].message == "unknown role 'consumer'");
}

TEST_CASE("closest_match suggests near names only", "[config]") {
  CHECK(closest_match("listne", {"listen", "read_timeout_ms"}) ==
        std::optional<std::string>("listen"));
  CHECK_FALSE(closest_match("zzzzzzzz", {"listen"}));
}

TEST_CASE("host:port checks", "[config]") {
  CHECK_FALSE(check_host_port("127.0.0.1:8000"));
  CHECK_FALSE(check_host_port("[::1]:0"));
  CHECK(check_host_port("localhost"));
  CHECK(check_host_port("host:70000"));
  CHECK_FALSE(check_host_port_list("a:1,b:2"));
  CHECK(check_host_port_list("a:1,b"));
}

TEST_CASE("the processor's two topics must differ", "[config]") {
  TempFile file(
      "role: processor\nprocessor:\n  topics:\n    gpu_metrics: events\n    token_usage: events\n");
  try {
    load_config({.file = file.path}, app::role_catalog());
    FAIL("the same topic twice was accepted");
  } catch (const ConfigError& e) {
    REQUIRE(e.problems().size() == 1);
    CHECK(e.problems()[0].path == "processor.topics.token_usage");
    CHECK(e.problems()[0].line == 5);
  }
}
