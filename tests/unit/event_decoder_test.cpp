#include "events/event_decoder.hpp"

#include <simdjson.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "support/child_process.hpp"

using namespace telemetryd;
using namespace std::chrono;

namespace {

std::vector<std::string> fixture_lines(const std::string& name) {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/events/" + name);
  REQUIRE(in);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// "ok" for an accepted event, else the reason, so one CHECK compares both outcomes.
std::string outcome(const events::DecodeResult& result) {
  if (const auto* error = std::get_if<events::DecodeError>(&result)) return error->reason;
  return "ok";
}

std::string detail(const events::DecodeResult& result) {
  const auto* error = std::get_if<events::DecodeError>(&result);
  return error == nullptr ? std::string() : error->detail;
}

system_clock::time_point utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms = 0) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
         milliseconds{ms};
}

// Edits a fixture line; fails loudly when the text to replace is not there.
std::string edit(std::string line, const std::string& from, const std::string& to) {
  const auto pos = line.find(from);
  INFO("edit: " << from);
  REQUIRE(pos != std::string::npos);
  return line.replace(pos, from.size(), to);
}

// Valid events to edit into edge cases; read lazily, as the source root comes from meson's env.
struct Fixtures {
  std::string metrics, full_metrics, usage, full_usage, metadata;
};
const Fixtures& fixtures() {
  static const Fixtures loaded = [] {
    const auto lines = fixture_lines("valid.ndjson");
    REQUIRE(lines.size() == 8);
    return Fixtures{lines[0], lines[1], lines[3], lines[4], lines[6]};
  }();
  return loaded;
}

const std::string kTime = R"("time":"2026-11-22T12:00:08.456Z")";
const std::string kTokens = R"("input_tokens":0)";
const std::string kSource = R"("source":"//telemetryd/gpu-node-01/synthetic")";
const std::string kObservedAt = R"("observed_at":"2026-11-22T13:00:00+01:00")";

struct Case {
  const char* name;
  std::string line;
  std::string expected;  // "ok" or a reason
};

// Hand-made events where the decoder and the schemas must agree (checked by both tests below).
std::vector<Case> extra_cases() {
  const Fixtures& f = fixtures();
  return {
      {"not JSON", R"({"specversion":"1.0",)", "invalid_json"},
      {"a JSON array", "[1,2]", "invalid_json"},
      {"a JSON string", R"("event")", "invalid_json"},
      {"duplicate top-level key", edit(f.usage, kSource, kSource + "," + kSource), "invalid_json"},
      {"duplicate key in data", edit(f.usage, kTokens, kTokens + "," + kTokens), "invalid_json"},
      {"1.5 tokens", edit(f.usage, kTokens, R"("input_tokens":1.5)"), "wrong_type"},
      {"5.0 tokens", edit(f.usage, kTokens, R"("input_tokens":5.0)"), "ok"},
      {"1e3 tokens", edit(f.usage, kTokens, R"("input_tokens":1e3)"), "ok"},
      {"boolean tokens", edit(f.usage, kTokens, R"("input_tokens":true)"), "wrong_type"},
      {"null tokens", edit(f.usage, kTokens, R"("input_tokens":null)"), "wrong_type"},
      {"usage not an object", edit(f.usage, R"({"input_tokens":0,"output_tokens":0})", "[]"),
       "wrong_type"},
      {"time with +01:00", edit(f.usage, kTime, R"("time":"2026-11-22T13:00:08.456+01:00")"),
       "bad_envelope"},
      {"time with lowercase z", edit(f.usage, kTime, R"("time":"2026-11-22T12:00:08.456z")"),
       "bad_envelope"},
      {"time with empty fraction", edit(f.usage, kTime, R"("time":"2026-11-22T12:00:08.Z")"),
       "bad_envelope"},
      {"time then newline", edit(f.usage, kTime, R"("time":"2026-11-22T12:00:08.456Z\n")"),
       "bad_envelope"},
      {"time with 9 fraction digits",
       edit(f.usage, kTime, R"("time":"2026-11-22T12:00:08.123456789Z")"), "ok"},
      {"time on a leap second", edit(f.usage, kTime, R"("time":"2026-12-31T23:59:60Z")"), "ok"},
      {"time missing", edit(f.usage, kTime + ",", ""), "bad_envelope"},
      {"type missing", edit(f.usage, R"("type":"io.telemetryd.token.usage.v1",)", ""),
       "bad_envelope"},
      {"type not a string", edit(f.usage, R"("io.telemetryd.token.usage.v1")", "7"),
       "bad_envelope"},
      {"specversion a number", edit(f.usage, R"("1.0")", "1.0"), "bad_envelope"},
      {"id variant c", edit(f.usage, "70ff-98c0", "70ff-c8c0"), "bad_envelope"},
      {"source with a space", edit(f.usage, "gpu-node-01", "gpu node-01"), "bad_envelope"},
      {"source with U+00A0", edit(f.usage, "gpu-node-01", R"(gpu\u00a0node-01)"), "bad_envelope"},
      {"source with U+200B (not whitespace)", edit(f.usage, "gpu-node-01", R"(gpu\u200bnode)"),
       "ok"},
      {"empty subject", edit(f.usage, kSource, kSource + R"(,"subject":"")"), "bad_envelope"},
      {"null datacontenttype", edit(f.usage, kSource, kSource + R"(,"datacontenttype":null)"),
       "bad_envelope"},
      {"empty dataschema", edit(f.usage, kSource, kSource + R"(,"dataschema":"")"), "bad_envelope"},
      {"data null",
       edit(f.metadata, f.metadata.substr(f.metadata.find(R"("data":)")), R"("data":null})"),
       "bad_envelope"},
      {"data missing", edit(f.metadata, f.metadata.substr(f.metadata.find(R"(,"data":)")), "}"),
       "bad_envelope"},
      {"observed_at -05:30",
       edit(f.metadata, kObservedAt, R"("observed_at":"2026-11-22T06:30:00-05:30")"), "ok"},
      {"observed_at without zone",
       edit(f.metadata, kObservedAt, R"("observed_at":"2026-11-22T12:00:00")"), "wrong_type"},
      {"observed_at +24:00",
       edit(f.metadata, kObservedAt, R"("observed_at":"2026-11-22T12:00:00+24:00")"), "wrong_type"},
      {"empty host", edit(f.metrics, R"("host":"gpu-node-01")", R"("host":"")"), "out_of_range"},
      {"collector a number", edit(f.metrics, R"("synthetic"})", "5}"), "out_of_range"},
      {"interval_ms 0", edit(f.full_metrics, R"("interval_ms":1000)", R"("interval_ms":0)"),
       "out_of_range"},
      {"utilization 100.0", edit(f.full_metrics, "87.5", "100.0"), "ok"},
      {"utilization 100.5", edit(f.full_metrics, "87.5", "100.5"), "out_of_range"},
      {"negative pid", edit(f.full_metrics, R"("pid":41277)", R"("pid":-1)"), "ok"},
      {"process not an object", edit(f.full_metrics, R"({"pid":41277})", "41277"), "wrong_type"},
      {"empty clock-event reason", edit(f.full_metrics, R"(["sw_power_cap"])", R"([""])"),
       "out_of_range"},
      {"clock-event reasons a string",
       edit(f.full_metrics, R"(["sw_power_cap"])", R"("sw_power_cap")"), "wrong_type"},
      {"pstate 15", edit(f.full_metrics, R"("pstate":0)", R"("pstate":15)"), "ok"},
      {"pstate 1.5", edit(f.full_metrics, R"("pstate":0)", R"("pstate":1.5)"), "wrong_type"},
      {"remapped rows pending 1", edit(f.full_metrics, R"("pending":false)", R"("pending":1)"),
       "wrong_type"},
      {"negative pcie throughput",
       edit(f.full_metrics, R"("tx_bytes_per_second":1238016)", R"("tx_bytes_per_second":-1)"),
       "out_of_range"},
      {"mig instance without activity",
       edit(f.full_metrics, R"({"gpu_instance_id":2,"activity":{}})", R"({"gpu_instance_id":2})"),
       "missing_field"},
      {"process utilisation 101",
       edit(f.full_metrics, R"("utilization_sm_percent":91)", R"("utilization_sm_percent":101)"),
       "out_of_range"},
      {"empty pod uid",
       edit(f.full_metrics, R"("pod_uid":"0d4fb6b4)",
            R"("pod_uid":"",)"
            R"("x":"0d4fb6b4)"),
       "out_of_range"},
      {"ecc not an object", edit(f.full_metrics, R"("ecc":{)", R"("ecc":true,"x":{)"),
       "wrong_type"},
      {"empty gpu_uuids item", edit(f.full_usage, R"("gpu_uuids":[)", R"("gpu_uuids":["",)"),
       "out_of_range"},
      {"empty tags item", edit(f.full_usage, R"("tags":[)", R"("tags":["",)"), "ok"},
      {"tags item a number", edit(f.full_usage, R"("tags":[)", R"("tags":[1,)"), "wrong_type"},
      {"unknown fields everywhere, uint64",
       edit(edit(f.usage, kTokens, kTokens + R"(,"x":{"y":[18446744073709551615]})"), kSource,
            kSource + R"(,"traceparent":"00-ab")"),
       "ok"},
  };
}

// Events the decoder rejects although the schemas accept them, each for a stated reason.
std::vector<Case> known_differences() {
  const Fixtures& f = fixtures();
  return {
      // `format: date-time` is only an annotation; the pattern allows 02-30, but a time_point
      // cannot hold it.
      {"time 2026-02-30", edit(f.usage, kTime, R"("time":"2026-02-30T12:00:08Z")"), "bad_envelope"},
      {"time 2027-02-29", edit(f.usage, kTime, R"("time":"2027-02-29T12:00:08Z")"), "bad_envelope"},
      {"observed_at 2026-04-31",
       edit(f.metadata, kObservedAt, R"("observed_at":"2026-04-31T12:00:00Z")"), "out_of_range"},
      // system_clock (int64 nanoseconds) spans about 1678-2261.
      {"time in 1500", edit(f.usage, kTime, R"("time":"1500-01-01T00:00:00Z")"), "bad_envelope"},
      // DecodedEvent holds tokens as int64.
      {"2^63 tokens", edit(f.usage, kTokens, R"("input_tokens":9223372036854775808)"),
       "out_of_range"},
      {"1e19 tokens", edit(f.usage, kTokens, R"("input_tokens":1e19)"), "out_of_range"},
      // simdjson refuses these; Python's json reads inf, big ints, lone surrogates, a BOM.
      {"1e400 in an unknown field", edit(f.usage, kTokens, kTokens + R"(,"x":1e400)"),
       "invalid_json"},
      {"2^70 in an unknown field",
       edit(f.usage, kTokens, kTokens + R"(,"x":1180591620717411303424)"), "invalid_json"},
      {"lone surrogate", edit(f.usage, R"("acme")", R"("ac\ud800me")"), "invalid_json"},
      {"UTF-8 BOM", "\xef\xbb\xbf" + f.usage, "invalid_json"},
  };
}

// A private directory for the one-line files the schema validator reads.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "event_decoder_XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One line per file, so validate_events.py's exit status is that line's verdict.
bool schema_accepts(const TempDir& dir, const std::string& line) {
  const std::string path = dir.path() + "/event.ndjson";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << line << '\n';
  }
  const auto result = test_support::run_command(
      {"/usr/bin/python3", test_support::source_root() + "/scripts/validate_events.py", path});
  INFO("validate_events.py: " << result.output);
  // 2 is a usage error, e.g. jsonschema missing (scripts/bootstrap.sh installs it).
  REQUIRE((result.status == 0 || result.status == 1));
  return result.status == 0;
}

}  // namespace

TEST_CASE("decode_event accepts every valid fixture and extracts its fields", "[decoder]") {
  const auto lines = fixture_lines("valid.ndjson");
  REQUIRE(lines.size() == 8);
  simdjson::dom::parser parser;
  std::vector<events::DecodedEvent> events;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto result = events::decode_event(lines[i], parser);
    INFO("valid.ndjson line " << i + 1 << ": " << detail(result));
    REQUIRE(outcome(result) == "ok");
    events.push_back(std::get<events::DecodedEvent>(result));
  }
  const events::EventKind kinds[] = {
      events::EventKind::kGpuMetrics,  events::EventKind::kGpuMetrics,
      events::EventKind::kGpuMetrics,  events::EventKind::kTokenUsage,
      events::EventKind::kTokenUsage,  events::EventKind::kTokenUsage,
      events::EventKind::kGpuMetadata, events::EventKind::kGpuMetadata};
  for (std::size_t i = 0; i < events.size(); ++i) CHECK(events[i].kind == kinds[i]);

  const events::DecodedEvent& minimal = events[0];
  CHECK(minimal.id == "01a20320-b603-7f9b-a050-b23a91d93080");
  CHECK(minimal.source == "//telemetryd/gpu-node-01/synthetic");
  CHECK(minimal.type == "io.telemetryd.gpu.metrics.v1");
  CHECK(minimal.subject.empty());
  CHECK(minimal.time == utc(2026, 11, 22, 12, 0, 5, 123));
  CHECK(minimal.gpu_uuid == "GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60");
  CHECK(minimal.host == "gpu-node-01");
  CHECK(minimal.model_name == "NVIDIA H100 80GB HBM3");
  // data is the last member of line 1, which is already minified.
  const std::string data = lines[0].substr(lines[0].find(R"("data":)") + 7);
  CHECK(minimal.data_json == data.substr(0, data.size() - 1));
  CHECK(events[1].data_json.find(R"("utilization_gpu_percent":87.5)") != std::string::npos);
  CHECK(events[2].time == utc(2026, 11, 22, 12, 0, 7));
  CHECK(events[2].subject == "GPU-a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d");

  CHECK(events[3].model == "llama-3.1-70b-instruct");
  CHECK(events[3].deployment.empty());
  CHECK(events[3].input_tokens == 0);
  CHECK(events[3].gpu_uuids.empty());
  const events::DecodedEvent& full = events[4];
  CHECK(full.subject == "acme");
  CHECK(full.tenant_id == "acme");
  CHECK(full.deployment == "llama70b-prod");
  CHECK(full.input_tokens == 1200);
  CHECK(full.output_tokens == 350);
  const std::vector<std::string> uuids = {"GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60",
                                          "GPU-0c7e2f91-3d44-4b8a-a6f2-9e81d05c7b13"};
  CHECK(full.gpu_uuids == uuids);
  CHECK(events[5].model == "gpt-4o-mini");
  CHECK(events[5].input_tokens == 512);

  CHECK(events[6].gpu_uuid == "GPU-a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d");
  CHECK(events[6].model_name == "NVIDIA A100-SXM4-40GB");
  CHECK(events[6].time == utc(2026, 11, 22, 12, 0, 0));
  CHECK(events[7].host == "gpu-node-01");
}

TEST_CASE("decode_event rejects every invalid fixture with the fitting reason", "[decoder]") {
  // Indexed by line; the path is what the "_why" of that line names.
  const std::pair<const char*, const char*> expected[] = {
      {"missing_field", "data.gpu_uuid"},
      {"out_of_range", "data.utilization_gpu_percent"},
      {"out_of_range", "data.usage.output_tokens"},
      {"bad_envelope", "specversion"},
      {"bad_envelope", "id"},
      {"bad_envelope", "time"},
      {"unknown_type", "metrics.v9"},
      {"wrong_type", "data.usage.input_tokens"},
      {"out_of_range", "data.collector"},
      {"missing_field", "data.observed_at"},
      {"missing_field", "data.processes[1].pid"},
      {"wrong_type", "data.energy_consumed_mj"},
      {"wrong_type", "data.mig_mode"},
      {"out_of_range", "data.status"},
      {"out_of_range", "data.ecc.volatile_corrected"},
      {"bad_envelope", "source"},
      {"wrong_type", "data.gpu_uuids"},
      {"bad_envelope", "id"},
      {"bad_envelope", "data"},
      {"missing_field", "data.usage"},
      {"bad_envelope", "datacontenttype"},
      {"out_of_range", "data.activity.sm_active_percent"},
      {"out_of_range", "data.pstate"},
      {"missing_field", "data.xid.count"},
  };
  const auto lines = fixture_lines("invalid.ndjson");
  REQUIRE(lines.size() == std::size(expected));
  simdjson::dom::parser parser;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto result = events::decode_event(lines[i], parser);
    INFO("invalid.ndjson line " << i + 1 << ": " << lines[i].substr(0, 80));
    CHECK(outcome(result) == expected[i].first);
    CHECK_THAT(detail(result), Catch::Contains(expected[i].second));
  }
}

TEST_CASE("decode_event handles hand-made edge cases", "[decoder]") {
  const Fixtures& f = fixtures();
  simdjson::dom::parser parser;
  for (const Case& c : extra_cases()) {
    const auto result = events::decode_event(c.line, parser);
    INFO(c.name << ": " << detail(result));
    CHECK(outcome(result) == c.expected);
  }
  const auto tokens = events::decode_event(edit(f.usage, kTokens, R"("input_tokens":5.0)"), parser);
  REQUIRE(outcome(tokens) == "ok");
  CHECK(std::get<events::DecodedEvent>(tokens).input_tokens == 5);
  CHECK(detail(events::decode_event(edit(f.usage, kTokens, R"("input_tokens":1.5)"), parser)) ==
        "data.usage.input_tokens must be an integer >= 0");
}

TEST_CASE("decode_event pins where it is stricter than the schemas", "[decoder]") {
  simdjson::dom::parser parser;
  for (const Case& c : known_differences()) {
    const auto result = events::decode_event(c.line, parser);
    INFO(c.name << ": " << detail(result));
    CHECK(outcome(result) == c.expected);
  }
}

TEST_CASE("decode_event decodes many and large events", "[decoder]") {
  const Fixtures& f = fixtures();
  simdjson::dom::parser parser;
  // Distinct ids and token counts, spliced into one template so the loop asserts only once.
  const std::string line = edit(edit(f.usage, "6effa0c5154e", "@"), kTokens, R"("input_tokens":@)");
  const std::size_t id_at = line.find('@');
  std::int64_t total = 0;
  int decoded = 0;
  for (int i = 0; i < 5000; ++i) {
    char id[13];
    std::snprintf(id, sizeof id, "%012x", static_cast<unsigned>(i));
    std::string event = line;
    event.replace(event.find('@', id_at + 1), 1, std::to_string(i)).replace(id_at, 1, id);
    if (const auto result = events::decode_event(event, parser); outcome(result) == "ok") {
      ++decoded;
      total += std::get<events::DecodedEvent>(result).input_tokens;
    }
  }
  CHECK(decoded == 5000);
  CHECK(total == 4999 * 5000 / 2);

  // One big event: 5000 unknown keys (the sorted duplicate check) and 5000 tags.
  std::string keys, tags;
  for (int i = 0; i < 5000; ++i) {
    keys += "\"k" + std::to_string(i) + "\":[\"t\"],";
    tags += "\"t" + std::to_string(i) + "\",";
  }
  std::string big = edit(f.full_usage, R"("tags":[)", R"("tags":[)" + tags);
  big = edit(big, R"("model":)", keys + R"("model":)");
  CHECK(outcome(events::decode_event(big, parser)) == "ok");
  CHECK(outcome(events::decode_event(edit(big, R"("k4999")", R"("k0")"), parser)) ==
        "invalid_json");
}

TEST_CASE("parse_rfc3339 reads RFC 3339 date-times", "[decoder]") {
  system_clock::time_point t;
  REQUIRE(events::parse_rfc3339("1970-01-01T00:00:00Z", t));
  CHECK(t == system_clock::time_point{});
  for (std::size_t n = 0; n <= 9; ++n) {
    const std::string text =
        "2026-11-22T12:00:05" + (n == 0 ? "" : "." + std::string("123456789").substr(0, n)) + "Z";
    const int ms[] = {0, 100, 120, 123, 123, 123, 123, 123, 123, 123};
    INFO(text);
    REQUIRE(events::parse_rfc3339(text, t));
    CHECK(t == utc(2026, 11, 22, 12, 0, 5, ms[n]));
  }
  REQUIRE(events::parse_rfc3339("2026-11-22T13:00:00+01:00", t));
  CHECK(t == utc(2026, 11, 22, 12, 0, 0));
  REQUIRE(events::parse_rfc3339("2026-11-22T06:30:00.5-05:30", t));
  CHECK(t == utc(2026, 11, 22, 12, 0, 0, 500));
  REQUIRE(events::parse_rfc3339("2028-02-29T00:00:00Z", t));
  CHECK(t == utc(2028, 2, 29, 0, 0, 0));
  CHECK(events::parse_rfc3339("2000-02-29T00:00:00Z", t));
  REQUIRE(events::parse_rfc3339("2026-12-31T23:59:60Z", t));  // a leap second reads as the next :00
  CHECK(t == utc(2027, 1, 1, 0, 0, 0));

  for (const char* bad : {"2027-02-29T00:00:00Z",      "1900-02-29T00:00:00Z",
                          "2026-04-31T00:00:00Z",      "2026-13-01T00:00:00Z",
                          "2026-00-01T00:00:00Z",      "2026-01-32T00:00:00Z",
                          "2026-01-00T00:00:00Z",      "2026-01-01T24:00:00Z",
                          "2026-01-01T00:60:00Z",      "2026-01-01T00:00:61Z",
                          "2026-01-01 00:00:00Z",      "2026-01-01t00:00:00Z",
                          "2026-01-01T00:00:00z",      "2026-01-01T00:00:00",
                          "2026-01-01T00:00:00.Z",     "2026-01-01T00:00:00+24:00",
                          "2026-01-01T00:00:00+01:60", "2026-01-01T00:00:00+0100",
                          "2026-01-01T00:00:00Z\n",    "2026-01-01T00:00:00ZZ",
                          "26-01-01T00:00:00Z",        "",
                          "1500-01-01T00:00:00Z"}) {
    INFO(bad);
    CHECK_FALSE(events::parse_rfc3339(bad, t));
  }
}

TEST_CASE("decode_event agrees with scripts/validate_events.py", "[decoder][schema]") {
  const TempDir dir;
  simdjson::dom::parser parser;
  std::vector<Case> cases;
  for (const char* file : {"valid.ndjson", "invalid.ndjson"}) {
    const auto lines = fixture_lines(file);
    for (std::size_t i = 0; i < lines.size(); ++i) cases.push_back({file, lines[i], ""});
  }
  for (Case& c : extra_cases()) cases.push_back(std::move(c));
  for (const Case& c : cases) {
    INFO(c.name << ": " << c.line.substr(0, 120));
    CHECK((outcome(events::decode_event(c.line, parser)) == "ok") == schema_accepts(dir, c.line));
  }
  // The documented differences must stay real: the schemas do accept these.
  for (const Case& c : known_differences()) {
    INFO(c.name);
    CHECK(schema_accepts(dir, c.line));
  }
}
