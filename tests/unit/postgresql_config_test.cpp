// The `postgresql:` section (src/sinks/postgresql_sink.cpp) as the loader validates it: its
// defaults, the choices of sslmode, and the keys that only make sense together. No server.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/sink.hpp"

using namespace telemetryd;

namespace {

std::vector<std::string> problems_of(std::vector<std::string> overrides) {
  std::vector<std::string> out;
  try {
    load_config({.role = "processor", .overrides = std::move(overrides)}, app::role_catalog());
  } catch (const ConfigError& e) {
    for (const auto& p : e.problems()) out.push_back(p.to_string());
  }
  return out;
}

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
  for (const auto& p : problems) {
    if (p.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("processor.sinks: [postgresql] with the section's defaults", "[postgresql][config]") {
  const Config config = load_config(
      {.role = "processor", .overrides = {"processor.sinks=[postgresql]"}}, app::role_catalog());
  CHECK(config.list("processor.sinks") == std::vector<std::string>{"postgresql"});
  CHECK(config.str("postgresql.host") == "127.0.0.1");
  CHECK(config.integer("postgresql.port") == 5432);
  CHECK(config.str("postgresql.database") == "telemetry");
  CHECK(config.str("postgresql.sslmode") == "prefer");
  CHECK(config.integer("postgresql.connect_timeout_ms") == 5000);
  CHECK(config.integer("postgresql.check_interval_ms") == 5000);
}

TEST_CASE("postgresql: sslmode choices, paired keys, one password source", "[postgresql][config]") {
  CHECK(mentions(problems_of({"postgresql.sslmode=verify"}),
                 "postgresql.sslmode: value 'verify' is not allowed"));
  CHECK(mentions(problems_of({"postgresql.port=0"}), "postgresql.port"));
  CHECK(
      mentions(problems_of({"postgresql.sslmode=disable", "postgresql.sslrootcert=/etc/hostname"}),
               "postgresql.sslrootcert"));
  // A secret's value never appears in a problem.
  const auto both =
      problems_of({"postgresql.password=hunter2-secret", "postgresql.password_file=/etc/hostname"});
  CHECK(mentions(both, "postgresql.password_file: set only one of password and password_file"));
  for (const auto& p : both) CHECK(p.find("hunter2-secret") == std::string::npos);
  CHECK(mentions(problems_of({"postgresql.password_file=/nonexistent/pg-password"}),
                 "postgresql.password_file"));
  CHECK(problems_of({"processor.sinks=[postgresql]", "postgresql.sslmode=verify-full"}).empty());
}

TEST_CASE("processor.sinks: [influxdb, postgresql] builds one store that queries PostgreSQL",
          "[postgresql][sinks]") {
  // Building connects to nothing yet: the first prepare() does.
  const Config config = load_config(
      {.role = "processor",
       .overrides = {"processor.sinks=[influxdb, postgresql]", "influxdb.url=http://127.0.0.1:1"}},
      app::role_catalog());
  CHECK(SinkRegistry::in_use(config) == std::vector<std::string>{"influxdb", "postgresql"});
  const auto store = SinkRegistry::build(config);
  REQUIRE(store != nullptr);
  CHECK(store->supports_queries());
  CHECK(store->supports_costs());
  const auto alone = SinkRegistry::build(load_config(
      {.role = "processor", .overrides = {"processor.sinks=[postgresql]"}}, app::role_catalog()));
  CHECK(alone->keeps_latest_view());
  CHECK(alone->supports_costs());
}
