#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "app/roles.hpp"
#include "events/gpu_metrics.hpp"
#include "sources/fleet_model.hpp"
#include "support/child_process.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/source.hpp"

using namespace telemetryd;
using namespace telemetryd::sources;

namespace {

std::string encode_tick(const FleetTick& tick) {
  std::string out;
  for (const auto& gpu : tick.gpus) out += events::encode_gpu_metrics_data(gpu) + "\n";
  for (const auto& req : tick.requests) out += events::encode_token_usage_data(req) + "\n";
  return out;
}

std::unique_ptr<Source> default_synthetic(std::vector<std::string> overrides = {}) {
  const Config config =
      load_config({.role = "producer", .overrides = std::move(overrides)}, app::role_catalog());
  return SourceRegistry::instance().find("synthetic")->create(config, Topics{});
}

}  // namespace

TEST_CASE("the built-in profiles include the three required GPUs", "[synthetic]") {
  const auto profiles = builtin_gpu_profiles();
  std::set<std::string> names;
  for (const auto& p : profiles) names.insert(p.name);
  CHECK(names.count("RTX 3090") == 1);
  CHECK(names.count("A100 40GB") == 1);
  CHECK(names.count("H100 80GB") == 1);
  for (const auto& p : profiles) {
    CHECK(p.memory_total_bytes > 0);
    CHECK(p.tdp_watts > p.idle_watts);
    CHECK(p.price_per_hour_usd > 0);
  }
}

TEST_CASE("broken profile files are rejected with the reason", "[synthetic]") {
  CHECK_THROWS_WITH(parse_gpu_profiles("{", "p.json"), Catch::StartsWith("p.json: invalid JSON"));
  CHECK_THROWS_WITH(parse_gpu_profiles(R"({"profiles":[]})", "p.json"), "p.json: no profiles");
  CHECK_THROWS_WITH(
      parse_gpu_profiles(
          R"({"profiles":[{"name":"x","model_name":"y","memory_total_bytes":1,"tdp_watts":-1}]})",
          "p.json"),
      Catch::Contains("tdp_watts must not be negative"));
}

TEST_CASE("the same seed gives the same fleet; another seed does not", "[synthetic]") {
  const auto profiles = builtin_gpu_profiles();
  FleetSettings settings;
  FleetModel a(settings, profiles), b(settings, profiles);
  settings.seed = 7;
  FleetModel c(settings, profiles);
  std::string run_a, run_b, run_c;
  for (int i = 0; i < 20; ++i) {
    run_a += encode_tick(a.tick());
    run_b += encode_tick(b.tick());
    run_c += encode_tick(c.tick());
  }
  CHECK(run_a == run_b);
  CHECK(run_a != run_c);
  CHECK(a.gpu_count() == 8);
}

TEST_CASE("token volume follows GPU utilisation", "[synthetic]") {
  auto profiles = builtin_gpu_profiles();
  GpuProfile busy = profiles[0], idle = profiles[0];
  busy.name = "busy";
  busy.typical_utilization_percent = 90;
  idle.name = "idle";
  idle.typical_utilization_percent = 10;
  FleetSettings settings;
  settings.gpu_models = {"busy", "idle"};  // host 01 busy, host 02 idle
  FleetModel model(settings, {busy, idle});
  std::map<std::string, std::int64_t> tokens;
  for (int i = 0; i < 60; ++i) {
    for (const auto& r : model.tick().requests) tokens[*r.host] += r.output_tokens;
  }
  INFO("busy " << tokens["gpu-node-01"] << " idle " << tokens["gpu-node-02"]);
  CHECK(tokens["gpu-node-01"] > 4 * tokens["gpu-node-02"]);
  CHECK(tokens["gpu-node-02"] > 0);
}

TEST_CASE("an unknown GPU model names the known ones", "[synthetic]") {
  FleetSettings settings;
  settings.gpu_models = {"B200"};
  CHECK_THROWS_WITH(FleetModel(settings, builtin_gpu_profiles()),
                    Catch::Contains("no profile named 'B200'") && Catch::Contains("H100 80GB"));
}

TEST_CASE("synthetic events are CloudEvents that pass the JSON Schemas", "[synthetic][schema]") {
  auto source = default_synthetic({"synthetic.hosts=3", "synthetic.gpu_models=RTX 3090"});
  std::vector<Event> events;
  std::string error;
  for (int i = 0; i < 30; ++i) REQUIRE(source->sample(events, error));
  REQUIRE(events.size() > 90);
  const std::string path = "/tmp/telemetryd-synthetic-" + std::to_string(getpid()) + ".ndjson";
  std::ofstream out(path);
  std::set<std::string> ids;
  simdjson::dom::parser parser;
  for (const auto& e : events) {
    out << e.payload << "\n";
    ids.insert(e.id);
    CHECK(e.id.size() == 36);
    CHECK(e.id[14] == '7');  // UUIDv7 version nibble
    simdjson::dom::element doc = parser.parse(e.payload);
    CHECK(std::string_view(doc["id"]) == e.id);
    if (e.topic == kGpuMetricsTopic) {
      CHECK(std::string_view(doc["type"]) == kGpuMetricsType);
      CHECK(std::string_view(doc["data"]["gpu_uuid"]) == e.key);
      // RTX 3090 has no ECC: the field is omitted, never reported as zero.
      CHECK(doc["data"]["ecc"].error() == simdjson::NO_SUCH_FIELD);
    } else {
      CHECK(e.topic == kTokenUsageTopic);
      CHECK(std::string_view(doc["data"]["deployment"]) == e.key);
      CHECK(std::string_view(doc["subject"]) == std::string_view(doc["data"]["tenant_id"]));
    }
  }
  out.close();
  CHECK(ids.size() == events.size());
  const auto result = test_support::run_command(
      {"/usr/bin/python3", test_support::source_root() + "/scripts/validate_events.py", path});
  INFO(result.output.substr(0, 3000));
  CHECK(result.status == 0);
  CHECK(result.output.find("validated: " + std::to_string(events.size()) + " events, 0 invalid") !=
        std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("the event schemas reject the invalid fixtures", "[schema]") {
  const std::string root = test_support::source_root();
  const auto valid =
      test_support::run_command({"/usr/bin/python3", root + "/scripts/validate_events.py",
                                 root + "/tests/fixtures/events/valid.ndjson"});
  CHECK(valid.status == 0);
  const auto invalid =
      test_support::run_command({"/usr/bin/python3", root + "/scripts/validate_events.py",
                                 root + "/tests/fixtures/events/invalid.ndjson"});
  CHECK(invalid.status == 1);
  CHECK(invalid.output.find("24 events, 24 invalid") != std::string::npos);
}
