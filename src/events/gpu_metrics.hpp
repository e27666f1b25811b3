#pragma once
// One GPU sample as the gpu.metrics.v1 `data` object. A metric the device does not report stays
// empty and is omitted from the JSON, never written as 0.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace telemetryd::events {

struct GpuProcess {
  std::int64_t pid = 0;
  std::optional<std::int64_t> used_memory_bytes;
};

struct GpuEcc {
  std::optional<bool> mode_enabled;
  std::optional<std::int64_t> volatile_corrected;
  std::optional<std::int64_t> volatile_uncorrected;
  std::optional<std::int64_t> aggregate_corrected;
  std::optional<std::int64_t> aggregate_uncorrected;
  bool empty() const {
    return !mode_enabled && !volatile_corrected && !volatile_uncorrected && !aggregate_corrected &&
           !aggregate_uncorrected;
  }
};

struct GpuSample {
  std::string gpu_uuid;
  std::string host;
  std::string model_name;
  std::string collector;  // "nvml" or "synthetic"
  std::optional<std::int64_t> gpu_index;
  std::optional<std::int64_t> interval_ms;
  std::optional<double> utilization_gpu_percent;
  std::optional<double> utilization_memory_percent;
  std::optional<std::int64_t> memory_total_bytes;
  std::optional<std::int64_t> memory_used_bytes;
  std::optional<double> power_draw_watts;
  std::optional<double> power_limit_watts;
  std::optional<std::int64_t> energy_consumed_mj;
  std::optional<double> temperature_gpu_celsius;
  std::optional<std::int64_t> clock_sm_mhz;
  std::optional<std::int64_t> clock_mem_mhz;
  GpuEcc ecc;
  std::optional<std::vector<GpuProcess>> processes;
};

std::string encode_gpu_metrics_data(const GpuSample& sample);

}  // namespace telemetryd::events
