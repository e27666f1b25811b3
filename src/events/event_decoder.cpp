#include "events/event_decoder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

// The checks below mirror schemas/*.json keyword by keyword, and their tables list fields in the
// schema's order, so a schema change has one obvious place to land. The few deliberate
// differences from the schemas (impossible calendar dates, times outside system_clock's range,
// token counts above int64, what simdjson cannot parse) are pinned by known_differences() in
// tests/unit/event_decoder_test.cpp.

namespace telemetryd::events {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

constexpr const char* kInvalidJson = "invalid_json";
constexpr const char* kBadEnvelope = "bad_envelope";
constexpr const char* kUnknownType = "unknown_type";
constexpr const char* kMissingField = "missing_field";
constexpr const char* kWrongType = "wrong_type";
constexpr const char* kOutOfRange = "out_of_range";

bool fail(DecodeError& err, const char* reason, std::string detail) {
  err.reason = reason;
  err.detail = std::move(detail);
  return false;
}

// ---- date-time ------------------------------------------------------------------------------

enum class TimeParse { kOk, kMalformed, kImpossible };

// -1 unless s[pos, pos+n) is all ASCII digits ([0-9] in the schema patterns, never Unicode).
int digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return -1;
  int value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    value = value * 10 + (s[i] - '0');
  }
  return value;
}

// Matches the schemas' date-time patterns (`time`: Z only; `observed_at`: Z or ±HH:MM), then
// checks the calendar, which the patterns cannot (they accept 02-30). Second 60 is a leap second,
// allowed by RFC 3339 and the pattern; it simply counts as the next minute's :00.
TimeParse parse_time(std::string_view s, bool allow_offset, std::int64_t& epoch_ms) {
  const int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  const int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
      minute < 0 || minute > 59 || second < 0 || second > 60 || s[4] != '-' || s[7] != '-' ||
      s[10] != 'T' || s[13] != ':' || s[16] != ':') {
    return TimeParse::kMalformed;
  }
  std::size_t pos = 19;
  std::int64_t fraction_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    const std::size_t first = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (pos - first < 3) fraction_ms = fraction_ms * 10 + (s[pos] - '0');
      ++pos;
    }
    if (pos == first) return TimeParse::kMalformed;
    for (std::size_t n = pos - first; n < 3; ++n) fraction_ms *= 10;  // ".5" is 500 ms
  }
  std::int64_t offset_s = 0;
  const std::string_view zone = s.substr(pos);
  if (zone != "Z") {
    if (!allow_offset || zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':')
      return TimeParse::kMalformed;
    const int offset_h = digits(zone, 1, 2), offset_m = digits(zone, 4, 2);
    if (offset_h < 0 || offset_h > 23 || offset_m < 0 || offset_m > 59)
      return TimeParse::kMalformed;
    offset_s = (zone[0] == '+' ? 1 : -1) * (offset_h * 3600 + offset_m * 60);
  }
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return TimeParse::kImpossible;
  const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  epoch_ms = seconds * 1000 + fraction_ms;  // years 0000-9999 fit easily in int64 ms
  return TimeParse::kOk;
}

// system_clock counts nanoseconds in int64 (about 1678-2261); beyond that a time_point overflows.
bool to_time_point(std::int64_t epoch_ms, std::chrono::system_clock::time_point& out) {
  constexpr std::int64_t kMaxMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::duration::max())
                                      .count();
  if (epoch_ms > kMaxMs || epoch_ms < -kMaxMs) return false;
  out = std::chrono::system_clock::time_point{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds{epoch_ms})};
  return true;
}

// ---- envelope -------------------------------------------------------------------------------

}  // namespace

// The schema's `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`.
bool is_uuid_v7(std::string_view id) {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return id[14] == '7' && (id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
}

namespace {

// The schema's `^\S+$` is checked by Python's `re`, whose \S excludes every code point for which
// str.isspace() is true, not only ASCII space. These are those code points, as UTF-8 bytes
// (simdjson already validated the UTF-8, and a lead byte never occurs inside another character).
bool has_python_whitespace(std::string_view s) {
  const auto at = [&](std::size_t i) {
    return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned b = at(i);
    if ((b >= 0x09 && b <= 0x0d) || (b >= 0x1c && b <= 0x20)) return true;
    if (b == 0xc2 && (at(i + 1) == 0x85 || at(i + 1) == 0xa0)) return true;  // U+0085 U+00A0
    if (b == 0xe1 && at(i + 1) == 0x9a && at(i + 2) == 0x80) return true;    // U+1680
    if (b == 0xe2 && at(i + 1) == 0x80) {                                    // U+2000..U+202F
      const unsigned c = at(i + 2);
      if (c <= 0x8a || c == 0xa8 || c == 0xa9 || c == 0xaf) return true;
    }
    if (b == 0xe2 && at(i + 1) == 0x81 && at(i + 2) == 0x9f) return true;  // U+205F
    if (b == 0xe3 && at(i + 1) == 0x80 && at(i + 2) == 0x80) return true;  // U+3000
  }
  return false;
}

// A present envelope attribute that must be a string; `out` is untouched when absent.
enum class Found { kAbsent, kString, kOther };
Found envelope_string(object event, std::string_view key, std::string_view& out) {
  element value;
  if (event.at_key(key).get(value) != simdjson::SUCCESS) return Found::kAbsent;
  return value.get(out) == simdjson::SUCCESS ? Found::kString : Found::kOther;
}

bool required_string(object event, std::string_view key, std::string_view& out, DecodeError& err) {
  switch (envelope_string(event, key, out)) {
    case Found::kAbsent:
      return fail(err, kBadEnvelope, std::string(key) + " is required");
    case Found::kOther:
      return fail(err, kBadEnvelope, std::string(key) + " must be a string");
    case Found::kString:
      break;
  }
  return true;
}

bool check_envelope(object event, DecodedEvent& out, DecodeError& err) {
  std::string_view specversion, id, source, type, time, subject, text;
  if (event.at_key("specversion").error() == simdjson::NO_SUCH_FIELD)
    return fail(err, kBadEnvelope, "specversion is required");
  if (envelope_string(event, "specversion", specversion) != Found::kString || specversion != "1.0")
    return fail(err, kBadEnvelope, "specversion must be \"1.0\"");
  if (!required_string(event, "id", id, err)) return false;
  if (!is_uuid_v7(id)) return fail(err, kBadEnvelope, "id must be a lowercase UUIDv7");
  if (!required_string(event, "source", source, err)) return false;
  if (source.empty() || has_python_whitespace(source))
    return fail(err, kBadEnvelope, "source must be a non-empty string without whitespace");
  if (!required_string(event, "type", type, err)) return false;
  if (!required_string(event, "time", time, err)) return false;
  std::int64_t epoch_ms = 0;
  switch (parse_time(time, /*allow_offset=*/false, epoch_ms)) {
    case TimeParse::kMalformed:
      return fail(err, kBadEnvelope, "time must be an RFC 3339 UTC date-time ending in Z");
    case TimeParse::kImpossible:
      return fail(err, kBadEnvelope, "time is not a calendar date");
    case TimeParse::kOk:
      break;
  }
  if (!to_time_point(epoch_ms, out.time))
    return fail(err, kBadEnvelope, "time is outside the representable range");
  if (const Found f = envelope_string(event, "subject", subject);
      f == Found::kOther || (f == Found::kString && subject.empty()))
    return fail(err, kBadEnvelope, "subject must be a non-empty string");
  if (const Found f = envelope_string(event, "datacontenttype", text);
      f == Found::kOther || (f == Found::kString && text != "application/json"))
    return fail(err, kBadEnvelope, "datacontenttype must be \"application/json\"");
  if (const Found f = envelope_string(event, "dataschema", text);
      f == Found::kOther || (f == Found::kString && text.empty()))
    return fail(err, kBadEnvelope, "dataschema must be a non-empty string");
  element data;
  if (event.at_key("data").get(data) != simdjson::SUCCESS)
    return fail(err, kBadEnvelope, "data is required");
  if (!data.is_object()) return fail(err, kBadEnvelope, "data must be an object");
  out.id = id;
  out.source = source;
  out.type = type;
  out.subject = subject;
  return true;
}

// ---- data -----------------------------------------------------------------------------------

enum class FieldType {
  kString,  // every string in the schemas has minLength 1
  kInteger,
  kNumber,
  kBoolean,
  kEnum,
  kStringArray,
  kNonEmptyStringArray,
  kDateTime,  // observed_at: RFC 3339 with Z or an offset
  kObject,
  kObjectArray,
};
// minimum, exclusiveMinimum, minimum and maximum
enum class Range { kAny, kNonNegative, kPositive, kPercent, kPstate };

struct ObjectSpec;
struct FieldSpec {
  std::string_view name;
  FieldType type;
  bool required = false;
  Range range = Range::kAny;
  std::span<const std::string_view> choices = {};
  const ObjectSpec* object = nullptr;  // kObject, kObjectArray
};
struct ObjectSpec {
  std::span<const FieldSpec> fields;
};

// gpu.metrics.v1
constexpr std::string_view kCollectors[] = {"nvml", "synthetic", "dcgm", "nvidia-smi"};
constexpr FieldSpec kEccFields[] = {
    {.name = "mode_enabled", .type = FieldType::kBoolean},
    {.name = "volatile_corrected", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "volatile_uncorrected", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "aggregate_corrected", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "aggregate_uncorrected", .type = FieldType::kInteger, .range = Range::kNonNegative},
};
constexpr ObjectSpec kEcc{kEccFields};
constexpr FieldSpec kProcessFields[] = {
    {.name = "pid", .type = FieldType::kInteger, .required = true},
    {.name = "used_memory_bytes", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "utilization_sm_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "utilization_memory_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "container_id", .type = FieldType::kString},
    {.name = "pod_uid", .type = FieldType::kString},
};
constexpr ObjectSpec kProcess{kProcessFields};
constexpr FieldSpec kPcieFields[] = {
    {.name = "tx_bytes_per_second", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "rx_bytes_per_second", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "link_gen", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "link_width", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "link_gen_max", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "link_width_max", .type = FieldType::kInteger, .range = Range::kNonNegative},
};
constexpr ObjectSpec kPcie{kPcieFields};
constexpr FieldSpec kRemappedRowsFields[] = {
    {.name = "correctable", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "uncorrectable", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "pending", .type = FieldType::kBoolean},
    {.name = "failure", .type = FieldType::kBoolean},
};
constexpr ObjectSpec kRemappedRows{kRemappedRowsFields};
constexpr FieldSpec kXidFields[] = {
    {.name = "count", .type = FieldType::kInteger, .required = true, .range = Range::kNonNegative},
    {.name = "last", .type = FieldType::kInteger, .range = Range::kNonNegative},
};
constexpr ObjectSpec kXid{kXidFields};
constexpr FieldSpec kActivityFields[] = {
    {.name = "sm_active_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "sm_occupancy_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "tensor_active_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "dram_active_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "fp16_active_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "fp32_active_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "fp64_active_percent", .type = FieldType::kNumber, .range = Range::kPercent},
};
constexpr ObjectSpec kActivity{kActivityFields};
constexpr FieldSpec kMigFields[] = {
    {.name = "gpu_instance_id",
     .type = FieldType::kInteger,
     .required = true,
     .range = Range::kNonNegative},
    {.name = "activity", .type = FieldType::kObject, .required = true, .object = &kActivity},
};
constexpr ObjectSpec kMig{kMigFields};
constexpr FieldSpec kGpuMetricsFields[] = {
    {.name = "gpu_uuid", .type = FieldType::kString, .required = true},
    {.name = "host", .type = FieldType::kString, .required = true},
    {.name = "model_name", .type = FieldType::kString, .required = true},
    {.name = "collector", .type = FieldType::kEnum, .required = true, .choices = kCollectors},
    {.name = "gpu_index", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "interval_ms", .type = FieldType::kInteger, .range = Range::kPositive},
    {.name = "utilization_gpu_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "utilization_memory_percent", .type = FieldType::kNumber, .range = Range::kPercent},
    {.name = "memory_total_bytes", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "memory_used_bytes", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "power_draw_watts", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "power_limit_watts", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "energy_consumed_mj", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "temperature_gpu_celsius", .type = FieldType::kNumber},
    {.name = "clock_sm_mhz", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "clock_mem_mhz", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "ecc", .type = FieldType::kObject, .object = &kEcc},
    {.name = "processes", .type = FieldType::kObjectArray, .object = &kProcess},
    {.name = "memory_free_bytes", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "memory_reserved_bytes", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "temperature_memory_celsius", .type = FieldType::kNumber},
    {.name = "pstate", .type = FieldType::kInteger, .range = Range::kPstate},
    {.name = "clock_event_reasons_mask", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "clock_event_reasons", .type = FieldType::kNonEmptyStringArray},
    {.name = "pcie", .type = FieldType::kObject, .object = &kPcie},
    {.name = "remapped_rows", .type = FieldType::kObject, .object = &kRemappedRows},
    {.name = "xid", .type = FieldType::kObject, .object = &kXid},
    {.name = "activity", .type = FieldType::kObject, .object = &kActivity},
    {.name = "mig", .type = FieldType::kObjectArray, .object = &kMig},
};

// token.usage.v1
constexpr std::string_view kStatuses[] = {"success", "error", "cancelled"};
constexpr FieldSpec kUsageFields[] = {
    {.name = "input_tokens",
     .type = FieldType::kInteger,
     .required = true,
     .range = Range::kNonNegative},
    {.name = "output_tokens",
     .type = FieldType::kInteger,
     .required = true,
     .range = Range::kNonNegative},
    {.name = "cache_read_tokens", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "reasoning_tokens", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "total_tokens", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "cache_creation_tokens", .type = FieldType::kInteger, .range = Range::kNonNegative},
};
constexpr ObjectSpec kUsage{kUsageFields};
// What a scraped model server reported over the interval a scrape-sourced event covers.
constexpr FieldSpec kServingFields[] = {
    {.name = "server_kind", .type = FieldType::kString},
    {.name = "interval_ms", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "counter_reset", .type = FieldType::kBoolean},
    {.name = "kv_cache_usage_ratio", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "requests_running", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "requests_waiting", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "ttft_p50_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "ttft_p90_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "ttft_p99_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "itl_p50_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "itl_p90_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "itl_p99_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
};
constexpr ObjectSpec kServing{kServingFields};
constexpr std::string_view kSourceKinds[] = {"synthetic", "ingest", "otlp", "scrape"};
constexpr FieldSpec kTokenUsageFields[] = {
    {.name = "model", .type = FieldType::kString, .required = true},
    {.name = "tenant_id", .type = FieldType::kString, .required = true},
    {.name = "usage", .type = FieldType::kObject, .required = true, .object = &kUsage},
    {.name = "request_id", .type = FieldType::kString},
    {.name = "deployment", .type = FieldType::kString},
    {.name = "provider", .type = FieldType::kString},
    {.name = "user_id", .type = FieldType::kString},
    {.name = "tags", .type = FieldType::kStringArray},
    {.name = "duration_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "ttft_ms", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "status", .type = FieldType::kEnum, .choices = kStatuses},
    {.name = "gpu_uuids", .type = FieldType::kNonEmptyStringArray},
    {.name = "host", .type = FieldType::kString},
    {.name = "provider_cost_usd", .type = FieldType::kNumber, .range = Range::kNonNegative},
    {.name = "source_kind", .type = FieldType::kEnum, .choices = kSourceKinds},
    {.name = "serving", .type = FieldType::kObject, .object = &kServing},
};

// gpu.metadata.v1
constexpr FieldSpec kGpuMetadataFields[] = {
    {.name = "gpu_uuid", .type = FieldType::kString, .required = true},
    {.name = "host", .type = FieldType::kString, .required = true},
    {.name = "model_name", .type = FieldType::kString, .required = true},
    {.name = "observed_at", .type = FieldType::kDateTime, .required = true},
    {.name = "serial", .type = FieldType::kString},
    {.name = "vbios_version", .type = FieldType::kString},
    {.name = "driver_version", .type = FieldType::kString},
    {.name = "cuda_version", .type = FieldType::kString},
    {.name = "pci_bus_id", .type = FieldType::kString},
    {.name = "memory_total_bytes", .type = FieldType::kInteger, .range = Range::kNonNegative},
    {.name = "mig_mode", .type = FieldType::kBoolean},
};

std::string describe(const FieldSpec& spec) {
  const auto bound = [&](std::string noun) {
    switch (spec.range) {
      case Range::kNonNegative:
        return noun + " >= 0";
      case Range::kPositive:
        return noun + " > 0";
      case Range::kPercent:
        return noun + " between 0 and 100";
      case Range::kPstate:
        return noun + " between 0 and 15";
      case Range::kAny:
        break;
    }
    return noun;
  };
  switch (spec.type) {
    case FieldType::kString:
      return "a non-empty string";
    case FieldType::kInteger:
      return bound("an integer");
    case FieldType::kNumber:
      return bound("a number");
    case FieldType::kBoolean:
      return "a boolean";
    case FieldType::kEnum: {
      std::string text = "one of";
      for (std::size_t i = 0; i < spec.choices.size(); ++i)
        text += (i == 0 ? " " : ", ") + std::string(spec.choices[i]);
      return text;
    }
    case FieldType::kStringArray:
      return "an array of strings";
    case FieldType::kNonEmptyStringArray:
      return "an array of non-empty strings";
    case FieldType::kDateTime:
      return "an RFC 3339 date-time";
    case FieldType::kObject:
      return "an object";
    case FieldType::kObjectArray:
      return "an array of objects";
  }
  return "valid";
}

bool is_number(element value) {
  const element_type t = value.type();
  return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
}

// JSON Schema's "integer" is any number without a fraction: simdjson types 5.0 (and 1e3) as a
// double, yet the schema accepts it. simdjson rejects NaN and Infinity, so doubles are finite.
bool is_integer(element value) {
  double d = 0;
  if (value.type() != element_type::DOUBLE) return is_number(value);
  return value.get(d) == simdjson::SUCCESS && std::trunc(d) == d;
}

// The bounds are 0, 15 and 100, so comparing as double is exact: no integer rounds across them.
bool in_range(element value, Range range) {
  double d = 0;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  if (value.get(i) == simdjson::SUCCESS) {
    d = static_cast<double>(i);
  } else if (value.get(u) == simdjson::SUCCESS) {
    d = static_cast<double>(u);
  } else if (value.get(d) != simdjson::SUCCESS) {
    return false;
  }
  switch (range) {
    case Range::kNonNegative:
      return d >= 0;
    case Range::kPositive:
      return d > 0;
    case Range::kPercent:
      return d >= 0 && d <= 100;
    case Range::kPstate:
      return d >= 0 && d <= 15;
    case Range::kAny:
      break;
  }
  return true;
}

bool check_object(object obj, const std::string& path, const ObjectSpec& spec, DecodeError& err);

// `parent` and the field name make the path; it is only built for a message or a nested object,
// so a valid event costs no allocation here.
bool check_value(element value, const std::string& parent, const FieldSpec& spec,
                 DecodeError& err) {
  const auto path = [&] { return parent + "." + std::string(spec.name); };
  const auto wrong = [&](const char* reason) {
    return fail(err, reason, path() + " must be " + describe(spec));
  };
  std::string_view text;
  switch (spec.type) {
    case FieldType::kString:
      if (value.get(text) != simdjson::SUCCESS) return wrong(kWrongType);
      return !text.empty() || wrong(kOutOfRange);
    case FieldType::kInteger:
      if (!is_integer(value)) return wrong(kWrongType);
      return in_range(value, spec.range) || wrong(kOutOfRange);
    case FieldType::kNumber:
      if (!is_number(value)) return wrong(kWrongType);
      return in_range(value, spec.range) || wrong(kOutOfRange);
    case FieldType::kBoolean:
      return value.is_bool() || wrong(kWrongType);
    case FieldType::kEnum:
      // `enum` has no `type`: a non-string is just another value outside the set.
      return (value.get(text) == simdjson::SUCCESS &&
              std::find(spec.choices.begin(), spec.choices.end(), text) != spec.choices.end()) ||
             wrong(kOutOfRange);
    case FieldType::kStringArray:
    case FieldType::kNonEmptyStringArray: {
      array items;
      if (value.get(items) != simdjson::SUCCESS) return wrong(kWrongType);
      std::size_t index = 0;
      for (element item : items) {
        if (item.get(text) != simdjson::SUCCESS) return wrong(kWrongType);
        if (text.empty() && spec.type == FieldType::kNonEmptyStringArray)
          return fail(err, kOutOfRange,
                      path() + "[" + std::to_string(index) + "] must not be empty");
        ++index;
      }
      return true;
    }
    case FieldType::kDateTime: {
      std::int64_t epoch_ms = 0;
      if (value.get(text) != simdjson::SUCCESS) return wrong(kWrongType);
      switch (parse_time(text, /*allow_offset=*/true, epoch_ms)) {
        case TimeParse::kMalformed:
          return wrong(kWrongType);
        case TimeParse::kImpossible:
          return fail(err, kOutOfRange, path() + " is not a calendar date");
        case TimeParse::kOk:
          break;
      }
      return true;
    }
    case FieldType::kObject: {
      object nested;
      if (value.get(nested) != simdjson::SUCCESS) return wrong(kWrongType);
      return check_object(nested, path(), *spec.object, err);
    }
    case FieldType::kObjectArray: {
      array items;
      if (value.get(items) != simdjson::SUCCESS) return wrong(kWrongType);
      std::size_t index = 0;
      for (element item : items) {
        object nested;
        const std::string item_path = path() + "[" + std::to_string(index++) + "]";
        if (item.get(nested) != simdjson::SUCCESS)
          return fail(err, kWrongType, item_path + " must be an object");
        if (!check_object(nested, item_path, *spec.object, err)) return false;
      }
      return true;
    }
  }
  return true;
}

// Fields the spec does not name are ignored, as the schemas allow.
bool check_object(object obj, const std::string& path, const ObjectSpec& spec, DecodeError& err) {
  for (const FieldSpec& field : spec.fields) {
    element value;
    if (obj.at_key(field.name).get(value) != simdjson::SUCCESS) {
      if (field.required)
        return fail(err, kMissingField, path + "." + std::string(field.name) + " is required");
      continue;
    }
    if (!check_value(value, path, field, err)) return false;
  }
  return true;
}

// ---- JSON-level checks ----------------------------------------------------------------------

// simdjson keeps duplicate keys (at_key finds the first); the schema validator rejects any
// document with one, at any depth. Small objects are compared pairwise to avoid allocating.
bool has_duplicate_key(element value) {
  array items;
  if (value.get(items) == simdjson::SUCCESS) {
    for (element item : items)
      if (has_duplicate_key(item)) return true;
    return false;
  }
  object obj;
  if (value.get(obj) != simdjson::SUCCESS) return false;
  if (obj.size() <= 16) {
    for (auto it = obj.begin(); it != obj.end(); ++it)
      for (auto prior = obj.begin(); prior != it; ++prior)
        if (prior.key() == it.key()) return true;
  } else {
    std::vector<std::string_view> keys;
    keys.reserve(obj.size());
    for (auto field : obj) keys.push_back(field.key);
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) return true;
  }
  for (auto field : obj)
    if (has_duplicate_key(field.value)) return true;
  return false;
}

std::string string_at(object obj, std::string_view key) {
  std::string_view text;
  if (obj.at_key(key).get(text) != simdjson::SUCCESS) return {};
  return std::string(text);
}

// A token count the schema accepts (integer >= 0) but DecodedEvent's int64 cannot hold fails.
bool token_count(object usage, std::string_view key, std::int64_t& out, DecodeError& err) {
  element value;
  std::uint64_t u = 0;
  double d = 0;
  if (usage.at_key(key).get(value) != simdjson::SUCCESS)
    return fail(err, kMissingField, "data.usage." + std::string(key) + " is required");
  if (value.get(out) == simdjson::SUCCESS) return true;
  if (value.get(u) == simdjson::SUCCESS && u <= std::numeric_limits<std::int64_t>::max()) {
    out = static_cast<std::int64_t>(u);
    return true;
  }
  if (value.get(d) == simdjson::SUCCESS && d < 9223372036854775808.0) {  // 2^63, exact
    out = static_cast<std::int64_t>(d);
    return true;
  }
  return fail(err, kOutOfRange, "data.usage." + std::string(key) + " does not fit in 64 bits");
}

bool extract(object data, DecodedEvent& out, DecodeError& err) {
  if (out.kind != EventKind::kTokenUsage) {
    out.gpu_uuid = string_at(data, "gpu_uuid");
    out.host = string_at(data, "host");
    out.model_name = string_at(data, "model_name");
    return true;
  }
  out.model = string_at(data, "model");
  out.deployment = string_at(data, "deployment");
  out.host = string_at(data, "host");
  out.tenant_id = string_at(data, "tenant_id");
  array uuids;
  if (data.at_key("gpu_uuids").get(uuids) == simdjson::SUCCESS) {
    for (element item : uuids) {
      std::string_view text;
      if (item.get(text) == simdjson::SUCCESS) out.gpu_uuids.emplace_back(text);
    }
  }
  object usage;
  if (data.at_key("usage").get(usage) != simdjson::SUCCESS)
    return fail(err, kMissingField, "data.usage is required");
  return token_count(usage, "input_tokens", out.input_tokens, err) &&
         token_count(usage, "output_tokens", out.output_tokens, err);
}

}  // namespace

bool parse_rfc3339(std::string_view text, std::chrono::system_clock::time_point& out) {
  std::int64_t epoch_ms = 0;
  return parse_time(text, /*allow_offset=*/true, epoch_ms) == TimeParse::kOk &&
         to_time_point(epoch_ms, out);
}

DecodeResult decode_event(std::string_view bytes, simdjson::dom::parser& parser) {
  element root;
  if (const auto code = parser.parse(bytes.data(), bytes.size()).get(root); code)
    return DecodeError{kInvalidJson, std::string("not JSON: ") + simdjson::error_message(code)};
  object event;
  if (root.get(event) != simdjson::SUCCESS)
    return DecodeError{kInvalidJson, "the event must be a JSON object"};
  if (has_duplicate_key(root)) return DecodeError{kInvalidJson, "an object has a duplicate key"};

  DecodedEvent out;
  DecodeError err;
  if (!check_envelope(event, out, err)) return err;
  const ObjectSpec* spec = nullptr;
  static constexpr ObjectSpec kGpuMetrics{kGpuMetricsFields};
  static constexpr ObjectSpec kTokenUsage{kTokenUsageFields};
  static constexpr ObjectSpec kGpuMetadata{kGpuMetadataFields};
  if (out.type == "io.telemetryd.gpu.metrics.v1") {
    out.kind = EventKind::kGpuMetrics;
    spec = &kGpuMetrics;
  } else if (out.type == "io.telemetryd.token.usage.v1") {
    out.kind = EventKind::kTokenUsage;
    spec = &kTokenUsage;
  } else if (out.type == "io.telemetryd.gpu.metadata.v1") {
    out.kind = EventKind::kGpuMetadata;
    spec = &kGpuMetadata;
  } else {
    // Cut, as a producer controls it and it lands in logs; on a character boundary, so the
    // detail stays valid UTF-8 (simdjson validated the whole type).
    std::size_t cut = std::min<std::size_t>(out.type.size(), 100);
    while (cut < out.type.size() && (static_cast<unsigned char>(out.type[cut]) & 0xc0) == 0x80)
      --cut;
    return DecodeError{kUnknownType, "type " + out.type.substr(0, cut) + " is not a known type"};
  }
  object data;
  element data_element;
  if (event.at_key("data").get(data_element) != simdjson::SUCCESS ||
      data_element.get(data) != simdjson::SUCCESS)
    return DecodeError{kBadEnvelope, "data must be an object"};
  if (!check_object(data, "data", *spec, err) || !extract(data, out, err)) return err;
  out.data_json = simdjson::minify(data_element);
  return out;
}

}  // namespace telemetryd::events
