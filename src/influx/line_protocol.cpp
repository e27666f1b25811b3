#include "influx/line_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace telemetryd::influx {

using events::DecodedEvent;
using events::EventKind;

namespace {

// Field types come from the event contract, never from how a value happens to look in JSON:
// `utilization_memory_percent: 42` is a number, written as the float 42, so a later 42.5 does not
// hit InfluxDB's "field type conflict" (a field's type is fixed per shard once written).
constexpr std::array kGpuIntegerFields{"gpu_index",
                                       "interval_ms",
                                       "memory_total_bytes",
                                       "memory_used_bytes",
                                       "energy_consumed_mj",
                                       "clock_sm_mhz",
                                       "clock_mem_mhz",
                                       "memory_free_bytes",
                                       "memory_reserved_bytes",
                                       "pstate",
                                       "clock_event_reasons_mask"};
constexpr std::array kGpuFloatFields{"utilization_gpu_percent", "utilization_memory_percent",
                                     "power_draw_watts",        "power_limit_watts",
                                     "temperature_gpu_celsius", "temperature_memory_celsius"};
constexpr std::array kEccCounters{"volatile_corrected", "volatile_uncorrected",
                                  "aggregate_corrected", "aggregate_uncorrected"};
// Nested objects of scalars, flattened as <object>_<field>: integers, booleans, floats.
constexpr std::array kPcieIntegers{"tx_bytes_per_second", "rx_bytes_per_second", "link_gen",
                                   "link_width",          "link_gen_max",        "link_width_max"};
constexpr std::array kRemappedRowsIntegers{"correctable", "uncorrectable"};
constexpr std::array kRemappedRowsBooleans{"pending", "failure"};
constexpr std::array kXidIntegers{"count", "last"};
constexpr std::array kActivityFloats{
    "sm_active_percent",   "sm_occupancy_percent", "tensor_active_percent", "dram_active_percent",
    "fp16_active_percent", "fp32_active_percent",  "fp64_active_percent"};
constexpr std::array kUsageCounts{"input_tokens", "output_tokens", "cache_read_tokens",
                                  "reasoning_tokens", "total_tokens"};
constexpr std::array kUsageFloatFields{"duration_ms", "ttft_ms"};
constexpr std::array kUsageStringFields{"request_id", "user_id"};
// Optional low-cardinality identity of a usage event, besides model and tenant_id.
constexpr std::array kUsageOptionalTags{"deployment", "host", "provider", "status"};

void append_escaped(std::string& out, std::string_view text, std::string_view special) {
  for (const char c : text) {
    if (special.find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
}

void append_int(std::string& out, std::int64_t value) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

// Shortest round-trip form; a value without '.' or 'i' is still a float in line protocol.
void append_double(std::string& out, double value) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

std::uint64_t fnv1a64(std::string_view text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

// Builds "k=v,k=v" fields with the separators right; tags are collected first and sorted (the
// order InfluxDB stores them in, which saves it a sort per point).
class PointBuilder {
 public:
  void tag(std::string_view key, std::string_view value) {
    if (!value.empty()) tags_.emplace_back(key, value);
  }
  void int_field(std::string_view key, std::int64_t value) {
    begin(key);
    append_int(fields_, value);
    fields_.push_back('i');
  }
  void float_field(std::string_view key, double value) {
    begin(key);
    append_double(fields_, value);
  }
  void bool_field(std::string_view key, bool value) {
    begin(key);
    fields_.append(value ? "true" : "false");
  }
  void string_field(std::string_view key, std::string_view value) {
    begin(key);
    append_string_field(fields_, value);
  }

  std::string finish(std::string& out, std::string_view measurement, std::int64_t time) {
    std::sort(tags_.begin(), tags_.end());
    for (const auto& tag : tags_) {
      // InfluxDB has no escape for a newline in a tag, and a trailing backslash would escape the
      // separator after it: such a point cannot be written faithfully, so it is refused.
      if (tag.second.find_first_of("\r\n") != std::string_view::npos)
        return "tag " + std::string(tag.first) + " contains a line break";
      if (tag.second.back() == '\\')
        return "tag " + std::string(tag.first) + " ends with a backslash";
    }
    append_measurement(out, measurement);
    for (const auto& tag : tags_) {
      out.push_back(',');
      append_key(out, tag.first);
      out.push_back('=');
      append_key(out, tag.second);
    }
    out.push_back(' ');
    out.append(fields_);
    out.push_back(' ');
    append_int(out, time);
    out.push_back('\n');
    return {};
  }

 private:
  void begin(std::string_view key) {
    if (!fields_.empty()) fields_.push_back(',');
    append_key(fields_, key);
    fields_.push_back('=');
  }
  std::vector<std::pair<std::string_view, std::string_view>> tags_;
  std::string fields_;
};

// An integer the contract declares: int64 (or a uint64 that fits). nullopt when absent.
std::optional<std::int64_t> get_int(simdjson::dom::element value, std::string& error,
                                    std::string_view name) {
  std::int64_t i = 0;
  if (!value.get_int64().get(i)) return i;
  std::uint64_t u = 0;
  if (!value.get_uint64().get(u)) {
    error = std::string(name) + " exceeds the int64 range of InfluxDB integers";
    return std::nullopt;
  }
  double d = 0;  // the decoder accepts 1024.0 for an integer field
  if (!value.get_double().get(d)) return static_cast<std::int64_t>(d);
  error = std::string(name) + " is not a number";
  return std::nullopt;
}

std::optional<double> get_number(simdjson::dom::element value) {
  double d = 0;
  if (!value.get_double().get(d)) return d;
  std::int64_t i = 0;
  if (!value.get_int64().get(i)) return static_cast<double>(i);
  std::uint64_t u = 0;
  if (!value.get_uint64().get(u)) return static_cast<double>(u);
  return std::nullopt;
}

// An object of scalars in gpu.metrics.v1, flattened as <object>_<field> with its fields' types.
struct NestedScalars {
  const char* object;
  std::span<const char*const> integers, floats, booleans;
};
constexpr NestedScalars kNestedScalars[] = {
    {.object = "pcie", .integers = kPcieIntegers},
    {.object = "remapped_rows",
     .integers = kRemappedRowsIntegers,
     .booleans = kRemappedRowsBooleans},
    {.object = "xid", .integers = kXidIntegers},
    {.object = "activity", .floats = kActivityFloats},
};

void nested_fields(PointBuilder& p, simdjson::dom::object data, const NestedScalars& spec,
                   std::string& error) {
  simdjson::dom::object nested;
  if (data[spec.object].get(nested)) return;
  const std::string prefix = std::string(spec.object) + "_";
  simdjson::dom::element v;
  for (const char* name : spec.integers) {
    if (nested[name].get(v)) continue;
    const std::string key = prefix + name;
    if (auto i = get_int(v, error, key)) p.int_field(key, *i);
    if (!error.empty()) return;
  }
  for (const char* name : spec.floats) {
    if (nested[name].get(v)) continue;
    if (auto d = get_number(v)) p.float_field(prefix + name, *d);
  }
  for (const char* name : spec.booleans) {
    bool flag = false;
    if (!nested[name].get(flag)) p.bool_field(prefix + name, flag);
  }
}

std::string gpu_fields(PointBuilder& p, simdjson::dom::object data) {
  std::string error;
  simdjson::dom::element v;
  for (const char* name : kGpuIntegerFields) {
    if (data[name].get(v)) continue;
    if (auto i = get_int(v, error, name)) p.int_field(name, *i);
    if (!error.empty()) return error;
  }
  for (const char* name : kGpuFloatFields) {
    if (data[name].get(v)) continue;
    if (auto d = get_number(v)) p.float_field(name, *d);
  }
  simdjson::dom::object ecc;
  if (!data["ecc"].get(ecc)) {
    bool enabled = false;
    if (!ecc["mode_enabled"].get(enabled)) p.bool_field("ecc_mode_enabled", enabled);
    for (const char* name : kEccCounters) {
      if (ecc[name].get(v)) continue;
      const std::string key = std::string("ecc_") + name;
      if (auto i = get_int(v, error, key)) p.int_field(key, *i);
      if (!error.empty()) return error;
    }
  }
  for (const NestedScalars& nested : kNestedScalars) {
    nested_fields(p, data, nested, error);
    if (!error.empty()) return error;
  }
  // `processes: []` is a measured "none", so it is written as 0; an absent list writes nothing.
  simdjson::dom::array processes;
  if (!data["processes"].get(processes)) {
    std::int64_t count = 0, memory = 0;
    bool any_memory = false;
    for (simdjson::dom::element proc : processes) {
      ++count;
      if (!proc["used_memory_bytes"].get(v)) {
        if (auto i = get_int(v, error, "processes[].used_memory_bytes")) {
          memory += *i;
          any_memory = true;
        }
        if (!error.empty()) return error;
      }
    }
    p.int_field("process_count", count);
    if (any_memory) p.int_field("process_memory_bytes", memory);
  }
  return {};
}

std::string join_strings(simdjson::dom::array items) {
  std::string out;
  for (simdjson::dom::element item : items) {
    std::string_view s;
    if (item.get(s)) continue;
    if (!out.empty()) out.push_back(',');
    out.append(s);
  }
  return out;
}

// Costs are not written here: they are priced later from a queryable store (docs/cost.md).
std::string usage_fields(PointBuilder& p, simdjson::dom::object data, std::string& scratch_tags,
                         std::string& scratch_gpus) {
  std::string error;
  simdjson::dom::element v;
  simdjson::dom::object usage;
  if (!data["usage"].get(usage)) {
    for (const char* name : kUsageCounts) {
      if (usage[name].get(v)) continue;
      if (auto i = get_int(v, error, name)) p.int_field(name, *i);
      if (!error.empty()) return error;
    }
  }
  for (const char* name : kUsageFloatFields) {
    if (data[name].get(v)) continue;
    if (auto d = get_number(v)) p.float_field(name, *d);
  }
  for (const char* name : kUsageStringFields) {
    std::string_view s;
    if (!data[name].get(s)) p.string_field(name, s);
  }
  // Free-form labels and GPU lists are unbounded: fields, never tags.
  simdjson::dom::array items;
  if (!data["tags"].get(items)) {
    scratch_tags = join_strings(items);
    p.string_field("labels", scratch_tags);
  }
  if (!data["gpu_uuids"].get(items)) {
    scratch_gpus = join_strings(items);
    p.int_field("gpu_count", static_cast<std::int64_t>(items.size()));
    p.string_field("gpu_uuids", scratch_gpus);
  }
  return {};
}

}  // namespace

void append_measurement(std::string& out, std::string_view name) {
  append_escaped(out, name, ", ");
}

void append_key(std::string& out, std::string_view key) {
  append_escaped(out, key, ",= ");
}

void append_string_field(std::string& out, std::string_view value) {
  out.push_back('"');
  append_escaped(out, value, "\"\\");
  out.push_back('"');
}

std::int64_t id_offset_ns(std::string_view event_id) {
  return static_cast<std::int64_t>(fnv1a64(event_id) % 1000000ULL);
}

std::int64_t point_time(const events::DecodedEvent& event, Precision precision) {
  const std::int64_t ms =
      std::chrono::floor<std::chrono::milliseconds>(event.time).time_since_epoch().count();
  if (precision == Precision::kMilliseconds) return ms;
  return ms * 1000000 + id_offset_ns(event.id);
}

std::string encode_point(std::string& out, const StoredEvent& stored, Precision precision,
                         simdjson::dom::parser& parser) {
  const events::DecodedEvent& e = *stored.event;
  if (e.kind != events::EventKind::kGpuMetrics && e.kind != events::EventKind::kTokenUsage)
    return "only gpu_metrics and token_usage events are written to InfluxDB";
  simdjson::dom::object data;
  if (parser.parse(e.data_json).get(data)) return "data is not a JSON object";
  PointBuilder p;
  p.string_field("event_id", e.id);
  p.string_field("source", e.source);
  std::string error, scratch_tags, scratch_gpus;
  std::string_view collector;
  if (e.kind == events::EventKind::kGpuMetrics) {
    p.tag("host", e.host);
    p.tag("gpu_uuid", e.gpu_uuid);
    p.tag("model_name", e.model_name);
    if (!data["collector"].get(collector)) p.tag("collector", collector);
    error = gpu_fields(p, data);
  } else {
    p.tag("model", e.model);
    p.tag("tenant_id", e.tenant_id);
    for (const char* name : kUsageOptionalTags) {
      std::string_view s;
      if (!data[name].get(s)) p.tag(name, s);
    }
    error = usage_fields(p, data, scratch_tags, scratch_gpus);
  }
  if (!error.empty()) return error;
  return p.finish(out, measurement_of(e.kind), point_time(e, precision));
}

}  // namespace telemetryd::influx
