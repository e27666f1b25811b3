// processor.sinks: which stores the processor writes to, checked by the sink registry with
// located problems, and the deprecated processor.store still honoured.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "app/roles.hpp"
#include "support/role_file.hpp"
#include "telemetryd/sink.hpp"

using namespace telemetryd;

using test_support::problems_of;
using test_support::TempFile;

TEST_CASE("the registry holds the processor's sinks, each with its section", "[sinks]") {
  const auto names = SinkRegistry::instance().names();
  for (const char* name : {"influxdb", "mongodb", "postgresql"}) {
    const SinkInfo* info = SinkRegistry::instance().find(name);
    REQUIRE(info != nullptr);
    CHECK(info->section->name == name);
    CHECK(info->create);
    CHECK(info->probe);
  }
  CHECK(SinkRegistry::instance().find("mongo") == nullptr);
}

TEST_CASE("processor.sinks chooses the stores in order; other roles use none", "[sinks]") {
  TempFile file(
      "role: processor\nprocessor:\n  sinks: [influxdb, mongodb]\ninfluxdb:\n"
      "  url: http://127.0.0.1:8086\n");
  const Config config = load_config({.file = file.path}, app::role_catalog());
  CHECK(SinkRegistry::in_use(config) == std::vector<std::string>{"influxdb", "mongodb"});
  CHECK(SinkRegistry::uses(config, "mongodb"));
  CHECK(SinkRegistry::chosen_by(config) == "processor.sinks");

  const Config worker = load_config({.role = "worker"}, app::role_catalog());
  CHECK(SinkRegistry::in_use(worker).empty());
}

TEST_CASE("the deprecated processor.store still chooses, and both keys together are refused",
          "[sinks]") {
  const Config both = load_config(
      {.role = "processor", .overrides = {"processor.store=both", "influxdb.url=http://h:1"}},
      app::role_catalog());
  CHECK(SinkRegistry::in_use(both) == std::vector<std::string>{"mongodb", "influxdb"});
  CHECK(SinkRegistry::chosen_by(both) == "processor.store");

  TempFile file("role: processor\nprocessor:\n  sinks: [mongodb]\n  store: mongodb\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == file.path +
                           ":4:10: processor.store: is deprecated and processor.sinks is set too "
                           "(remove processor.store; processor.sinks decides)");
}

TEST_CASE("an unknown or repeated sink is refused at its line, with a guess", "[sinks]") {
  TempFile unknown("role: processor\nprocessor:\n  sinks: [mongdb]\n");
  auto problems = problems_of({.file = unknown.path});
  REQUIRE(problems.size() == 1);
  CHECK(
      problems[0].find(":3:11: processor.sinks: unknown sink (did you mean 'mongodb'?); known: ") !=
      std::string::npos);
  CHECK(problems[0].find("influxdb") != std::string::npos);

  TempFile twice("role: processor\nprocessor:\n  sinks: [mongodb, mongodb]\n");
  problems = problems_of({.file = twice.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("processor.sinks: names mongodb twice") != std::string::npos);

  TempFile none("role: processor\nprocessor:\n  sinks: []\n");
  problems = problems_of({.file = none.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("processor.sinks: names no sink") != std::string::npos);
}

TEST_CASE("a sink's own checks run only when it is in use, located at processor.sinks", "[sinks]") {
  // influxdb.url is required by the influxdb sink alone.
  CHECK(problems_of({.role = "processor"}).empty());
  TempFile file("role: processor\nprocessor:\n  sinks: [mongodb, influxdb]\n");
  const auto problems = problems_of({.file = file.path});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == file.path +
                           ":3:10: influxdb.url: missing: required when processor.sinks writes to "
                           "InfluxDB (http://127.0.0.1:8086)");
}
