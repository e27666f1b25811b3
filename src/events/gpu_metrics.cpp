#include "events/gpu_metrics.hpp"

#include "telemetryd/json_writer.hpp"

namespace telemetryd::events {
namespace {
template <typename T>
void optional_field(JsonWriter& json, const char* key, const std::optional<T>& value) {
  if (value) json.key(key).value(*value);
}

void encode_activity(JsonWriter& json, const GpuActivity& a) {
  json.begin_object();
  optional_field(json, "sm_active_percent", a.sm_active_percent);
  optional_field(json, "sm_occupancy_percent", a.sm_occupancy_percent);
  optional_field(json, "tensor_active_percent", a.tensor_active_percent);
  optional_field(json, "dram_active_percent", a.dram_active_percent);
  optional_field(json, "fp16_active_percent", a.fp16_active_percent);
  optional_field(json, "fp32_active_percent", a.fp32_active_percent);
  optional_field(json, "fp64_active_percent", a.fp64_active_percent);
  json.end_object();
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
      optional_field(json, "utilization_sm_percent", p.utilization_sm_percent);
      optional_field(json, "utilization_memory_percent", p.utilization_memory_percent);
      optional_field(json, "container_id", p.container_id);
      optional_field(json, "pod_uid", p.pod_uid);
      json.end_object();
    }
    json.end_array();
  }
  optional_field(json, "memory_free_bytes", s.memory_free_bytes);
  optional_field(json, "memory_reserved_bytes", s.memory_reserved_bytes);
  optional_field(json, "temperature_memory_celsius", s.temperature_memory_celsius);
  optional_field(json, "pstate", s.pstate);
  optional_field(json, "clock_event_reasons_mask", s.clock_event_reasons_mask);
  if (s.clock_event_reasons) {
    json.key("clock_event_reasons").begin_array();
    for (const auto& name : *s.clock_event_reasons) json.value(name);
    json.end_array();
  }
  if (!s.pcie.empty()) {
    json.key("pcie").begin_object();
    optional_field(json, "tx_bytes_per_second", s.pcie.tx_bytes_per_second);
    optional_field(json, "rx_bytes_per_second", s.pcie.rx_bytes_per_second);
    optional_field(json, "link_gen", s.pcie.link_gen);
    optional_field(json, "link_width", s.pcie.link_width);
    optional_field(json, "link_gen_max", s.pcie.link_gen_max);
    optional_field(json, "link_width_max", s.pcie.link_width_max);
    json.end_object();
  }
  if (!s.remapped_rows.empty()) {
    json.key("remapped_rows").begin_object();
    optional_field(json, "correctable", s.remapped_rows.correctable);
    optional_field(json, "uncorrectable", s.remapped_rows.uncorrectable);
    optional_field(json, "pending", s.remapped_rows.pending);
    optional_field(json, "failure", s.remapped_rows.failure);
    json.end_object();
  }
  if (s.xid) {
    json.key("xid").begin_object().key("count").value(s.xid->count);
    optional_field(json, "last", s.xid->last);
    json.end_object();
  }
  if (!s.activity.empty()) {
    json.key("activity");
    encode_activity(json, s.activity);
  }
  if (s.mig) {
    json.key("mig").begin_array();
    for (const auto& m : *s.mig) {
      json.begin_object().key("gpu_instance_id").value(m.gpu_instance_id).key("activity");
      encode_activity(json, m.activity);
      json.end_object();
    }
    json.end_array();
  }
  json.end_object();
  return json.take();
}

}  // namespace telemetryd::events
