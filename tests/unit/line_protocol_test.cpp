#include "influx/line_protocol.hpp"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::influx;
using telemetryd::events::DecodedEvent;

namespace {

std::vector<events::DecodedEvent> valid_fixtures() {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/events/valid.ndjson");
  REQUIRE(in);
  simdjson::dom::parser parser;
  std::vector<events::DecodedEvent> events;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto decoded = telemetryd::events::decode_event(line, parser);
    REQUIRE(std::holds_alternative<events::DecodedEvent>(decoded));
    events.push_back(std::get<events::DecodedEvent>(decoded));
  }
  REQUIRE(events.size() == 8);
  return events;
}

std::string encode(const events::DecodedEvent& e, Precision precision = Precision::kNanoseconds) {
  simdjson::dom::parser parser;
  std::string out;
  const std::string error = encode_point(out, {&e}, precision, parser);
  INFO(error);
  REQUIRE(error.empty());
  REQUIRE(!out.empty());
  REQUIRE(out.back() == '\n');
  return out;
}

}  // namespace

TEST_CASE("measurement, keys and string fields are escaped as line protocol requires", "[influx]") {
  std::string out;
  append_measurement(out, "gpu metrics,v1=x");
  CHECK(out == "gpu\\ metrics\\,v1=x");  // '=' needs no escape in a measurement
  out.clear();
  append_key(out, "a b,c=d");
  CHECK(out == "a\\ b\\,c\\=d");
  out.clear();
  append_string_field(out, R"(say "hi" \o/)");
  CHECK(out == R"("say \"hi\" \\o/")");
  out.clear();
  append_string_field(out, "two\nlines");  // InfluxDB keeps newlines inside quoted strings
  CHECK(out == "\"two\nlines\"");
}

TEST_CASE("a full gpu.metrics.v1 fixture becomes one point with contract-typed fields",
          "[influx]") {
  const auto events = valid_fixtures();
  const events::DecodedEvent& e = events[1];  // the every-field nvml sample
  const std::string line = encode(e);
  CHECK(
      line.starts_with("gpu_metrics,collector=nvml,gpu_uuid=GPU-5f3c9a2e-8b1d-4c6e-9f0a-"
                       "1b2c3d4e5f60,host=gpu-node-01,model_name=NVIDIA\\ H100\\ 80GB\\ HBM3 "));
  CHECK(line.find("event_id=\"01a20320-b970-73ce-989d-9576a05f1119\"") != std::string::npos);
  CHECK(line.find("source=\"//telemetryd/gpu-node-01/nvml\"") != std::string::npos);
  CHECK(line.find(",gpu_index=0i,") != std::string::npos);
  CHECK(line.find(",memory_total_bytes=85520809984i,") != std::string::npos);
  CHECK(line.find(",energy_consumed_mj=918273645i,") != std::string::npos);
  // 42 in JSON, but the contract says number: a float, so a later 42.5 cannot conflict.
  CHECK(line.find(",utilization_memory_percent=42,") != std::string::npos);
  CHECK(line.find(",utilization_gpu_percent=87.5,") != std::string::npos);
  CHECK(line.find(",power_draw_watts=512.3,") != std::string::npos);
  CHECK(line.find(",ecc_mode_enabled=true,") != std::string::npos);
  CHECK(line.find(",ecc_aggregate_corrected=3i") != std::string::npos);
  CHECK(line.find(",process_count=2i,process_memory_bytes=60129542144i ") != std::string::npos);
  // Issue 12's scalars, with the contract's types; nested objects flattened as <object>_<field>.
  for (const char* field : {",memory_free_bytes=23672586240i,",
                            ",memory_reserved_bytes=644939776i,",
                            ",pstate=0i,",
                            ",clock_event_reasons_mask=4i,",
                            ",temperature_memory_celsius=71,",
                            ",pcie_tx_bytes_per_second=1238016i,",
                            ",pcie_rx_bytes_per_second=563200i,",
                            ",pcie_link_gen=5i,",
                            ",pcie_link_width=16i,",
                            ",pcie_link_gen_max=5i,",
                            ",pcie_link_width_max=16i,",
                            ",remapped_rows_correctable=2i,",
                            ",remapped_rows_uncorrectable=0i,",
                            ",remapped_rows_pending=false,",
                            ",remapped_rows_failure=false,",
                            ",xid_count=1i,",
                            ",xid_last=79i,",
                            ",activity_sm_active_percent=82.25,",
                            ",activity_sm_occupancy_percent=41.5,",
                            ",activity_tensor_active_percent=63.75,",
                            ",activity_dram_active_percent=55.5,",
                            ",activity_fp16_active_percent=1.5,",
                            ",activity_fp32_active_percent=4.25,",
                            ",activity_fp64_active_percent=0,"}) {
    INFO(field);
    CHECK(line.find(field) != std::string::npos);
  }
  // Lists (reason names, MIG instances, per-process attribution) are not flattened.
  CHECK(line.find("clock_event_reasons=") == std::string::npos);
  CHECK(line.find("mig") == std::string::npos);
  CHECK(line.find("pod_uid") == std::string::npos);
  // 2026-11-22T12:00:06.000Z in ns, plus the id's sub-millisecond offset.
  const std::string ts = std::to_string(1795348806000LL * 1000000 + id_offset_ns(e.id));
  CHECK(line.ends_with(" " + ts + "\n"));
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);
}

TEST_CASE("absent metrics are omitted, an empty process list is a measured zero", "[influx]") {
  const auto events = valid_fixtures();
  const std::string minimal = encode(events[0]);
  CHECK(minimal.find("utilization") == std::string::npos);
  CHECK(minimal.find("process_count") == std::string::npos);
  const std::string dcgm = encode(events[2]);  // processes: [], temperature -5.5, unknown field
  CHECK(dcgm.find(",process_count=0i") != std::string::npos);
  CHECK(dcgm.find("process_memory_bytes") == std::string::npos);
  CHECK(dcgm.find(",temperature_gpu_celsius=-5.5") != std::string::npos);
  CHECK(dcgm.find(",utilization_gpu_percent=0,") != std::string::npos);
  CHECK(dcgm.find("fan_speed") == std::string::npos);
}

TEST_CASE("token.usage.v1: identity in tags, counts as integers, labels as fields, no cost",
          "[influx]") {
  const auto events = valid_fixtures();
  const std::string line = encode(events[4]);
  CHECK(
      line.starts_with("token_usage,deployment=llama70b-prod,host=gpu-node-01,model=llama-3.1-"
                       "70b-instruct,provider=vllm,status=success,tenant_id=acme "));
  CHECK(line.find(",input_tokens=1200i,output_tokens=350i,cache_read_tokens=800i,"
                  "reasoning_tokens=120i,total_tokens=1550i") != std::string::npos);
  CHECK(line.find(",duration_ms=2314.5,ttft_ms=182,") != std::string::npos);
  CHECK(line.find(",request_id=\"req-7f3a2c\",user_id=\"u-1842\"") != std::string::npos);
  CHECK(line.find(",labels=\"team:search,env:prod\"") != std::string::npos);
  CHECK(line.find(",gpu_count=2i,gpu_uuids=\"GPU-5f3c9a2e") != std::string::npos);
  // Costs are priced later from a queryable store (docs/cost.md), never written inline.
  CHECK(line.find("cost_") == std::string::npos);
  const std::string zero = encode(events[3]);
  CHECK(zero.find(",input_tokens=0i,output_tokens=0i") != std::string::npos);
}

TEST_CASE(
    "distinct events of one series in one millisecond get distinct timestamps; a "
    "redelivery the same one",
    "[influx]") {
  events::DecodedEvent a = valid_fixtures()[3];
  events::DecodedEvent b = a;
  b.id = "01a20320-c308-70ff-98c0-6effa0c5154f";  // another event, same series and millisecond
  CHECK(point_time(a, Precision::kNanoseconds) != point_time(b, Precision::kNanoseconds));
  CHECK(point_time(a, Precision::kNanoseconds) / 1000000 ==
        point_time(b, Precision::kNanoseconds) / 1000000);
  CHECK(point_time(a, Precision::kNanoseconds) == point_time(a, Precision::kNanoseconds));
  CHECK(encode(a) == encode(a));  // a retry rewrites the very same point
  CHECK(point_time(a, Precision::kMilliseconds) == 1795348808456LL);
  // Sub-millisecond digits of the event time do not leak out of its millisecond.
  a.time += std::chrono::microseconds(999);
  CHECK(point_time(a, Precision::kMilliseconds) == 1795348808456LL);
  // The offsets of many ids spread out (a weak hash would bunch them).
  std::set<std::int64_t> offsets;
  for (int i = 0; i < 1000; ++i)
    offsets.insert(id_offset_ns("01a20320-c308-70ff-98c0-" + std::to_string(100000000000 + i)));
  CHECK(offsets.size() >= 999);
}

TEST_CASE("tag values InfluxDB cannot carry are refused, not mangled", "[influx]") {
  events::DecodedEvent e = valid_fixtures()[0];
  simdjson::dom::parser parser;
  std::string out;
  e.host = "node\n01";
  CHECK(encode_point(out, {&e}, Precision::kNanoseconds, parser) ==
        "tag host contains a line break");
  e.host = "node\\";
  CHECK(encode_point(out, {&e}, Precision::kNanoseconds, parser) ==
        "tag host ends with a backslash");
  CHECK(out.empty());
  e.host = "rack 1,row=2";
  CHECK(encode_point(out, {&e}, Precision::kNanoseconds, parser).empty());
  CHECK(out.find(",host=rack\\ 1\\,row\\=2,") != std::string::npos);
}
