#include "influx/influx_config.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "app/roles.hpp"
#include "support/role_file.hpp"
#include "telemetryd/sink.hpp"

using namespace telemetryd;

using test_support::problems_of;
using test_support::TempFile;

TEST_CASE("the processor's sinks default to mongodb and need no influxdb section",
          "[influx][config]") {
  const Config config = load_config({.role = "processor"}, app::role_catalog());
  CHECK(SinkRegistry::in_use(config) == std::vector<std::string>{"mongodb"});
  CHECK_FALSE(SinkRegistry::uses(config, "influxdb"));
  CHECK_FALSE(config.has("influxdb.url"));
}

TEST_CASE("store influxdb without a url names the key and the line that asked for it",
          "[influx][config]") {
  TempFile file("role: processor\nprocessor:\n  store: influxdb\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == file.path +
                           ":3:10: influxdb.url: missing: required when processor.store writes "
                           "to InfluxDB (http://127.0.0.1:8086)");
}

TEST_CASE("api v2 needs org, bucket and a token; secrets are never echoed", "[influx][config]") {
  TempFile file(
      "role: processor\nprocessor:\n  store: both\ninfluxdb:\n  url: http://127.0.0.1:8086\n"
      "  api: v2\n  token: hunter2-token\n  token_file: /etc/x\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].find(":6:8: influxdb.org: missing: required with api: v2") !=
        std::string::npos);
  CHECK(problems[1].find("influxdb.bucket: missing") != std::string::npos);
  CHECK(problems[2].find(":8:15: influxdb.token_file: token and token_file are both set") !=
        std::string::npos);
  for (const auto& p : problems) CHECK(p.find("hunter2") == std::string::npos);
}

TEST_CASE("an invalid influxdb.url is reported at its line, and a valid config builds settings",
          "[influx][config]") {
  TempFile bad("role: processor\ninfluxdb:\n  url: influx:8086\n");
  const auto problems = problems_of({.file = bad.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find(":3:8: influxdb.url: invalid InfluxDB URL: must start with http://") !=
        std::string::npos);

  TempFile token("tok-123\n");
  TempFile good(
      "role: processor\nprocessor:\n  store: influxdb\ninfluxdb:\n"
      "  url: https://influx.example:8086\n  api: v2\n  org: acme\n  bucket: gpu\n"
      "  token_file: " +
      token.path + "\n  precision: ms\n  gzip: true\n  batch_size: 1000\n");
  const Config config = load_config({.file = good.path}, app::role_catalog());
  CHECK(SinkRegistry::uses(config, "influxdb"));
  const influx::StoreSettings s = influx::store_settings_from(config);
  CHECK(s.writer.api == influx::Api::kV2);
  CHECK(s.writer.token == "tok-123");  // the file's trailing newline is not part of it
  CHECK(s.writer.precision == influx::Precision::kMilliseconds);
  CHECK(s.writer.gzip);
  CHECK(s.batch_size == 1000);
}

TEST_CASE("an unknown store is refused with the choices", "[influx][config]") {
  const auto problems = problems_of({.role = "processor", .overrides = {"processor.store=influx"}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("processor.store: value 'influx' is not allowed (one of mongodb, "
                         "influxdb, both; did you mean 'influxdb'?)") != std::string::npos);
}
