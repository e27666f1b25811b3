// OTLP/JSON decoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): the
// proto3 JSON mapping of the same messages as otlp_protobuf.cpp, with OTLP's changes:
//  - keys are lowerCamelCase field names only; unknown keys are ignored;
//  - traceId and spanId are hex strings (32 and 16 digits), not base64; bytesValue is base64;
//  - int64, uint64 and fixed64 may be JSON numbers or decimal strings ("811");
//  - enums are integers (their names, "STATUS_CODE_ERROR", are accepted too).
// null stands for "not set" everywhere, as proto3 JSON says. A value of the wrong JSON type is an
// error naming its place ("resourceSpans[0].scopeSpans[0].spans[2].traceId: ...").

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "otlp/decode_support.hpp"
#include "otlp/otlp_decode.hpp"

namespace telemetryd::otlp {
namespace {

using detail::Path;
using detail::Scope;
using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

constexpr double kTwoTo63 = 9223372036854775808.0;
constexpr double kTwoTo64 = 18446744073709551616.0;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int base64_digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // standard and URL-safe alphabets, as proto3 JSON allows
  if (c == '/' || c == '_') return 63;
  return -1;
}

// Decodes base64 `text` over itself (the decoded bytes are never longer and each is written
// behind the digits still to be read); padding is optional. Returns the decoded length, or -1.
std::ptrdiff_t base64_in_place(char* text, std::size_t size) {
  while (size > 0 && text[size - 1] == '=') --size;
  if (size % 4 == 1) return -1;
  std::size_t out = 0;
  std::uint32_t bits = 0;
  int count = 0;
  for (std::size_t i = 0; i < size; ++i) {
    const int digit = base64_digit(text[i]);
    if (digit < 0) return -1;
    bits = (bits << 6) | static_cast<std::uint32_t>(digit);
    count += 6;
    if (count >= 8) {
      count -= 8;
      text[out++] = static_cast<char>((bits >> count) & 0xff);
    }
  }
  return static_cast<std::ptrdiff_t>(out);
}

struct EnumName {
  std::string_view name;
  std::int32_t value;
};
constexpr EnumName kStatusCodes[] = {
    {"STATUS_CODE_UNSET", 0}, {"STATUS_CODE_OK", 1}, {"STATUS_CODE_ERROR", 2}};
constexpr EnumName kTemporalities[] = {{"AGGREGATION_TEMPORALITY_UNSPECIFIED", 0},
                                       {"AGGREGATION_TEMPORALITY_DELTA", 1},
                                       {"AGGREGATION_TEMPORALITY_CUMULATIVE", 2}};

class Decoder {
 public:
  std::string error;

  // ---- scalars -----------------------------------------------------------------------------

  bool string(element value, std::string_view key, std::string_view& out) {
    if (value.get(out) == simdjson::SUCCESS) return true;
    return wrong(key, "a string");
  }

  bool boolean(element value, std::string_view key, bool& out) {
    if (value.get(out) == simdjson::SUCCESS) return true;
    return wrong(key, "true or false");
  }

  // uint64/fixed64: a non-negative integer, as a number or a decimal string.
  bool uint64(element value, std::string_view key, std::uint64_t& out) {
    switch (value.type()) {
      case element_type::UINT64:
        return value.get(out) == simdjson::SUCCESS;
      case element_type::INT64: {
        std::int64_t i = 0;
        if (value.get(i) != simdjson::SUCCESS || i < 0) break;
        out = static_cast<std::uint64_t>(i);
        return true;
      }
      case element_type::DOUBLE: {  // 1e9 is an integer too
        double d = 0;
        if (value.get(d) != simdjson::SUCCESS || !(d >= 0 && d < kTwoTo64) || std::trunc(d) != d)
          break;
        out = static_cast<std::uint64_t>(d);
        return true;
      }
      case element_type::STRING: {
        std::string_view text;
        if (value.get(text) != simdjson::SUCCESS || !decimal(text, out)) break;
        return true;
      }
      default:
        break;
    }
    return wrong(key, "an unsigned 64-bit integer (number or decimal string)");
  }

  bool int64(element value, std::string_view key, std::int64_t& out) {
    switch (value.type()) {
      case element_type::INT64:
        return value.get(out) == simdjson::SUCCESS;
      case element_type::UINT64:
        break;  // simdjson uses UINT64 only above INT64_MAX
      case element_type::DOUBLE: {
        double d = 0;
        if (value.get(d) != simdjson::SUCCESS || !(d >= -kTwoTo63 && d < kTwoTo63) ||
            std::trunc(d) != d)
          break;
        out = static_cast<std::int64_t>(d);
        return true;
      }
      case element_type::STRING: {
        std::string_view text;
        if (value.get(text) != simdjson::SUCCESS || !decimal(text, out)) break;
        return true;
      }
      default:
        break;
    }
    return wrong(key, "a 64-bit integer (number or decimal string)");
  }

  // A number, or (proto3 JSON) "NaN", "Infinity", "-Infinity" or a number in a string.
  bool number(element value, std::string_view key, double& out) {
    switch (value.type()) {
      case element_type::DOUBLE:
      case element_type::INT64:
      case element_type::UINT64:
        return value.get(out) == simdjson::SUCCESS;
      case element_type::STRING: {
        std::string_view text;
        if (value.get(text) != simdjson::SUCCESS) break;
        if (text == "NaN") {
          out = std::nan("");
          return true;
        }
        if (text == "Infinity" || text == "-Infinity") {
          out = text[0] == '-' ? -HUGE_VAL : HUGE_VAL;
          return true;
        }
        const char* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data(), end, out);
        if (ec != std::errc() || ptr != end || text.empty()) break;
        return true;
      }
      default:
        break;
    }
    return wrong(key, "a number");
  }

  template <std::size_t N>
  bool enumeration(element value, std::string_view key, const EnumName (&names)[N],
                   std::int32_t& out) {
    std::int64_t i = 0;
    std::string_view text;
    if (value.get(i) == simdjson::SUCCESS) {
      if (i >= INT32_MIN && i <= INT32_MAX) {  // proto3 enums are open: any int32 is kept
        out = static_cast<std::int32_t>(i);
        return true;
      }
    } else if (value.get(text) == simdjson::SUCCESS) {
      for (const EnumName& entry : names) {
        if (entry.name == text) {
          out = entry.value;
          return true;
        }
      }
    }
    return wrong(key, "an enum value (integer or name)");
  }

  // Hex, 2*N digits; "" is not set, all zeros too (the spec's invalid id).
  template <std::size_t N>
  bool id(element value, std::string_view key, std::array<std::uint8_t, N>& out, bool& has) {
    std::string_view text;
    if (value.get(text) != simdjson::SUCCESS) return wrong(key, "a hex string");
    has = false;
    if (text.empty()) return true;
    if (text.size() != 2 * N)
      return fail_at(key, "want " + std::to_string(2 * N) + " hex digits, got " +
                              std::to_string(text.size()) + " characters");
    for (std::size_t i = 0; i < N; ++i) {
      const int high = hex_digit(text[2 * i]), low = hex_digit(text[2 * i + 1]);
      if (high < 0 || low < 0) return fail_at(key, "not a hex string");
      out[i] = static_cast<std::uint8_t>(high << 4 | low);
      has = has || out[i] != 0;
    }
    return true;
  }

  // ---- common.v1 ---------------------------------------------------------------------------

  // [{"key": "...", "value": {AnyValue}}]; content attributes are checked, not kept.
  bool attributes(element value, std::vector<KeyValue>& out) {
    array items;
    if (value.get(items) != simdjson::SUCCESS) return wrong("attributes", "an array");
    out.reserve(out.size() + std::min<std::size_t>(items.size(), 4096));
    std::size_t index = 0;
    for (element item : items) {
      Scope scope(path_, "attributes", index++);
      KeyValue kv;
      if (!count_item() || !key_value(item, kv, 1)) return false;
      if (!is_content_attribute(kv.key)) out.push_back(kv);
    }
    return true;
  }

  bool key_value(element item, KeyValue& kv, int depth) {
    object obj;
    if (item.get(obj) != simdjson::SUCCESS) return fail("want an object");
    for (auto field : obj) {
      if (field.value.is_null()) continue;
      if (field.key == "key") {
        if (!string(field.value, field.key, kv.key)) return false;
      } else if (field.key == "value") {
        Scope scope(path_, "value");
        if (!any_value(field.value, kv.value, depth)) return false;
      }
    }
    return true;
  }

  // {"stringValue": ...} or boolValue, intValue, doubleValue, bytesValue, arrayValue
  // ({"values": [AnyValue]}), kvlistValue ({"values": [KeyValue]}); {} is empty.
  bool any_value(element value, Value& out, int depth) {
    if (depth > kMaxValueDepth)
      return fail("attribute value nested deeper than " + std::to_string(kMaxValueDepth));
    object obj;
    if (value.get(obj) != simdjson::SUCCESS) return fail("want an object");
    for (auto field : obj) {
      const std::string_view key = field.key;
      if (field.value.is_null()) continue;
      Value v;
      if (key == "stringValue") {
        v.kind = Value::Kind::kString;
        if (!string(field.value, key, v.text)) return false;
      } else if (key == "boolValue") {
        v.kind = Value::Kind::kBool;
        if (!boolean(field.value, key, v.boolean)) return false;
      } else if (key == "intValue") {
        v.kind = Value::Kind::kInt;
        if (!int64(field.value, key, v.integer)) return false;
      } else if (key == "doubleValue") {
        v.kind = Value::Kind::kDouble;
        if (!number(field.value, key, v.number)) return false;
      } else if (key == "bytesValue") {
        v.kind = Value::Kind::kBytes;
        if (!string(field.value, key, v.text)) return false;
        // The string lives in the parser's own (writable) string buffer: decode it there.
        const std::ptrdiff_t size =
            base64_in_place(const_cast<char*>(v.text.data()), v.text.size());
        if (size < 0) return fail_at(key, "not base64");
        v.text = v.text.substr(0, static_cast<std::size_t>(size));
      } else if (key == "arrayValue" || key == "kvlistValue") {
        v.kind = Value::Kind::kOther;
        Scope scope(path_, key);
        if (!nested(field.value, key == "kvlistValue", depth)) return false;
      } else {
        continue;
      }
      out = v;
    }
    return true;
  }

  bool nested(element value, bool kvlist, int depth) {
    object obj;
    if (value.get(obj) != simdjson::SUCCESS) return fail("want an object");
    element values;
    if (obj.at_key("values").get(values) != simdjson::SUCCESS || values.is_null()) return true;
    array items;
    if (values.get(items) != simdjson::SUCCESS) return wrong("values", "an array");
    std::size_t index = 0;
    for (element item : items) {
      Scope scope(path_, "values", index++);
      if (kvlist) {
        KeyValue kv;
        if (!key_value(item, kv, depth + 1)) return false;
      } else {
        Value inner;
        if (!any_value(item, inner, depth + 1)) return false;
      }
    }
    return true;
  }

  // {"attributes": [...]}
  bool resource(element value, std::vector<KeyValue>& out) {
    Scope scope(path_, "resource");
    object obj;
    if (value.get(obj) != simdjson::SUCCESS) return fail("want an object");
    element attrs;
    if (obj.at_key("attributes").get(attrs) != simdjson::SUCCESS || attrs.is_null()) return true;
    return attributes(attrs, out);
  }

  // Calls `each(item, index)` for the items of the array `value` (null: none).
  template <typename Each>
  bool for_each(element value, std::string_view key, Each&& each) {
    if (value.is_null()) return true;
    array items;
    if (value.get(items) != simdjson::SUCCESS) return wrong(key, "an array");
    std::size_t index = 0;
    for (element item : items) {
      Scope scope(path_, key, index);
      if (!each(item, index++)) return false;
    }
    return true;
  }

  // The members of the object `value`, nulls skipped.
  bool members(element value, object& out) {
    return value.get(out) == simdjson::SUCCESS || fail("want an object");
  }

  // ---- traces ------------------------------------------------------------------------------

  bool traces(element root, TracesRequest& request) {
    object obj;
    if (!members(root, obj)) return false;
    for (auto field : obj) {
      if (field.key != "resourceSpans") continue;
      array items;
      if (field.value.get(items) == simdjson::SUCCESS)
        request.resources.reserve(request.resources.size() + items.size());
      if (!for_each(field.value, "resourceSpans", [&](element item, std::size_t) {
            ResourceSpans& rs = request.resources.emplace_back();
            if (!resource_spans(item, rs)) return false;
            request.span_count += rs.spans.size();
            return true;
          }))
        return false;
    }
    return true;
  }

  bool resource_spans(element value, ResourceSpans& out) {
    object obj;
    if (!members(value, obj)) return false;
    for (auto field : obj) {
      if (field.value.is_null()) continue;
      if (field.key == "resource") {
        if (!resource(field.value, out.resource)) return false;
      } else if (field.key == "scopeSpans") {
        if (!for_each(field.value, "scopeSpans", [&](element scope, std::size_t) {
              object scope_obj;
              if (!members(scope, scope_obj)) return false;
              element spans;
              if (scope_obj.at_key("spans").get(spans) != simdjson::SUCCESS) return true;
              array items;
              if (spans.get(items) == simdjson::SUCCESS)
                out.spans.reserve(out.spans.size() + std::min<std::size_t>(items.size(), 65536));
              return for_each(spans, "spans", [&](element item, std::size_t) {
                return count_item() && span(item, out.spans.emplace_back());
              });
            }))
          return false;
      }
    }
    return true;
  }

  bool span(element value, Span& out) {
    object obj;
    if (!members(value, obj)) return false;
    for (auto field : obj) {
      const std::string_view key = field.key;
      if (field.value.is_null()) continue;
      bool ok = true;
      if (key == "traceId") {
        ok = id(field.value, key, out.trace_id, out.has_trace_id);
      } else if (key == "spanId") {
        ok = id(field.value, key, out.span_id, out.has_span_id);
      } else if (key == "name") {
        ok = string(field.value, key, out.name);
      } else if (key == "startTimeUnixNano") {
        ok = uint64(field.value, key, out.start_time_unix_nano);
      } else if (key == "endTimeUnixNano") {
        ok = uint64(field.value, key, out.end_time_unix_nano);
      } else if (key == "attributes") {
        ok = attributes(field.value, out.attributes);
      } else if (key == "status") {
        Scope scope(path_, "status");
        object status;
        ok = members(field.value, status);
        element code;
        if (ok && status.at_key("code").get(code) == simdjson::SUCCESS && !code.is_null())
          ok = enumeration(code, "code", kStatusCodes, out.status_code);
      }
      if (!ok) return false;
    }
    return true;
  }

  // ---- metrics -----------------------------------------------------------------------------

  bool metrics(element root, MetricsRequest& request) {
    object obj;
    if (!members(root, obj)) return false;
    for (auto field : obj) {
      if (field.key != "resourceMetrics") continue;
      array items;
      if (field.value.get(items) == simdjson::SUCCESS)
        request.resources.reserve(request.resources.size() + items.size());
      if (!for_each(field.value, "resourceMetrics", [&](element item, std::size_t) {
            return resource_metrics(item, request.resources.emplace_back(),
                                    request.data_point_count);
          }))
        return false;
    }
    return true;
  }

  bool resource_metrics(element value, ResourceMetrics& out, std::size_t& points) {
    object obj;
    if (!members(value, obj)) return false;
    for (auto field : obj) {
      if (field.value.is_null()) continue;
      if (field.key == "resource") {
        if (!resource(field.value, out.resource)) return false;
      } else if (field.key == "scopeMetrics") {
        if (!for_each(field.value, "scopeMetrics", [&](element scope, std::size_t) {
              object scope_obj;
              if (!members(scope, scope_obj)) return false;
              element metrics;
              if (scope_obj.at_key("metrics").get(metrics) != simdjson::SUCCESS) return true;
              array items;
              if (metrics.get(items) == simdjson::SUCCESS)
                out.metrics.reserve(out.metrics.size() + items.size());
              return for_each(metrics, "metrics", [&](element item, std::size_t) {
                return metric(item, out.metrics.emplace_back(), points);
              });
            }))
          return false;
      }
    }
    return true;
  }

  bool metric(element value, Metric& out, std::size_t& total_points) {
    object obj;
    if (!members(value, obj)) return false;
    std::size_t points = 0;
    for (auto field : obj) {
      const std::string_view key = field.key;
      if (field.value.is_null()) continue;
      Metric::Kind kind;
      if (key == "name") {
        if (!string(field.value, key, out.name)) return false;
        continue;
      } else if (key == "gauge") {
        kind = Metric::Kind::kGauge;
      } else if (key == "sum") {
        kind = Metric::Kind::kSum;
      } else if (key == "histogram") {
        kind = Metric::Kind::kHistogram;
      } else if (key == "exponentialHistogram") {
        kind = Metric::Kind::kExponentialHistogram;
      } else if (key == "summary") {
        kind = Metric::Kind::kOther;
      } else {
        continue;
      }
      // One member of the oneof: a later one replaces an earlier one.
      out.kind = kind;
      out.temporality = 0;
      out.monotonic = false;
      out.points.clear();
      points = 0;
      Scope scope(path_, key);
      if (!metric_data(field.value, kind, key == "summary", out, points)) return false;
    }
    total_points += points;
    return true;
  }

  bool metric_data(element value, Metric::Kind kind, bool summary, Metric& out,
                   std::size_t& points) {
    object obj;
    if (!members(value, obj)) return false;
    const bool decoded = kind == Metric::Kind::kSum || kind == Metric::Kind::kHistogram ||
                         kind == Metric::Kind::kExponentialHistogram;
    for (auto field : obj) {
      const std::string_view key = field.key;
      if (field.value.is_null()) continue;
      if (key == "dataPoints") {
        array items;
        if (decoded && field.value.get(items) == simdjson::SUCCESS)
          out.points.reserve(out.points.size() + std::min<std::size_t>(items.size(), 4096));
        if (!for_each(field.value, "dataPoints", [&](element item, std::size_t) {
              ++points;
              if (!count_item()) return false;
              if (!decoded) {
                object ignored;
                return members(item, ignored);
              }
              return data_point(item, kind == Metric::Kind::kSum, out.points.emplace_back());
            }))
          return false;
      } else if (key == "aggregationTemporality" && kind != Metric::Kind::kGauge && !summary) {
        if (!enumeration(field.value, key, kTemporalities, out.temporality)) return false;
      } else if (key == "isMonotonic" && kind == Metric::Kind::kSum) {
        if (!boolean(field.value, key, out.monotonic)) return false;
      }
    }
    return true;
  }

  // NumberDataPoint (asDouble, asInt) or (Exponential)HistogramDataPoint (count, sum).
  bool data_point(element value, bool number_point, NumberPoint& point) {
    object obj;
    if (!members(value, obj)) return false;
    for (auto field : obj) {
      const std::string_view key = field.key;
      if (field.value.is_null()) continue;
      bool ok = true;
      if (key == "attributes") {
        ok = attributes(field.value, point.attributes);
      } else if (key == "startTimeUnixNano") {
        ok = uint64(field.value, key, point.start_time_unix_nano);
      } else if (key == "timeUnixNano") {
        ok = uint64(field.value, key, point.time_unix_nano);
      } else if (number_point && key == "asDouble") {
        ok = number(field.value, key, point.value);
        point.has_value = true;
      } else if (number_point && key == "asInt") {
        std::int64_t i = 0;
        ok = int64(field.value, key, i);
        point.value = static_cast<double>(i);
        point.has_value = true;
      } else if (!number_point && key == "count") {
        ok = uint64(field.value, key, point.count);
      } else if (!number_point && key == "sum") {
        ok = number(field.value, key, point.value);
        point.has_value = true;
      }
      if (!ok) return false;
    }
    return true;
  }

  bool fail(std::string_view what) {
    error = path_.describe(what);
    return false;
  }

 private:
  bool fail_at(std::string_view key, std::string_view what) {
    Scope scope(path_, key);
    return fail(what);
  }
  bool wrong(std::string_view key, std::string_view want) {
    return fail_at(key, "wrong type, want " + std::string(want));
  }

  template <typename Int>
  static bool decimal(std::string_view text, Int& out) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return !text.empty() && ec == std::errc() && ptr == end;
  }

  std::size_t items_ = 0;
  bool count_item() {
    return ++items_ <= kMaxItemsPerRequest ||
           fail("more than " + std::to_string(kMaxItemsPerRequest) +
                " spans, attributes and data points in one request");
  }

  Path path_;
};

template <typename Request, typename Decode>
Result<Request> decode(std::string_view body, simdjson::dom::parser& parser, Decode&& run) {
  Request request;
  if (body.empty()) return request;  // an empty export: nothing to do
  element root;
  if (const auto code = parser.parse(body.data(), body.size()).get(root); code)
    return Error::permanent(std::string("invalid JSON: ") + simdjson::error_message(code));
  Decoder decoder;
  if (!run(decoder, root, request)) return Error::permanent(std::move(decoder.error));
  return request;
}

}  // namespace

Result<TracesRequest> decode_traces_json(std::string_view body, simdjson::dom::parser& parser) {
  return decode<TracesRequest>(
      body, parser, [](Decoder& d, element root, TracesRequest& r) { return d.traces(root, r); });
}

Result<MetricsRequest> decode_metrics_json(std::string_view body, simdjson::dom::parser& parser) {
  return decode<MetricsRequest>(
      body, parser, [](Decoder& d, element root, MetricsRequest& r) { return d.metrics(root, r); });
}

}  // namespace telemetryd::otlp
