#include "events/gpu_metrics.hpp"

#include "telemetryd/json_writer.hpp"

namespace telemetryd::events {
namespace {
template <typename T>
void optional_field(JsonWriter& json, const char* key, const std::optional<T>& value) {
  if (value) json.key(key).value(*value);
}
}  // namespace

std::string encode_gpu_metrics_data(const GpuSample& s) {
  JsonWriter json;
  json.begin_object()
      .key("gpu_uuid")
      .value(s.gpu_uuid)
      .key("host")
      .value(s.host)
      .key("model_name")
      .value(s.model_name)
      .key("collector")
      .value(s.collector);
  optional_field(json, "gpu_index", s.gpu_index);
  optional_field(json, "interval_ms", s.interval_ms);
  optional_field(json, "utilization_gpu_percent", s.utilization_gpu_percent);
  optional_field(json, "utilization_memory_percent", s.utilization_memory_percent);
  optional_field(json, "memory_total_bytes", s.memory_total_bytes);
  optional_field(json, "memory_used_bytes", s.memory_used_bytes);
  optional_field(json, "power_draw_watts", s.power_draw_watts);
  optional_field(json, "power_limit_watts", s.power_limit_watts);
  optional_field(json, "energy_consumed_mj", s.energy_consumed_mj);
  optional_field(json, "temperature_gpu_celsius", s.temperature_gpu_celsius);
  optional_field(json, "clock_sm_mhz", s.clock_sm_mhz);
  optional_field(json, "clock_mem_mhz", s.clock_mem_mhz);
  if (!s.ecc.empty()) {
    json.key("ecc").begin_object();
    optional_field(json, "mode_enabled", s.ecc.mode_enabled);
    optional_field(json, "volatile_corrected", s.ecc.volatile_corrected);
    optional_field(json, "volatile_uncorrected", s.ecc.volatile_uncorrected);
    optional_field(json, "aggregate_corrected", s.ecc.aggregate_corrected);
    optional_field(json, "aggregate_uncorrected", s.ecc.aggregate_uncorrected);
    json.end_object();
  }
  if (s.processes) {
    json.key("processes").begin_array();
    for (const auto& p : *s.processes) {
      json.begin_object().key("pid").value(p.pid);
      optional_field(json, "used_memory_bytes", p.used_memory_bytes);
      json.end_object();
    }
    json.end_array();
  }
  json.end_object();
  return json.take();
}

}  // namespace telemetryd::events
