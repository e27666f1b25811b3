// The OTLP/HTTP decoders (src/otlp/): fixtures written by the real OpenTelemetry Python protobuf
// classes (tests/fixtures/otlp/make_fixtures.py) must decode to expected.json in both encodings,
// and malformed input of every kind must be refused with an error naming its place.
#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <iterator>
#include <string>

#include "otlp/otlp_decode.hpp"
#include "otlp/otlp_response.hpp"
#include "otlp/protobuf_reader.hpp"
#include "support/child_process.hpp"
#include "telemetryd/json_writer.hpp"

using namespace telemetryd;
using namespace telemetryd::otlp;
using pb::WireType;

namespace {

std::string fixture(const std::string& name) {
  const std::string path = test_support::source_root() + "/tests/fixtures/otlp/" + name;
  std::ifstream in(path, std::ios::binary);
  INFO(path);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string hex(const std::uint8_t* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

// ---- the model as JSON, in expected.json's shape -----------------------------------------------

void describe(JsonWriter& json, const Value& v) {
  json.begin_object();
  switch (v.kind) {
    case Value::Kind::kEmpty:
      json.key("empty").null();
      break;
    case Value::Kind::kString:
      json.key("string").value(v.text);
      break;
    case Value::Kind::kBool:
      json.key("bool").value(v.boolean);
      break;
    case Value::Kind::kInt:
      json.key("int").value(std::to_string(v.integer));
      break;
    case Value::Kind::kDouble:
      json.key("double").value(v.number);
      break;
    case Value::Kind::kBytes:
      json.key("bytes_hex")
          .value(hex(reinterpret_cast<const std::uint8_t*>(v.text.data()), v.text.size()));
      break;
    case Value::Kind::kOther:
      json.key("other").null();
      break;
  }
  json.end_object();
}

void describe(JsonWriter& json, const std::vector<KeyValue>& attributes) {
  json.begin_array();
  for (const KeyValue& kv : attributes) {
    json.begin_array().value(kv.key);
    describe(json, kv.value);
    json.end_array();
  }
  json.end_array();
}

std::string describe(const TracesRequest& request) {
  JsonWriter json;
  json.begin_object().key("span_count").value(static_cast<std::uint64_t>(request.span_count));
  json.key("resources").begin_array();
  for (const ResourceSpans& rs : request.resources) {
    json.begin_object().key("resource");
    describe(json, rs.resource);
    json.key("spans").begin_array();
    for (const Span& s : rs.spans) {
      json.begin_object().key("trace_id");
      if (s.has_trace_id)
        json.value(hex(s.trace_id.data(), s.trace_id.size()));
      else
        json.null();
      json.key("span_id");
      if (s.has_span_id)
        json.value(hex(s.span_id.data(), s.span_id.size()));
      else
        json.null();
      json.key("name").value(s.name);
      json.key("start").value(std::to_string(s.start_time_unix_nano));
      json.key("end").value(std::to_string(s.end_time_unix_nano));
      json.key("status_code").value(static_cast<int>(s.status_code));
      json.key("attributes");
      describe(json, s.attributes);
      json.end_object();
    }
    json.end_array().end_object();
  }
  json.end_array().end_object();
  return json.take();
}

const char* kind_name(Metric::Kind kind) {
  switch (kind) {
    case Metric::Kind::kGauge:
      return "gauge";
    case Metric::Kind::kSum:
      return "sum";
    case Metric::Kind::kHistogram:
      return "histogram";
    case Metric::Kind::kExponentialHistogram:
      return "exponential_histogram";
    case Metric::Kind::kOther:
      break;
  }
  return "other";
}

std::string describe(const MetricsRequest& request) {
  JsonWriter json;
  json.begin_object().key("data_point_count");
  json.value(static_cast<std::uint64_t>(request.data_point_count));
  json.key("resources").begin_array();
  for (const ResourceMetrics& rm : request.resources) {
    json.begin_object().key("resource");
    describe(json, rm.resource);
    json.key("metrics").begin_array();
    for (const Metric& m : rm.metrics) {
      json.begin_object().key("name").value(m.name).key("kind").value(kind_name(m.kind));
      json.key("temporality").value(static_cast<int>(m.temporality));
      json.key("monotonic").value(m.monotonic).key("points").begin_array();
      for (const NumberPoint& p : m.points) {
        json.begin_object().key("attributes");
        describe(json, p.attributes);
        json.key("start").value(std::to_string(p.start_time_unix_nano));
        json.key("time").value(std::to_string(p.time_unix_nano));
        json.key("count").value(std::to_string(p.count)).key("value");
        if (p.has_value)
          json.value(p.value);
        else
          json.null();
        json.end_object();
      }
      json.end_array().end_object();
    }
    json.end_array().end_object();
  }
  json.end_array().end_object();
  return json.take();
}

// Structural equality of two JSON values (numbers by value, objects by key in order).
bool same(simdjson::dom::element a, simdjson::dom::element b) {
  using simdjson::dom::element_type;
  const bool a_number = a.is_number(), b_number = b.is_number();
  if (a_number || b_number) return a_number && b_number && double(a) == double(b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case element_type::ARRAY: {
      simdjson::dom::array x = a, y = b;
      if (x.size() != y.size()) return false;
      for (auto i = x.begin(), j = y.begin(); i != x.end(); ++i, ++j)
        if (!same(*i, *j)) return false;
      return true;
    }
    case element_type::OBJECT: {
      simdjson::dom::object x = a, y = b;
      if (x.size() != y.size()) return false;
      for (auto i = x.begin(), j = y.begin(); i != x.end(); ++i, ++j)
        if (i.key() != j.key() || !same(i.value(), j.value())) return false;
      return true;
    }
    case element_type::STRING:
      return std::string_view(a) == std::string_view(b);
    case element_type::BOOL:
      return bool(a) == bool(b);
    default:
      return true;  // null
  }
}

void check_matches(const std::string& got, const char* section) {
  static const std::string expected_text = fixture("expected.json");
  simdjson::dom::parser expected_parser, got_parser;
  simdjson::dom::element expected = expected_parser.parse(expected_text)[section];
  simdjson::dom::element decoded = got_parser.parse(got);
  INFO("expected: " << simdjson::to_string(expected));
  INFO("decoded:  " << got);
  CHECK(same(expected, decoded));
}

// ---- building protobuf by hand -----------------------------------------------------------------

std::string len(std::uint32_t number, std::string_view bytes) {
  std::string out;
  pb::append_len_field(out, number, bytes);
  return out;
}
std::string varint(std::uint32_t number, std::uint64_t value) {
  std::string out;
  pb::append_tag(out, number, WireType::kVarint);
  pb::append_varint(out, value);
  return out;
}
std::string fixed64(std::uint32_t number, std::uint64_t value) {
  std::string out;
  pb::append_tag(out, number, WireType::kFixed64);
  out.append(reinterpret_cast<const char*>(&value), 8);
  return out;
}
std::string fixed32(std::uint32_t number, std::uint32_t value) {
  std::string out;
  pb::append_tag(out, number, WireType::kFixed32);
  out.append(reinterpret_cast<const char*>(&value), 4);
  return out;
}
std::string group(std::uint32_t number, std::string_view content) {
  std::string out;
  pb::append_tag(out, number, WireType::kStartGroup);
  out += content;
  pb::append_tag(out, number, WireType::kEndGroup);
  return out;
}

// Field 99 in each wire type (a group holding the others and a nested group).
std::string unknown_fields() {
  const std::string scalars = varint(99, 300) + fixed64(99, 7) + len(99, "junk") + fixed32(99, 9);
  return scalars + group(99, scalars + group(98, varint(1, 1)));
}

std::string string_attribute(std::string_view key, std::string_view value) {
  return len(1, key) + len(2, len(1, value));  // KeyValue{key, AnyValue{string_value}}
}

// An ExportTraceServiceRequest holding one span (its fields given) in one scope.
std::string traces_with_span(const std::string& span_fields, const std::string& extra = {}) {
  return len(1, len(2, len(2, span_fields)) + extra);
}

}  // namespace

TEST_CASE("otlp: the Python-made fixtures decode to expected.json", "[otlp]") {
  simdjson::dom::parser parser;
  SECTION("traces, protobuf") {
    const std::string body = fixture("traces.pb");
    auto decoded = decode_traces_protobuf(body);
    INFO((decoded ? "" : decoded.error().message));
    REQUIRE(decoded);
    CHECK(decoded->span_count == 4);
    check_matches(describe(decoded.value()), "traces");
  }
  SECTION("traces, OTLP/JSON") {
    const std::string body = fixture("traces.json");
    auto decoded = decode_traces_json(body, parser);
    INFO((decoded ? "" : decoded.error().message));
    REQUIRE(decoded);
    check_matches(describe(decoded.value()), "traces");
  }
  SECTION("metrics, protobuf") {
    const std::string body = fixture("metrics.pb");
    auto decoded = decode_metrics_protobuf(body);
    INFO((decoded ? "" : decoded.error().message));
    REQUIRE(decoded);
    CHECK(decoded->data_point_count == 8);
    check_matches(describe(decoded.value()), "metrics");
  }
  SECTION("metrics, OTLP/JSON") {
    const std::string body = fixture("metrics.json");
    auto decoded = decode_metrics_json(body, parser);
    INFO((decoded ? "" : decoded.error().message));
    REQUIRE(decoded);
    check_matches(describe(decoded.value()), "metrics");
  }
}

TEST_CASE("otlp: content attributes never reach the model", "[otlp]") {
  for (const char* key :
       {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
        "gen_ai.prompt", "gen_ai.prompt.0.content", "gen_ai.completion.3.content",
        "llm.input_messages", "llm.input_messages.0.message.content",
        "llm.output_messages.1.message.content", "input.value", "output.value",
        "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "traceloop.entity.input",
        "ai.prompt.messages", "llm.prompts"})
    CHECK(is_content_attribute(key));
  for (const char* key :
       {"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens",
        "gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name", "llm.token_count.prompt",
        "input.mime_type", "service.name", "", "gen_ai."})
    CHECK_FALSE(is_content_attribute(key));

  // No byte of a content value is left in the decoded requests' views.
  simdjson::dom::parser parser;
  const std::string pb = fixture("traces.pb"), json = fixture("traces.json");
  for (auto decoded : {decode_traces_protobuf(pb), decode_traces_json(json, parser)}) {
    REQUIRE(decoded);
    for (const auto& rs : decoded->resources)
      for (const auto& span : rs.spans)
        for (const auto& kv : span.attributes) {
          CHECK_FALSE(is_content_attribute(kv.key));
          CHECK(kv.value.text.find("secret") == std::string_view::npos);
        }
  }
}

TEST_CASE("otlp: every truncation of a protobuf fixture is an error or a shorter request",
          "[otlp]") {
  for (const char* name : {"traces.pb", "metrics.pb"}) {
    const std::string body = fixture(name);
    const bool traces = name[0] == 't';
    // Cutting between two top-level resource_* fields leaves a valid, smaller request.
    std::vector<std::size_t> boundaries{0};
    pb::Reader reader(body);
    pb::Field field;
    const char* start = body.data();
    while (reader.next(field))
      boundaries.push_back(
          static_cast<std::size_t>(field.bytes.data() + field.bytes.size() - start));
    REQUIRE(boundaries.size() == (traces ? 3 : 2));
    for (std::size_t size = 0; size < body.size(); ++size) {
      const std::string cut = body.substr(0, size);  // its own allocation, for ASan
      const bool boundary =
          std::find(boundaries.begin(), boundaries.end(), size) != boundaries.end();
      INFO(name << " cut at " << size);
      const std::string error =
          traces ? (decode_traces_protobuf(cut) ? std::string()
                                                : decode_traces_protobuf(cut).error().message)
                 : (decode_metrics_protobuf(cut) ? std::string()
                                                 : decode_metrics_protobuf(cut).error().message);
      CHECK(error.empty() == boundary);
      // The outermost length already runs past the end.
      if (!error.empty()) CHECK(error == "truncated length-delimited field 1");
    }
  }
  // Cut inside: every prefix of a span, wrapped in valid outer messages, decodes or is refused
  // with the span's place.
  const std::string body = fixture("traces.pb");
  pb::Reader reader(body);
  pb::Field field;
  REQUIRE(reader.next(field));  // resource_spans[0]
  pb::Reader resource(field.bytes);
  while (resource.next(field) && field.number != 2) {
  }
  pb::Reader scope(field.bytes);  // scope_spans[0]
  while (scope.next(field) && field.number != 2) {
  }
  const std::string span(field.bytes);  // spans[0]
  REQUIRE(span.size() > 500);
  for (std::size_t size = 0; size < span.size(); ++size) {
    auto decoded = decode_traces_protobuf(traces_with_span(span.substr(0, size)));
    INFO("span cut at " << size);
    if (!decoded)
      CHECK(decoded.error().message.starts_with("resource_spans[0].scope_spans[0].spans[0]"));
  }
}

TEST_CASE("otlp: every truncation of a JSON fixture is an error", "[otlp]") {
  simdjson::dom::parser parser;
  for (const char* name : {"traces.json", "metrics.json"}) {
    const std::string body = fixture(name);
    const std::size_t complete = body.find_last_not_of(" \n") + 1;
    for (std::size_t size = 1; size < complete; ++size) {
      const std::string cut = body.substr(0, size);
      INFO(name << " cut at " << size);
      if (name[0] == 't')
        CHECK_FALSE(decode_traces_json(cut, parser));
      else
        CHECK_FALSE(decode_metrics_json(cut, parser));
    }
  }
}

TEST_CASE("otlp: protobuf errors say what and where", "[otlp]") {
  // A span whose trace_id (field 1) claims 16 bytes and has 3.
  std::string span =
      "\x0a\x10"
      "abc";
  auto decoded = decode_traces_protobuf(traces_with_span(span));
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().kind == Error::Kind::kPermanent);
  CHECK(decoded.error().message ==
        "resource_spans[0].scope_spans[0].spans[0]: truncated length-delimited field 1");

  decoded = decode_traces_protobuf(traces_with_span(len(1, "short")));
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().message ==
        "resource_spans[0].scope_spans[0].spans[0]: trace_id is 5 bytes, want 16");
  decoded = decode_traces_protobuf(traces_with_span(len(2, "123456789")));
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().message ==
        "resource_spans[0].scope_spans[0].spans[0]: span_id is 9 bytes, want 8");

  // Invalid UTF-8 in an attribute key or value: that attribute is unusable, the span stays.
  // (The body outlives the decoded request: its views point into it.)
  const std::string bad_utf8 = traces_with_span(len(9, string_attribute("k\xff", "v")) +
                                                len(9, string_attribute("url", "\xe2\x82")) +
                                                len(9, string_attribute("ok", "fine")));
  decoded = decode_traces_protobuf(bad_utf8);
  REQUIRE(decoded);
  REQUIRE(decoded.value().resources[0].spans[0].attributes.size() == 2);
  CHECK(decoded.value().resources[0].spans[0].attributes[0].key == "url");
  CHECK(decoded.value().resources[0].spans[0].attributes[0].value.kind == Value::Kind::kOther);
  CHECK(decoded.value().resources[0].spans[0].attributes[1].value.text == "fine");

  // Wire type 6 and 7 do not exist; a lone end-group; field number 0.
  CHECK(decode_traces_protobuf("\x0e").error().message == "invalid wire type 6 in field 1");
  CHECK(decode_traces_protobuf("\x0c").error().message ==
        "end-group without a start-group in field 1");
  CHECK(decode_traces_protobuf(std::string("\x00\x00", 2)).error().message ==
        "invalid field number in tag");
  CHECK(decode_metrics_protobuf("\x0b\x08").error().message == "truncated group 1");
}

TEST_CASE("otlp: varints are at most ten bytes and 64 bits", "[otlp]") {
  const auto read = [](const std::string& bytes, std::uint64_t& out) {
    const char* pos = bytes.data();
    return pb::read_varint(pos, bytes.data() + bytes.size(), out);
  };
  std::uint64_t value = 0;
  std::string max;
  pb::append_varint(max, UINT64_MAX);
  CHECK(max.size() == 10);
  CHECK(read(max, value));
  CHECK(value == UINT64_MAX);
  CHECK_FALSE(read(std::string(10, '\xff') + '\x01', value));  // eleven bytes
  CHECK_FALSE(read(std::string(9, '\xff') + '\x02', value));   // bit 64
  CHECK_FALSE(read(std::string(3, '\x80'), value));            // truncated
  CHECK(read(std::string(9, '\x80') + '\x01', value));         // 2^63, ten bytes
  CHECK(value == (std::uint64_t{1} << 63));
  // A negative int64 attribute value is a ten-byte varint.
  const std::string attribute = len(1, "n") + len(2, varint(3, static_cast<std::uint64_t>(-5)));
  auto decoded = decode_traces_protobuf(traces_with_span(len(9, attribute)));
  REQUIRE(decoded);
  CHECK(decoded->resources[0].spans[0].attributes[0].value.integer == -5);
}

TEST_CASE("otlp: unknown protobuf fields of every wire type are skipped", "[otlp]") {
  const std::string trace_id(16, '\x01');
  const std::string span =
      unknown_fields() + len(1, trace_id) + unknown_fields() + len(5, "op") + fixed64(7, 11) +
      unknown_fields() + len(9, string_attribute("gen_ai.request.model", "m") + unknown_fields()) +
      len(15, unknown_fields() + varint(3, 2)) +
      // a known field number with another wire type is unknown too
      varint(5, 1) + fixed32(1, 3);
  const std::string body =
      unknown_fields() +
      len(1, unknown_fields() + len(1, unknown_fields() + len(1, string_attribute("a", "b"))) +
                 len(2, unknown_fields() + len(2, span) + unknown_fields())) +
      unknown_fields();
  auto decoded = decode_traces_protobuf(body);
  INFO((decoded ? "" : decoded.error().message));
  REQUIRE(decoded);
  REQUIRE(decoded->span_count == 1);
  const ResourceSpans& rs = decoded->resources[0];
  REQUIRE(rs.resource.size() == 1);
  CHECK(rs.resource[0].key == "a");
  const Span& s = rs.spans[0];
  CHECK(s.has_trace_id);
  CHECK_FALSE(s.has_span_id);
  CHECK(s.trace_id[15] == 1);
  CHECK(s.name == "op");
  CHECK(s.start_time_unix_nano == 11);
  CHECK(s.status_code == 2);
  REQUIRE(s.attributes.size() == 1);
  CHECK(s.attributes[0].value.text == "m");

  // The metrics decoder too, inside a Sum data point.
  const std::string point = unknown_fields() + fixed64(3, 5) + unknown_fields() + fixed64(6, 42);
  const std::string metric = len(1, "tokens") + unknown_fields() +
                             len(7, len(1, point) + varint(2, 1) + varint(3, 1) + unknown_fields());
  auto metrics = decode_metrics_protobuf(len(1, len(2, len(2, metric))) + unknown_fields());
  INFO((metrics ? "" : metrics.error().message));
  REQUIRE(metrics);
  const Metric& m = metrics->resources[0].metrics[0];
  CHECK(m.kind == Metric::Kind::kSum);
  CHECK(m.temporality == 1);
  CHECK(m.monotonic);
  REQUIRE(m.points.size() == 1);
  CHECK(m.points[0].value == 42);
  CHECK(m.points[0].has_value);
  CHECK(m.points[0].time_unix_nano == 5);
}

TEST_CASE("otlp: attribute values nest at most 32 deep", "[otlp]") {
  simdjson::dom::parser parser;
  const auto protobuf_nested = [](int depth) {
    std::string value = len(1, "leaf");                             // AnyValue{string_value}
    for (int i = 1; i < depth; ++i) value = len(5, len(1, value));  // AnyValue{array_value{[v]}}
    return traces_with_span(len(9, len(1, "k") + len(2, value)));
  };
  const auto json_nested = [](int depth) {
    std::string value = R"({"stringValue":"leaf"})";
    for (int i = 1; i < depth; ++i)
      value = (i % 2 ? R"({"arrayValue":{"values":[)" + value + "]}}"
                     : R"({"kvlistValue":{"values":[{"key":"x","value":)" + value + "}]}}");
    return R"({"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":)" +
           value + "}]}]}]}]}";
  };
  auto ok = decode_traces_protobuf(protobuf_nested(32));
  REQUIRE(ok);
  CHECK(ok->resources[0].spans[0].attributes[0].value.kind == Value::Kind::kOther);
  auto deep = decode_traces_protobuf(protobuf_nested(33));
  REQUIRE_FALSE(deep);
  CHECK(deep.error().message.find("attribute value nested deeper than 32") != std::string::npos);
  CHECK(deep.error().message.starts_with(
      "resource_spans[0].scope_spans[0].spans[0].attributes[0].array_value.values[0]"));
  CHECK_FALSE(decode_traces_protobuf(protobuf_nested(5000)));

  REQUIRE(decode_traces_json(json_nested(32), parser));
  auto json_deep = decode_traces_json(json_nested(33), parser);
  REQUIRE_FALSE(json_deep);
  CHECK(json_deep.error().message.find("nested deeper than 32") != std::string::npos);
  CHECK_FALSE(decode_traces_json(json_nested(400), parser));
}

TEST_CASE("otlp: an empty body is an empty request", "[otlp]") {
  simdjson::dom::parser parser;
  for (std::string_view body : {std::string_view(), std::string_view("{}")}) {
    auto traces = decode_traces_json(body, parser);
    REQUIRE(traces);
    CHECK(traces->span_count == 0);
    auto metrics = decode_metrics_json(body, parser);
    REQUIRE(metrics);
    CHECK(metrics->data_point_count == 0);
  }
  auto traces = decode_traces_protobuf("");
  REQUIRE(traces);
  CHECK(traces->resources.empty());
  auto metrics = decode_metrics_protobuf("");
  REQUIRE(metrics);
  CHECK(metrics->resources.empty());
  CHECK(decode_traces_json(R"({"resourceSpans":null})", parser));
  CHECK(decode_traces_json(R"({"resourceSpans":[]})", parser));
}

TEST_CASE("otlp: JSON numbers, strings, ids and bytes", "[otlp]") {
  simdjson::dom::parser parser;
  const auto span_json = [](const std::string& fields) {
    return R"({"resourceSpans":[{"scopeSpans":[{"spans":[{)" + fields + "}]}]}]}";
  };
  const auto one_span = [&](const std::string& fields) -> Span {
    auto decoded = decode_traces_json(span_json(fields), parser);
    INFO(fields << " -> " << (decoded ? "" : decoded.error().message));
    REQUIRE(decoded);
    REQUIRE(decoded->span_count == 1);
    return decoded->resources[0].spans[0];
  };
  const auto error = [&](const std::string& fields) {
    auto decoded = decode_traces_json(span_json(fields), parser);
    return decoded ? std::string("accepted") : decoded.error().message;
  };

  SECTION("int64 and uint64 as numbers or decimal strings") {
    Span s = one_span(R"("startTimeUnixNano":"1764806400000000000","endTimeUnixNano":17648064000)"
                      R"(00000001,"attributes":[{"key":"a","value":{"intValue":"811"}},)"
                      R"({"key":"b","value":{"intValue":-811}},{"key":"c","value":{"intValue":)"
                      R"("-9223372036854775808"}},{"key":"d","value":{"intValue":1e3}}])");
    CHECK(s.start_time_unix_nano == 1764806400000000000u);
    CHECK(s.end_time_unix_nano == 1764806400000000001u);
    CHECK(s.attributes[0].value.integer == 811);
    CHECK(s.attributes[0].value.kind == Value::Kind::kInt);
    CHECK(s.attributes[1].value.integer == -811);
    CHECK(s.attributes[2].value.integer == INT64_MIN);
    CHECK(s.attributes[3].value.integer == 1000);
    CHECK(one_span(R"("endTimeUnixNano":"18446744073709551615")").end_time_unix_nano == UINT64_MAX);
    CHECK(error(R"("startTimeUnixNano":"18446744073709551616")") ==
          "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: wrong type, want an "
          "unsigned 64-bit integer (number or decimal string)");
    CHECK(error(R"("startTimeUnixNano":-1)") != "accepted");
    CHECK(error(R"("startTimeUnixNano":"12a")") != "accepted");
    CHECK(error(R"("startTimeUnixNano":"")") != "accepted");
    CHECK(error(R"("startTimeUnixNano":1.5)") != "accepted");
    CHECK(error(R"("attributes":[{"key":"a","value":{"intValue":"9223372036854775808"}}])") !=
          "accepted");
  }
  SECTION("doubles, bools, strings") {
    Span s = one_span(R"("name":"x","attributes":[{"key":"a","value":{"doubleValue":0.5}},)"
                      R"({"key":"b","value":{"doubleValue":"NaN"}},)"
                      R"({"key":"c","value":{"doubleValue":3}},)"
                      R"({"key":"d","value":{"boolValue":true}},{"key":"e","value":{}},)"
                      R"({"key":"f","value":{"stringValue":"s","unknown":1}}])");
    CHECK(s.name == "x");
    CHECK(s.attributes[0].value.number == 0.5);
    CHECK(std::isnan(s.attributes[1].value.number));
    CHECK(s.attributes[2].value.number == 3);
    CHECK(s.attributes[2].value.kind == Value::Kind::kDouble);
    CHECK(s.attributes[3].value.boolean);
    CHECK(s.attributes[4].value.kind == Value::Kind::kEmpty);
    CHECK(s.attributes[5].value.text == "s");
    CHECK(error(R"("name":5)") ==
          "resourceSpans[0].scopeSpans[0].spans[0].name: wrong type, want a string");
    CHECK(error(R"("attributes":[{"key":"a","value":{"boolValue":"true"}}])") ==
          "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.boolValue: wrong type, "
          "want true or false");
    CHECK(error(R"("attributes":{})") != "accepted");
    CHECK(error(R"("attributes":[5])") != "accepted");
  }
  SECTION("hex ids") {
    Span s =
        one_span(R"("traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174")");
    CHECK(s.has_trace_id);
    CHECK(hex(s.trace_id.data(), 16) == "5b8efff798038103d269b633813fc60c");
    CHECK(hex(s.span_id.data(), 8) == "eee19b7ec3c1b174");
    CHECK_FALSE(one_span(R"("traceId":"","spanId":"0000000000000000")").has_span_id);
    CHECK(error(R"("traceId":"5b8efff798038103d269b633813fc60")") ==
          "resourceSpans[0].scopeSpans[0].spans[0].traceId: want 32 hex digits, got 31 "
          "characters");
    // base64, as MessageToJson writes ids, is not OTLP/JSON
    CHECK(error(R"("spanId":"7uGbfsPBsXQ=")") != "accepted");
    CHECK(error(R"("spanId":"eee19b7ec3c1b17g")") ==
          "resourceSpans[0].scopeSpans[0].spans[0].spanId: not a hex string");
    CHECK(error(R"("spanId":12)") != "accepted");
  }
  SECTION("base64 bytesValue") {
    Span s = one_span(R"("attributes":[{"key":"a","value":{"bytesValue":"AAH+/w=="}},)"
                      R"({"key":"b","value":{"bytesValue":"AAH-_w"}},)"
                      R"({"key":"c","value":{"bytesValue":""}}])");
    CHECK(s.attributes[0].value.kind == Value::Kind::kBytes);
    CHECK(s.attributes[0].value.text == std::string_view("\x00\x01\xfe\xff", 4));
    CHECK(s.attributes[1].value.text == std::string_view("\x00\x01\xfe\xff", 4));
    CHECK(s.attributes[2].value.text.empty());
    CHECK(error(R"("attributes":[{"key":"a","value":{"bytesValue":"A"}}])") ==
          "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.bytesValue: not base64");
    CHECK(error(R"("attributes":[{"key":"a","value":{"bytesValue":"AA*A"}}])") != "accepted");
  }
  SECTION("status codes as integers or names") {
    CHECK(one_span(R"("status":{"code":2,"message":"x"})").status_code == 2);
    CHECK(one_span(R"("status":{"code":"STATUS_CODE_ERROR"})").status_code == 2);
    CHECK(one_span(R"("status":{"code":"STATUS_CODE_OK"})").status_code == 1);
    CHECK(one_span(R"("status":{})").status_code == 0);
    CHECK(error(R"("status":{"code":"ERROR"})") ==
          "resourceSpans[0].scopeSpans[0].spans[0].status.code: wrong type, want an enum value "
          "(integer or name)");
  }
  SECTION("content attributes are dropped, unknown keys ignored") {
    Span s = one_span(R"("attributes":[{"key":"gen_ai.input.messages","value":{"stringValue":)"
                      R"("secret"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"3"}}],)"
                      R"("events":[{"name":"gen_ai.content.prompt"}],"kind":3,"flags":1)");
    REQUIRE(s.attributes.size() == 1);
    CHECK(s.attributes[0].key == "gen_ai.usage.input_tokens");
  }
  SECTION("not JSON, not an object") {
    CHECK(decode_traces_json("[]", parser).error().message == "want an object");
    CHECK(decode_traces_json("{", parser).error().message.starts_with("invalid JSON: "));
    CHECK(decode_traces_json(R"({"resourceSpans":{}})", parser).error().message ==
          "resourceSpans: wrong type, want an array");
  }
}

TEST_CASE("otlp: JSON metrics: temporality names, asInt strings, oneof", "[otlp]") {
  simdjson::dom::parser parser;
  const std::string body = R"({"resourceMetrics":[{"scopeMetrics":[{"metrics":[
    {"name":"a","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","isMonotonic":true,
      "dataPoints":[{"asInt":"811","timeUnixNano":"5"},{"asDouble":"1.5"}]}},
    {"name":"b","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"4","sum":10}]}},
    {"name":"c","summary":{"dataPoints":[{},{}]}}]}]}]})";
  auto decoded = decode_metrics_json(body, parser);
  INFO((decoded ? "" : decoded.error().message));
  REQUIRE(decoded);
  CHECK(decoded->data_point_count == 5);
  const auto& metrics = decoded->resources[0].metrics;
  REQUIRE(metrics.size() == 3);
  CHECK(metrics[0].temporality == 1);
  CHECK(metrics[0].monotonic);
  REQUIRE(metrics[0].points.size() == 2);
  CHECK(metrics[0].points[0].value == 811);
  CHECK(metrics[0].points[0].time_unix_nano == 5);
  CHECK(metrics[0].points[1].value == 1.5);
  CHECK(metrics[1].kind == Metric::Kind::kHistogram);
  CHECK(metrics[1].points[0].count == 4);
  CHECK(metrics[1].points[0].value == 10);
  CHECK(metrics[2].kind == Metric::Kind::kOther);
  CHECK(metrics[2].points.empty());
  auto bad = decode_metrics_json(
      R"({"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"dataPoints":[{"asInt":1.5}]}}]}]}]})",
      parser);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message ==
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt: wrong type, want "
        "a 64-bit integer (number or decimal string)");
}

TEST_CASE("otlp: response encoders", "[otlp]") {
  // Bytes the Python classes wrote (make_fixtures.py).
  CHECK(encode_export_response_protobuf(3, "3 spans without a trace id", true) ==
        fixture("response_traces_partial.pb"));
  CHECK(encode_export_response_protobuf(300, "", false) == fixture("response_metrics_partial.pb"));
  CHECK(encode_status_protobuf(3, "resource_spans[0]: truncated length-delimited field 2") ==
        fixture("status_invalid_argument.pb"));
  CHECK(encode_status_protobuf(-1, "") == fixture("status_negative.pb"));
  CHECK(encode_export_response_protobuf(0, "", true).empty());

  // And read back with the wire reader.
  const std::string response = encode_export_response_protobuf(-2, "warn", false);
  pb::Reader outer(response);
  pb::Field field;
  REQUIRE(outer.next(field));
  CHECK(field.number == 1);
  pb::Reader inner(field.bytes);
  REQUIRE(inner.next(field));
  CHECK(field.as_int64() == -2);
  REQUIRE(inner.next(field));
  CHECK(field.bytes == "warn");
  CHECK_FALSE(inner.next(field));
  CHECK_FALSE(inner.failed());

  CHECK(encode_export_response_json(0, "", true) == "{}");
  CHECK(encode_export_response_json(3, "no \"id\"", true) ==
        R"({"partialSuccess":{"rejectedSpans":"3","errorMessage":"no \"id\""}})");
  CHECK(encode_export_response_json(7, "", false) ==
        R"({"partialSuccess":{"rejectedDataPoints":"7"}})");
  CHECK(encode_export_response_json(0, "slow down", false) ==
        R"({"partialSuccess":{"errorMessage":"slow down"}})");
  CHECK(encode_status_json(3, "bad") == R"({"code":3,"message":"bad"})");
}

TEST_CASE("otlp: protobuf metric data is a oneof; gauge and summary points are only counted",
          "[otlp]") {
  const std::string histogram_point = fixed64(4, 3) + fixed64(5, 0x4024000000000000);  // sum 10.0
  const std::string sum = len(7, len(1, fixed64(6, 1)) + varint(2, 2) + varint(3, 1));
  const std::string histogram = len(9, len(1, histogram_point) + varint(2, 1));
  // A Sum replaced by a later Histogram; a Histogram given twice is merged.
  const std::string metric = len(1, "m") + sum + histogram + histogram;
  const std::string gauge = len(1, "g") + len(5, len(1, "") + len(1, ""));
  const std::string summary = len(1, "s") + len(11, len(1, ""));
  const std::string body = len(1, len(2, len(2, metric) + len(2, gauge) + len(2, summary)));
  auto decoded = decode_metrics_protobuf(body);  // views into body: it must outlive them
  INFO((decoded ? "" : decoded.error().message));
  REQUIRE(decoded);
  CHECK(decoded->data_point_count == 2 + 2 + 1);
  const auto& metrics = decoded->resources[0].metrics;
  REQUIRE(metrics.size() == 3);
  CHECK(metrics[0].kind == Metric::Kind::kHistogram);
  CHECK(metrics[0].temporality == 1);
  CHECK_FALSE(metrics[0].monotonic);
  REQUIRE(metrics[0].points.size() == 2);
  CHECK(metrics[0].points[1].count == 3);
  CHECK(metrics[0].points[1].value == 10.0);
  CHECK(metrics[0].points[1].has_value);
  CHECK(metrics[1].kind == Metric::Kind::kGauge);
  CHECK(metrics[1].points.empty());
  CHECK(metrics[2].kind == Metric::Kind::kOther);
  CHECK(metrics[2].name == "s");
}
