#pragma once
// What the OTLP/HTTP decoders (otlp_decode.hpp) produce from an ExportTraceServiceRequest or an
// ExportMetricsServiceRequest: only the parts token accounting needs, as views into the request
// body (protobuf) or the simdjson parser (JSON). Instrumentation scopes are flattened away, span
// events and links, exemplars and histogram buckets are skipped, and attributes that carry prompt
// or completion content are dropped while decoding (is_content_attribute).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace telemetryd::otlp {

struct Value {  // common.v1.AnyValue; arrays, kvlists -> kOther
  enum class Kind : std::uint8_t { kEmpty, kString, kBool, kInt, kDouble, kBytes, kOther };
  Kind kind = Kind::kEmpty;
  std::string_view text;  // kString (and kBytes: raw bytes)
  bool boolean = false;
  std::int64_t integer = 0;
  double number = 0;
};

struct KeyValue {
  std::string_view key;
  Value value;
};

/// Attribute keys that carry prompt or completion content (gen_ai.input.messages,
/// gen_ai.output.messages, gen_ai.system_instructions, gen_ai.prompt*, gen_ai.completion*,
/// llm.input_messages*, llm.output_messages*, input.value, output.value,
/// gen_ai.tool.call.arguments, gen_ai.tool.call.result ...): decoders drop them, so content never
/// reaches the model.
bool is_content_attribute(std::string_view key);

struct Span {
  std::array<std::uint8_t, 16> trace_id{};
  bool has_trace_id = false;  // all-zero or missing -> false
  std::array<std::uint8_t, 8> span_id{};
  bool has_span_id = false;
  std::string_view name;
  std::uint64_t start_time_unix_nano = 0, end_time_unix_nano = 0;
  std::vector<KeyValue> attributes;  // content attributes already dropped
  std::int32_t status_code = 0;      // Status.code: 0 unset, 1 ok, 2 error
};

struct ResourceSpans {
  std::vector<KeyValue> resource;
  std::vector<Span> spans;
};  // scopes flattened

struct TracesRequest {
  std::vector<ResourceSpans> resources;
  std::size_t span_count = 0;
};

struct NumberPoint {  // a Histogram, ExponentialHistogram or Sum data point: what token counters
                      // need
  std::vector<KeyValue> attributes;
  std::uint64_t start_time_unix_nano = 0, time_unix_nano = 0;
  std::uint64_t count = 0;  // histogram count (0 for a Sum)
  double value = 0;         // histogram sum, or the Sum point's value (as_int converted)
  bool has_value = false;   // histogram sum is optional
};

struct Metric {
  std::string_view name;
  enum class Kind : std::uint8_t {
    kOther,
    kGauge,
    kSum,
    kHistogram,
    kExponentialHistogram
  } kind = Kind::kOther;
  std::int32_t temporality = 0;     // AggregationTemporality: 0 unspecified, 1 delta, 2 cumulative
  bool monotonic = false;           // Sum.is_monotonic
  std::vector<NumberPoint> points;  // for kGauge/kOther: empty is fine (not needed)
};

struct ResourceMetrics {
  std::vector<KeyValue> resource;
  std::vector<Metric> metrics;
};

/// data_point_count counts every data point of every metric, Gauge and Summary points included
/// (those are not decoded into `points`): it is what a partial success's rejected_data_points
/// refers to.
struct MetricsRequest {
  std::vector<ResourceMetrics> resources;
  std::size_t data_point_count = 0;
};

}  // namespace telemetryd::otlp
