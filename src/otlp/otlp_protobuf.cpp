// OTLP binary protobuf decoding. Field numbers are those of opentelemetry-proto
// (https://github.com/open-telemetry/opentelemetry-proto, opentelemetry/proto/...):
//   collector/trace/v1/trace_service.proto     ExportTraceServiceRequest
//   collector/metrics/v1/metrics_service.proto ExportMetricsServiceRequest
//   trace/v1/trace.proto                       ResourceSpans, ScopeSpans, Span, Status
//   metrics/v1/metrics.proto                   ResourceMetrics ... data points
//   resource/v1/resource.proto                 Resource
//   common/v1/common.proto                     KeyValue, AnyValue, ArrayValue, KeyValueList
//
// Like libprotobuf and upb, a known field number with an unexpected wire type is treated as an
// unknown field and skipped; a repeated occurrence of a singular field overrides it (a message
// field's repeated parts are merged, as protobuf merges messages). Strings the model exposes
// (keys, string values, names) that are not valid UTF-8, as proto3 `string` requires, are kept
// out of the model (the attribute dropped, the value unusable, the name empty) rather than
// refusing the whole request for one span's bad URL.

#include <simdjson.h>

#include <algorithm>
#include <cstring>

#include "otlp/decode_support.hpp"
#include "otlp/otlp_decode.hpp"
#include "otlp/protobuf_reader.hpp"

namespace telemetryd::otlp {
namespace {

using detail::Path;
using detail::Scope;
using pb::Field;
using pb::Reader;
using pb::WireType;

constexpr WireType kLen = WireType::kLen;
constexpr WireType kVarint = WireType::kVarint;
constexpr WireType kFixed64 = WireType::kFixed64;

bool is(const Field& field, std::uint32_t number, WireType type) {
  return field.number == number && field.type == type;
}

class Decoder {
 public:
  std::string error;

  // ---- common.v1 ---------------------------------------------------------------------------

  // KeyValue: key = 1 (string), value = 2 (AnyValue). Content attributes are decoded (so that
  // malformed ones are still rejected) but not kept.
  bool key_value(std::string_view bytes, KeyValue& kv, int depth) {
    Reader reader(bytes);
    Field field;
    while (reader.next(field)) {
      if (is(field, 1, kLen)) {
        // Not UTF-8: no allow-listed key, so the attribute is dropped (attribute() below).
        kv.key = utf8(field.bytes) ? field.bytes : std::string_view();
      } else if (is(field, 2, kLen)) {
        if (!any_value(field.bytes, kv.value, depth)) return false;
      }
    }
    return done(reader);
  }

  bool attribute(std::string_view bytes, std::vector<KeyValue>& out, std::size_t index) {
    Scope scope(path_, "attributes", index);
    KeyValue kv;
    if (!count_item() || !key_value(bytes, kv, 1)) return false;
    if (!kv.key.empty() && !is_content_attribute(kv.key)) out.push_back(kv);
    return true;
  }

  // AnyValue (a oneof): string_value = 1, bool_value = 2, int_value = 3 (int64), double_value = 4,
  // array_value = 5 (ArrayValue), kvlist_value = 6 (KeyValueList), bytes_value = 7.
  bool any_value(std::string_view bytes, Value& value, int depth) {
    if (depth > kMaxValueDepth)
      return fail("attribute value nested deeper than " + std::to_string(kMaxValueDepth));
    Reader reader(bytes);
    Field field;
    while (reader.next(field)) {
      switch (field.number) {
        case 1:
          if (field.type != kLen) break;
          value = {};
          // Not UTF-8 (a truncated multibyte URL from some SDK): unusable, but not a reason to
          // refuse the other spans of the request.
          value.kind = utf8(field.bytes) ? Value::Kind::kString : Value::Kind::kOther;
          if (value.kind == Value::Kind::kString) value.text = field.bytes;
          break;
        case 2:
          if (field.type != kVarint) break;
          value = {};
          value.kind = Value::Kind::kBool;
          value.boolean = field.value != 0;
          break;
        case 3:
          if (field.type != kVarint) break;
          value = {};
          value.kind = Value::Kind::kInt;
          value.integer = field.as_int64();
          break;
        case 4:
          if (field.type != kFixed64) break;
          value = {};
          value.kind = Value::Kind::kDouble;
          value.number = field.as_double();
          break;
        case 5:  // ArrayValue: values = 1 (AnyValue)
        case 6:  // KeyValueList: values = 1 (KeyValue)
          if (field.type != kLen) break;
          if (!nested(field.bytes, field.number == 6, depth)) return false;
          value = {};
          value.kind = Value::Kind::kOther;
          break;
        case 7:
          if (field.type != kLen) break;
          value = {};
          value.kind = Value::Kind::kBytes;
          value.text = field.bytes;
          break;
        default:
          break;
      }
    }
    return done(reader);
  }

  // The model keeps arrays and kvlists as kOther, but their content is still checked (and the
  // nesting bounded), as a protobuf library would.
  bool nested(std::string_view bytes, bool kvlist, int depth) {
    Reader reader(bytes);
    Field field;
    std::size_t index = 0;
    while (reader.next(field)) {
      if (!is(field, 1, kLen)) continue;
      Scope scope(path_, kvlist ? "kvlist_value.values" : "array_value.values", index++);
      if (kvlist) {
        KeyValue kv;
        if (!key_value(field.bytes, kv, depth + 1)) return false;
      } else {
        Value inner;
        if (!any_value(field.bytes, inner, depth + 1)) return false;
      }
    }
    return done(reader);
  }

  // resource.v1.Resource: attributes = 1.
  bool resource(std::string_view bytes, std::vector<KeyValue>& out) {
    Scope scope(path_, "resource");
    out.reserve(out.size() + std::min<std::size_t>(pb::count_fields(bytes, 1, kLen), 4096));
    Reader reader(bytes);
    Field field;
    std::size_t index = 0;
    while (reader.next(field)) {
      if (is(field, 1, kLen) && !attribute(field.bytes, out, index++)) return false;
    }
    return done(reader);
  }

  // ---- trace.v1 ----------------------------------------------------------------------------

  // ExportTraceServiceRequest: resource_spans = 1.
  bool traces(std::string_view body, TracesRequest& request) {
    request.resources.reserve(std::min<std::size_t>(pb::count_fields(body, 1, kLen), 4096));
    Reader reader(body);
    Field field;
    while (reader.next(field)) {
      if (!is(field, 1, kLen)) continue;
      Scope scope(path_, "resource_spans", request.resources.size());
      if (!resource_spans(field.bytes, request.resources.emplace_back())) return false;
      request.span_count += request.resources.back().spans.size();
    }
    return done(reader);
  }

  // ResourceSpans: resource = 1, scope_spans = 2 (ScopeSpans: scope = 1, spans = 2).
  bool resource_spans(std::string_view bytes, ResourceSpans& out) {
    std::size_t spans = 0;
    {
      Reader reader(bytes);
      Field field;
      while (reader.next(field))
        if (is(field, 2, kLen)) spans += pb::count_fields(field.bytes, 2, kLen);
    }
    out.spans.reserve(std::min<std::size_t>(spans, 65536));  // no more before count_item agrees
    Reader reader(bytes);
    Field field;
    std::size_t scope_index = 0;
    while (reader.next(field)) {
      if (is(field, 1, kLen)) {
        if (!resource(field.bytes, out.resource)) return false;
      } else if (is(field, 2, kLen)) {
        Scope scope(path_, "scope_spans", scope_index++);
        Reader inner(field.bytes);
        Field span_field;
        std::size_t span_index = 0;
        while (inner.next(span_field)) {
          if (!is(span_field, 2, kLen)) continue;
          Scope span_scope(path_, "spans", span_index++);
          if (!count_item() || !span(span_field.bytes, out.spans.emplace_back())) return false;
        }
        if (!done(inner)) return false;
      }
    }
    return done(reader);
  }

  // Span: trace_id = 1, span_id = 2, name = 5, start_time_unix_nano = 7 (fixed64),
  // end_time_unix_nano = 8 (fixed64), attributes = 9, status = 15 (Status: code = 3).
  bool span(std::string_view bytes, Span& out) {
    out.attributes.reserve(std::min<std::size_t>(pb::count_fields(bytes, 9, kLen), 4096));
    Reader reader(bytes);
    Field field;
    std::size_t attribute_index = 0;
    while (reader.next(field)) {
      switch (field.number) {
        case 1:
          if (field.type == kLen && !id(field.bytes, "trace_id", out.trace_id, out.has_trace_id))
            return false;
          break;
        case 2:
          if (field.type == kLen && !id(field.bytes, "span_id", out.span_id, out.has_span_id))
            return false;
          break;
        case 5:
          if (field.type != kLen) break;
          out.name = utf8(field.bytes) ? field.bytes : std::string_view();
          break;
        case 7:
          if (field.type == kFixed64) out.start_time_unix_nano = field.value;
          break;
        case 8:
          if (field.type == kFixed64) out.end_time_unix_nano = field.value;
          break;
        case 9:
          if (field.type == kLen && !attribute(field.bytes, out.attributes, attribute_index++))
            return false;
          break;
        case 15:
          if (field.type == kLen && !status(field.bytes, out.status_code)) return false;
          break;
        default:
          break;
      }
    }
    return done(reader);
  }

  bool status(std::string_view bytes, std::int32_t& code) {
    Scope scope(path_, "status");
    Reader reader(bytes);
    Field field;
    while (reader.next(field))
      if (is(field, 3, kVarint)) code = static_cast<std::int32_t>(field.value);  // enum: int32
    return done(reader);
  }

  // Empty is "not set"; all zeros is the spec's invalid id, also "not set"; other lengths are
  // rejected (the Collector's pdata does the same).
  template <std::size_t N>
  bool id(std::string_view bytes, const char* name, std::array<std::uint8_t, N>& out, bool& has) {
    if (bytes.empty()) {
      has = false;
      return true;
    }
    if (bytes.size() != N)
      return fail(std::string(name) + " is " + std::to_string(bytes.size()) + " bytes, want " +
                  std::to_string(N));
    std::memcpy(out.data(), bytes.data(), N);
    has = false;
    for (std::uint8_t byte : out) has = has || byte != 0;
    return true;
  }

  // ---- metrics.v1 --------------------------------------------------------------------------

  // ExportMetricsServiceRequest: resource_metrics = 1.
  bool metrics(std::string_view body, MetricsRequest& request) {
    request.resources.reserve(std::min<std::size_t>(pb::count_fields(body, 1, kLen), 4096));
    Reader reader(body);
    Field field;
    while (reader.next(field)) {
      if (!is(field, 1, kLen)) continue;
      Scope scope(path_, "resource_metrics", request.resources.size());
      if (!resource_metrics(field.bytes, request.resources.emplace_back(),
                            request.data_point_count))
        return false;
    }
    return done(reader);
  }

  // ResourceMetrics: resource = 1, scope_metrics = 2 (ScopeMetrics: scope = 1, metrics = 2).
  bool resource_metrics(std::string_view bytes, ResourceMetrics& out, std::size_t& points) {
    std::size_t metrics = 0;
    {
      Reader reader(bytes);
      Field field;
      while (reader.next(field))
        if (is(field, 2, kLen)) metrics += pb::count_fields(field.bytes, 2, kLen);
    }
    out.metrics.reserve(std::min<std::size_t>(metrics, 65536));
    Reader reader(bytes);
    Field field;
    std::size_t scope_index = 0;
    while (reader.next(field)) {
      if (is(field, 1, kLen)) {
        if (!resource(field.bytes, out.resource)) return false;
      } else if (is(field, 2, kLen)) {
        Scope scope(path_, "scope_metrics", scope_index++);
        Reader inner(field.bytes);
        Field metric_field;
        std::size_t metric_index = 0;
        while (inner.next(metric_field)) {
          if (!is(metric_field, 2, kLen)) continue;
          Scope metric_scope(path_, "metrics", metric_index++);
          if (!metric(metric_field.bytes, out.metrics.emplace_back(), points)) return false;
        }
        if (!done(inner)) return false;
      }
    }
    return done(reader);
  }

  // Metric: name = 1, and the oneof data: gauge = 5, sum = 7, histogram = 9,
  // exponential_histogram = 10, summary = 11.
  bool metric(std::string_view bytes, Metric& out, std::size_t& total_points) {
    std::size_t points = 0;        // of the data field that wins the oneof
    std::uint32_t data_field = 0;  // its field number
    Reader reader(bytes);
    Field field;
    while (reader.next(field)) {
      if (field.type != kLen) continue;
      Metric::Kind kind;
      const char* name;
      switch (field.number) {
        case 1:
          out.name = utf8(field.bytes) ? field.bytes : std::string_view();
          continue;
        case 5:
          kind = Metric::Kind::kGauge, name = "gauge";
          break;
        case 7:
          kind = Metric::Kind::kSum, name = "sum";
          break;
        case 9:
          kind = Metric::Kind::kHistogram, name = "histogram";
          break;
        case 10:
          kind = Metric::Kind::kExponentialHistogram, name = "exponential_histogram";
          break;
        case 11:
          kind = Metric::Kind::kOther, name = "summary";
          break;
        default:
          continue;
      }
      // Another member of the oneof replaces the data; the same one again merges into it.
      if (field.number != data_field) {
        data_field = field.number;
        out.kind = kind;
        out.temporality = 0;
        out.monotonic = false;
        out.points.clear();
        points = 0;
      }
      Scope scope(path_, name);
      if (!metric_data(field.bytes, field.number, out, points)) return false;
    }
    total_points += points;
    return done(reader);
  }

  // Gauge, Summary: data_points = 1 (counted only). Sum: data_points = 1 (NumberDataPoint),
  // aggregation_temporality = 2, is_monotonic = 3. Histogram and ExponentialHistogram:
  // data_points = 1, aggregation_temporality = 2.
  bool metric_data(std::string_view bytes, std::uint32_t number, Metric& out, std::size_t& points) {
    const bool decoded = number == 7 || number == 9 || number == 10;
    if (decoded)
      out.points.reserve(out.points.size() +
                         std::min<std::size_t>(pb::count_fields(bytes, 1, kLen), 4096));
    Reader reader(bytes);
    Field field;
    while (reader.next(field)) {
      if (is(field, 1, kLen)) {
        if (decoded) {
          Scope scope(path_, "data_points", points);
          if (!count_item()) return false;
          NumberPoint& point = out.points.emplace_back();
          const bool ok = number == 7   ? number_point(field.bytes, point)
                          : number == 9 ? histogram_point(field.bytes, point, 9)
                                        : histogram_point(field.bytes, point, 1);
          if (!ok) return false;
        }
        ++points;
      } else if (number != 5 && number != 11 && is(field, 2, kVarint)) {
        out.temporality = static_cast<std::int32_t>(field.value);
      } else if (number == 7 && is(field, 3, kVarint)) {
        out.monotonic = field.value != 0;
      }
    }
    return done(reader);
  }

  // NumberDataPoint: start_time_unix_nano = 2, time_unix_nano = 3 (fixed64), as_double = 4,
  // as_int = 6 (sfixed64), attributes = 7.
  bool number_point(std::string_view bytes, NumberPoint& point) {
    point.attributes.reserve(std::min<std::size_t>(pb::count_fields(bytes, 7, kLen), 4096));
    Reader reader(bytes);
    Field field;
    std::size_t attribute_index = 0;
    while (reader.next(field)) {
      if (is(field, 7, kLen)) {
        if (!attribute(field.bytes, point.attributes, attribute_index++)) return false;
      } else if (field.type != kFixed64) {
        continue;
      } else if (field.number == 2) {
        point.start_time_unix_nano = field.value;
      } else if (field.number == 3) {
        point.time_unix_nano = field.value;
      } else if (field.number == 4) {
        point.value = field.as_double();
        point.has_value = true;
      } else if (field.number == 6) {
        point.value = static_cast<double>(field.as_int64());
        point.has_value = true;
      }
    }
    return done(reader);
  }

  // HistogramDataPoint: attributes = 9; ExponentialHistogramDataPoint: attributes = 1. Both:
  // start_time_unix_nano = 2, time_unix_nano = 3, count = 4 (fixed64), optional sum = 5 (double).
  bool histogram_point(std::string_view bytes, NumberPoint& point, std::uint32_t attributes) {
    point.attributes.reserve(
        std::min<std::size_t>(pb::count_fields(bytes, attributes, kLen), 4096));
    Reader reader(bytes);
    Field field;
    std::size_t attribute_index = 0;
    while (reader.next(field)) {
      if (is(field, attributes, kLen)) {
        if (!attribute(field.bytes, point.attributes, attribute_index++)) return false;
      } else if (field.type != kFixed64) {
        continue;
      } else if (field.number == 2) {
        point.start_time_unix_nano = field.value;
      } else if (field.number == 3) {
        point.time_unix_nano = field.value;
      } else if (field.number == 4) {
        point.count = field.value;
      } else if (field.number == 5) {
        point.value = field.as_double();
        point.has_value = true;
      }
    }
    return done(reader);
  }

 private:
  bool fail(std::string_view what) {
    error = path_.describe(what);
    return false;
  }
  bool done(const Reader& reader) { return !reader.failed() || fail(reader.error()); }
  std::size_t items_ = 0;
  bool count_item() {
    return ++items_ <= kMaxItemsPerRequest ||
           fail("more than " + std::to_string(kMaxItemsPerRequest) +
                " spans, attributes and data points in one request");
  }
  static bool utf8(std::string_view text) {
    return simdjson::validate_utf8(text.data(), text.size());
  }

  Path path_;
};

}  // namespace

Result<TracesRequest> decode_traces_protobuf(std::string_view body) {
  Decoder decoder;
  TracesRequest request;
  if (!decoder.traces(body, request)) return Error::permanent(std::move(decoder.error));
  return request;
}

Result<MetricsRequest> decode_metrics_protobuf(std::string_view body) {
  Decoder decoder;
  MetricsRequest request;
  if (!decoder.metrics(body, request)) return Error::permanent(std::move(decoder.error));
  return request;
}

}  // namespace telemetryd::otlp
