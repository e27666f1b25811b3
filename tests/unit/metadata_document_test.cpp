// The worker's transform and the device-state rule, on events decoded by the real decoder from
// the contract's fixtures (tests/fixtures/events/valid.ndjson).

#include "worker/metadata_document.hpp"

#pragma GCC diagnostic ignored "-Wignored-attributes"

#include <catch2/catch.hpp>
#include <fstream>
#include <random>

#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::worker;

namespace {

std::vector<std::string> valid_lines() {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/events/valid.ndjson");
  REQUIRE(in);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  REQUIRE(lines.size() == 8);
  return lines;
}
// The two gpu.metadata.v1 fixtures: minimal (observed_at with +01:00) and every field.
std::string minimal_metadata() {
  return valid_lines()[6];
}
std::string full_metadata() {
  return valid_lines()[7];
}

std::string edit(std::string line, const std::string& from, const std::string& to) {
  const auto pos = line.find(from);
  INFO("edit: " << from);
  REQUIRE(pos != std::string::npos);
  return line.replace(pos, from.size(), to);
}

telemetryd::events::DecodedEvent decode(const std::string& line) {
  simdjson::dom::parser parser;
  telemetryd::events::DecodeResult result = telemetryd::events::decode_event(line, parser);
  const auto* error = std::get_if<telemetryd::events::DecodeError>(&result);
  INFO((error ? error->reason + ": " + error->detail : std::string()));
  REQUIRE(error == nullptr);
  return std::get<telemetryd::events::DecodedEvent>(std::move(result));
}

MetadataDocument transform(const std::string& line) {
  simdjson::dom::parser parser;
  Result<MetadataDocument> doc = transform_metadata(decode(line), parser);
  INFO((doc ? std::string() : doc.error().message));
  REQUIRE(doc.ok());
  return std::move(doc.value());
}

std::string relaxed_json(const bson_t* doc) {
  char* text = bson_as_relaxed_extended_json(doc, nullptr);
  std::string out(text);
  bson_free(text);
  return out;
}

// A field of a BSON document as relaxed extended JSON, or "absent".
std::string field(const bson_t* doc, const char* key) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, doc, key)) return "absent";
  bson_t single;
  bson_init(&single);
  bson_append_iter(&single, key, -1, &iter);
  std::string json = relaxed_json(&single);
  bson_destroy(&single);
  const std::string prefix = std::string("{ \"") + key + "\" : ";
  REQUIRE(json.rfind(prefix, 0) == 0);
  return json.substr(prefix.size(), json.size() - prefix.size() - 2);
}

bson_type_t type_of(const bson_t* doc, const char* key) {
  bson_iter_t iter;
  return bson_iter_init_find(&iter, doc, key) ? bson_iter_type(&iter) : BSON_TYPE_EOD;
}

constexpr const char* kFullId = "01a20320-a3f4-75cb-9982-03c54c96d8e2";

}  // namespace

TEST_CASE("transform: every field of the full fixture, observed_at a date, envelope added",
          "[worker]") {
  const MetadataDocument doc = transform(full_metadata());
  CHECK(doc.event_id == kFullId);
  CHECK(doc.gpu_uuid == "GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60");
  CHECK(doc.version.observed_at_ms == 1795348800500);  // 2026-11-22T12:00:00.500Z
  CHECK(doc.version.event_id == kFullId);

  BsonPtr log = log_document(doc, 1795348801000);
  CHECK(field(log.get(), "_id") == std::string("\"") + kFullId + "\"");
  CHECK(type_of(log.get(), "observed_at") == BSON_TYPE_DATE_TIME);
  CHECK(field(log.get(), "observed_at") == R"({ "$date" : "2026-11-22T12:00:00.500Z" })");
  CHECK(type_of(log.get(), "ts") == BSON_TYPE_DATE_TIME);
  CHECK(field(log.get(), "received_at") == R"({ "$date" : "2026-11-22T12:00:01Z" })");
  CHECK(field(log.get(), "source") == R"("//telemetryd/gpu-node-01/nvml")");
  CHECK(type_of(log.get(), "memory_total_bytes") == BSON_TYPE_INT64);
  CHECK(field(log.get(), "memory_total_bytes") == "85520809984");
  CHECK(field(log.get(), "mig_mode") == "false");
  CHECK(field(log.get(), "pci_bus_id") == R"("00000000:17:00.0")");
  CHECK(field(log.get(), "serial") == R"("1654922006536")");
  CHECK(field(log.get(), "cuda_version") == R"("12.4")");
  CHECK(field(log.get(), "host") == R"("gpu-node-01")");
  CHECK(field(log.get(), "model_name") == R"("NVIDIA H100 80GB HBM3")");

  BsonPtr device = device_document(doc, 1795348801000);
  CHECK(field(device.get(), "_id") == R"("GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60")");
  CHECK(field(device.get(), "event_id") == std::string("\"") + kFullId + "\"");
  CHECK(field(device.get(), "updated_at") == R"({ "$date" : "2026-11-22T12:00:01Z" })");
  CHECK(field(device.get(), "observed_at") == R"({ "$date" : "2026-11-22T12:00:00.500Z" })");
  CHECK(field(device.get(), "driver_version") == R"("550.54.15")");
}

TEST_CASE("transform: an observed_at with an offset is stored as the same instant in UTC",
          "[worker]") {
  const MetadataDocument doc = transform(minimal_metadata());  // 13:00:00+01:00
  BsonPtr log = log_document(doc, 0);
  CHECK(field(log.get(), "observed_at") == R"({ "$date" : "2026-11-22T12:00:00Z" })");
  CHECK(field(log.get(), "serial") == "absent");  // optional fields stay absent, never null
}

TEST_CASE("transform: nested objects flattened, memory units to bytes, unknown fields kept",
          "[worker]") {
  const std::string line =
      edit(full_metadata(), R"("mig_mode":false)",
           R"("mig_mode":false,"pci":{"domain":0,"link":{"gen":4,"width":16}},)"
           R"("l2_cache_kib":50,"bar1_memory_mib":65536.5,"memory_free_gb":2,)"
           R"("tags":["a","b"],"mig_instances":[{"id":1,"profile":{"slices":2}}],)"
           R"("power_limit_watts":700.5,"ratio":-1)");
  const MetadataDocument doc = transform(line);
  BsonPtr log = log_document(doc, 0);
  const bson_t* d = log.get();
  CHECK(field(d, "pci_domain") == "0");
  CHECK(field(d, "pci_link_gen") == "4");
  CHECK(field(d, "pci_link_width") == "16");
  CHECK(field(d, "pci") == "absent");
  CHECK(field(d, "l2_cache_bytes") == "51200");
  CHECK(field(d, "l2_cache_kib") == "absent");
  CHECK(field(d, "bar1_memory_bytes") == "68720001024");  // 65536.5 MiB
  CHECK(type_of(d, "bar1_memory_bytes") == BSON_TYPE_INT64);
  CHECK(field(d, "memory_free_bytes") == "2000000000");  // SI gigabytes
  CHECK(field(d, "tags") == R"([ "a", "b" ])");
  CHECK(field(d, "mig_instances") == R"([ { "id" : 1, "profile" : { "slices" : 2 } } ])");
  CHECK(field(d, "power_limit_watts") == "700.5");  // not a memory unit: untouched
  CHECK(field(d, "ratio") == "-1");
  CHECK(field(d, "memory_total_bytes") == "85520809984");
}

TEST_CASE("transform: the event's own top-level names win; unstorable names are renamed",
          "[worker]") {
  // pci_bus_id is in the fixture at the top level: the nested pci.bus_id must not replace it.
  // memory_total_bytes is there too: memory_total_mib is kept as it is, not converted over it.
  const std::string line = edit(full_metadata(), R"("mig_mode":false)",
                                R"("mig_mode":false,"pci":{"bus_id":"other"},"memory_total_mib":1,)"
                                R"("_id":"evil","ts":"x","a.b":1,"$where":"y")");
  const MetadataDocument doc = transform(line);
  BsonPtr log = log_document(doc, 0);
  const bson_t* d = log.get();
  CHECK(field(d, "pci_bus_id") == R"("00000000:17:00.0")");
  CHECK(field(d, "memory_total_bytes") == "85520809984");
  CHECK(field(d, "memory_total_mib") == "1");
  CHECK(field(d, "_id") == std::string("\"") + kFullId + "\"");
  CHECK(field(d, "data__id") == R"("evil")");
  CHECK(field(d, "data_ts") == R"("x")");
  CHECK(type_of(d, "ts") == BSON_TYPE_DATE_TIME);
  CHECK(field(d, "a_b") == "1");
  CHECK(field(d, "_where") == R"("y")");
  CHECK(field(d, "$where") == "absent");
}

TEST_CASE("state rule: newer, older, and equal observed_at with the event id as tie-break",
          "[worker]") {
  const std::string base = full_metadata();
  const auto at = [&](const std::string& observed, const std::string& id) {
    return transform(edit(edit(base, R"("observed_at":"2026-11-22T12:00:00.500Z")",
                               R"("observed_at":")" + observed + "\""),
                          kFullId, id))
        .version;
  };
  const DeviceVersion current =
      at("2026-11-22T12:00:00.500Z", "01a20320-a3f4-75cb-9982-03c54c96d8e2");
  SECTION("a later observation replaces the state, whatever its id") {
    const auto later = at("2026-11-22T12:00:00.501Z", "01a20320-0000-7000-8000-000000000000");
    CHECK(is_newer(later, current));
    CHECK_FALSE(is_newer(current, later));
  }
  SECTION("an earlier observation never does, even with a greater id") {
    const auto earlier = at("2026-11-22T12:00:00.499Z", "ffffffff-ffff-7fff-bfff-ffffffffffff");
    CHECK_FALSE(is_newer(earlier, current));
    CHECK(is_newer(current, earlier));
  }
  SECTION("the same instant written with an offset is the same observation time") {
    const auto same = at("2026-11-22T13:00:00.500+01:00", "01a20320-a3f4-75cb-9982-03c54c96d8e3");
    CHECK(same.observed_at_ms == current.observed_at_ms);
    CHECK(is_newer(same, current));  // equal time: the greater id wins
    CHECK_FALSE(is_newer(current, same));
  }
  SECTION("the same event again (a replay) changes nothing") {
    CHECK_FALSE(is_newer(current, current));
  }
}

TEST_CASE("state rule: the order of arrival never changes the winner", "[worker]") {
  // 40 observations of one GPU, several in the same millisecond; folded in many orders with
  // the rule the worker applies, each order must end at the same (time, id) maximum.
  const std::string base = full_metadata();
  std::vector<DeviceVersion> versions;
  for (int i = 0; i < 40; ++i) {
    const std::string observed = "2026-11-22T12:00:0" + std::to_string(i % 4) + ".000Z";
    char id[40];
    std::snprintf(id, sizeof id, "01a20320-a3f4-75cb-9982-%012d", (i * 7919) % 1000);
    versions.push_back(transform(edit(edit(base, R"("observed_at":"2026-11-22T12:00:00.500Z")",
                                           R"("observed_at":")" + observed + "\""),
                                      kFullId, id))
                           .version);
  }
  std::mt19937 rng(3);
  std::string winner;
  for (int round = 0; round < 50; ++round) {
    std::shuffle(versions.begin(), versions.end(), rng);
    DeviceVersion state = versions.front();
    for (const auto& v : versions)
      if (is_newer(v, state)) state = v;
    CHECK(state.observed_at_ms == 1795348803000);  // :03, the latest second
    if (winner.empty()) winner = state.event_id;
    CHECK(state.event_id == winner);
  }
  CHECK(winner == "01a20320-a3f4-75cb-9982-000000000841");  // greatest id observed at :03
}

TEST_CASE("state filter: replaces only an older state, or an equal one with a smaller id",
          "[worker]") {
  const MetadataDocument doc = transform(full_metadata());
  BsonPtr filter = device_filter(doc);
  CHECK(
      relaxed_json(filter.get()) ==
      std::string(R"({ "_id" : "GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60", "$or" : [ )") +
          R"({ "observed_at" : { "$lt" : { "$date" : "2026-11-22T12:00:00.500Z" } } }, )" +
          R"({ "observed_at" : { "$date" : "2026-11-22T12:00:00.500Z" }, "event_id" : { "$lt" : ")" +
          kFullId + R"(" } } ] })");
}
