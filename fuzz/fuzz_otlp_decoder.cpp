// Fuzzes the OTLP/HTTP request decoders (src/otlp/). The first byte picks the decoder (0: traces
// protobuf, 1: traces JSON, 2: metrics protobuf, 3: metrics JSON, modulo 4), the rest is the
// body. Beyond "does not crash or hang", every input must satisfy (docs/fuzzing.md):
//  - a rejection is a permanent error with a short, non-empty, valid UTF-8 message (it is sent
//    back to the client in a google.rpc.Status and logged);
//  - an accepted request's counts add up (span_count is the number of spans; data_point_count
//    at least the number of decoded points), no content attribute is in it, and its keys,
//    string values and names are valid UTF-8;
//  - protobuf: every view points into the body (zero-copy, nothing dangling).
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz_invariants.hpp"
#include "otlp/otlp_decode.hpp"

namespace {

using fuzz::expect;
using fuzz::utf8;
using fuzz::violated;

using namespace telemetryd::otlp;

struct Checker {
  std::string_view body;
  bool protobuf;

  void view(std::string_view text, const char* what) const {
    if (protobuf && !text.empty())
      expect(text.data() >= body.data() && text.data() + text.size() <= body.data() + body.size(),
             "a view points outside the body", what);
  }
  void string(std::string_view text, const char* what) const {
    view(text, what);
    expect(utf8(text), "a decoded string is not valid UTF-8", what);
  }
  void attributes(const std::vector<KeyValue>& list) const {
    for (const KeyValue& kv : list) {
      string(kv.key, "key");
      expect(!is_content_attribute(kv.key), "a content attribute was kept", kv.key);
      if (kv.value.kind == Value::Kind::kString) string(kv.value.text, "string value");
      if (kv.value.kind == Value::Kind::kBytes) view(kv.value.text, "bytes value");
    }
  }
};

template <typename R>
bool rejected(const telemetryd::Result<R>& result) {
  if (result) return false;
  const telemetryd::Error& error = result.error();
  expect(error.kind == telemetryd::Error::Kind::kPermanent, "a retryable error", error.message);
  expect(!error.message.empty(), "an empty error message");
  expect(error.message.size() <= 2048, "an error message over 2 KiB", error.message);
  expect(utf8(error.message), "the error message is not valid UTF-8", error.message);
  return true;
}

void check(const TracesRequest& request, const Checker& c) {
  std::size_t spans = 0;
  for (const ResourceSpans& rs : request.resources) {
    c.attributes(rs.resource);
    for (const Span& span : rs.spans) {
      c.string(span.name, "span name");
      c.attributes(span.attributes);
    }
    spans += rs.spans.size();
  }
  expect(spans == request.span_count, "span_count is not the number of spans");
}

void check(const MetricsRequest& request, const Checker& c) {
  std::size_t points = 0;
  for (const ResourceMetrics& rm : request.resources) {
    c.attributes(rm.resource);
    for (const Metric& metric : rm.metrics) {
      c.string(metric.name, "metric name");
      if (metric.kind == Metric::Kind::kGauge || metric.kind == Metric::Kind::kOther)
        expect(metric.points.empty(), "gauge or summary points decoded");
      for (const NumberPoint& point : metric.points) c.attributes(point.attributes);
      points += metric.points.size();
    }
  }
  expect(points <= request.data_point_count, "data_point_count below the decoded points");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // One parser reused across inputs, as the HTTP handler does.
  static simdjson::dom::parser parser;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto result = decode_traces_protobuf(body);
      if (!rejected(result)) check(result.value(), {body, true});
      break;
    }
    case 1: {
      auto result = decode_traces_json(body, parser);
      if (!rejected(result)) check(result.value(), {body, false});
      break;
    }
    case 2: {
      auto result = decode_metrics_protobuf(body);
      if (!rejected(result)) check(result.value(), {body, true});
      break;
    }
    default: {
      auto result = decode_metrics_json(body, parser);
      if (!rejected(result)) check(result.value(), {body, false});
      break;
    }
  }
  return 0;
}
