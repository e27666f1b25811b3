#pragma once
// One GPU sample as the gpu.metrics.v1 `data` object. A metric the device does not report stays
// empty and is omitted from the JSON, never written as 0. Every field after `ecc` was added
// compatibly (issue 12): all optional, so older consumers and producers keep working.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace telemetryd::events {

struct GpuProcess {
  std::int64_t pid = 0;
  std::optional<std::int64_t> used_memory_bytes;
  /// Percent of the last interval this process had a kernel on the SMs / used the memory
  /// interface (nvmlDeviceGetProcessUtilization), where the driver reports it.
  std::optional<double> utilization_sm_percent;
  std::optional<double> utilization_memory_percent;
  /// From /proc/PID/cgroup: the container runtime's id and the Kubernetes pod UID, when the
  /// process runs in a container (attribution of GPU memory to a pod).
  std::optional<std::string> container_id;
  std::optional<std::string> pod_uid;
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

/// NVML GPM (GPU performance monitoring, Hopper and newer): activity over the interval between
/// two GPM samples, in percent (0..100), as NVML reports it.
struct GpuActivity {
  std::optional<double> sm_active_percent;
  std::optional<double> sm_occupancy_percent;
  std::optional<double> tensor_active_percent;
  std::optional<double> dram_active_percent;
  std::optional<double> fp16_active_percent;
  std::optional<double> fp32_active_percent;
  std::optional<double> fp64_active_percent;
  bool empty() const {
    return !sm_active_percent && !sm_occupancy_percent && !tensor_active_percent &&
           !dram_active_percent && !fp16_active_percent && !fp32_active_percent &&
           !fp64_active_percent;
  }
};

/// GPM activity of one MIG GPU instance.
struct GpuMigActivity {
  std::int64_t gpu_instance_id = 0;
  GpuActivity activity;
};

struct GpuPcie {
  std::optional<std::int64_t> tx_bytes_per_second;
  std::optional<std::int64_t> rx_bytes_per_second;
  std::optional<std::int64_t> link_gen;
  std::optional<std::int64_t> link_width;
  std::optional<std::int64_t> link_gen_max;
  std::optional<std::int64_t> link_width_max;
  bool empty() const {
    return !tx_bytes_per_second && !rx_bytes_per_second && !link_gen && !link_width &&
           !link_gen_max && !link_width_max;
  }
};

struct GpuRemappedRows {
  std::optional<std::int64_t> correctable;
  std::optional<std::int64_t> uncorrectable;
  std::optional<bool> pending;
  std::optional<bool> failure;
  bool empty() const { return !correctable && !uncorrectable && !pending && !failure; }
};

/// XID errors seen through NVML's event API since the collector started.
struct GpuXid {
  std::int64_t count = 0;
  std::optional<std::int64_t> last;  // the most recent XID code
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
  /// As nvidia-smi's memory.used: without the driver's reserved memory (v2 call); the v1
  /// fallback counts the reserved memory as used.
  std::optional<std::int64_t> memory_used_bytes;
  std::optional<double> power_draw_watts;
  std::optional<double> power_limit_watts;
  std::optional<std::int64_t> energy_consumed_mj;
  std::optional<double> temperature_gpu_celsius;
  std::optional<std::int64_t> clock_sm_mhz;
  std::optional<std::int64_t> clock_mem_mhz;
  GpuEcc ecc;
  std::optional<std::vector<GpuProcess>> processes;
  // ---- added by issue 12, all optional ----
  std::optional<std::int64_t> memory_free_bytes;
  std::optional<std::int64_t> memory_reserved_bytes;
  std::optional<double> temperature_memory_celsius;
  std::optional<std::int64_t> pstate;  // 0 (max performance) .. 15
  /// nvmlDeviceGetCurrentClocksEventReasons as the raw mask and as the names of the set bits
  /// ("gpu_idle", "sw_power_cap", "hw_thermal_slowdown", ...; see docs/events.md).
  std::optional<std::int64_t> clock_event_reasons_mask;
  std::optional<std::vector<std::string>> clock_event_reasons;
  GpuPcie pcie;
  GpuRemappedRows remapped_rows;
  std::optional<GpuXid> xid;
  GpuActivity activity;                            // whole GPU (GPM)
  std::optional<std::vector<GpuMigActivity>> mig;  // per MIG instance (GPM), MIG mode only
};

std::string encode_gpu_metrics_data(const GpuSample& sample);

}  // namespace telemetryd::events
