#pragma once
// Maps one NVML device to a gpu.metrics.v1 sample. Separate from the source so tests can drive it
// with a hand-made function table as well as through a loaded library.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/gpu_metrics.hpp"
#include "sources/nvml_api.hpp"

namespace telemetryd::nvml {

/// Two GPM sample buffers of one device or MIG GPU instance: activity is computed between the
/// previous tick's sample and this tick's, so no tick waits for a second sample.
struct GpmPair {
  nvmlGpmSample_t previous = nullptr;
  nvmlGpmSample_t current = nullptr;
  bool have_previous = false;
  std::chrono::steady_clock::time_point previous_at{};  // when `previous` was taken
};

/// nvml.h: "The interval between two nvmlGpmSampleGet() calls should be greater than 100ms".
/// A sample taken sooner after the previous one is not compared with it (no activity that
/// tick); the next tick's is, so nvml.sample_interval_ms = 100 still reports on most ticks.
inline constexpr std::chrono::milliseconds kGpmMinInterval{100};

/// What the readings of one GPU keep from one tick to the next. Owns its GPM samples, freed with
/// nvmlGpmSampleFree on destruction, so it must not outlive the library (NvmlApi).
class DeviceState {
 public:
  DeviceState(const NvmlFunctions& functions, std::string proc_root);
  ~DeviceState();
  DeviceState(const DeviceState&) = delete;
  DeviceState& operator=(const DeviceState&) = delete;

  const NvmlFunctions& functions() const { return *functions_; }

  /// The clock GPM samples are timed with; a test substitutes its own.
  std::chrono::steady_clock::time_point (*now)() = &std::chrono::steady_clock::now;
  const std::string& proc_root() const { return proc_root_; }

  enum class Gpm { kUnknown, kSupported, kUnsupported };
  Gpm gpm = Gpm::kUnknown;  // nvmlGpmQueryDeviceSupport, asked once
  GpmPair device_gpm;
  std::map<unsigned, GpmPair> mig_gpm;  // by GPU instance id
  /// nvmlGpmMetricsGet_t is 13 KB: allocated once, when the device turns out to support GPM.
  std::unique_ptr<nvmlGpmMetricsGet_t> gpm_metrics;
  /// PCIe throughput comes from GPM (NVML_GPM_METRIC_PCIE_*_PER_SEC, from the same two samples
  /// as the activity) where the GPU has it, else from the cumulative byte counters of
  /// nvmlDeviceGetFieldValues: the difference between two ticks over the time between them.
  /// nvmlDeviceGetPcieThroughput is not called: it samples for 20 ms per call, blocking the tick.
  struct PcieCount {
    unsigned long long bytes = 0;
    std::chrono::steady_clock::time_point at{};
    bool valid = false;
  };
  PcieCount pcie_tx;
  PcieCount pcie_rx;
  /// GPM answered NOT_SUPPORTED for its PCIe metrics: the counters are read instead.
  bool gpm_pcie_unsupported = false;
  /// Newest process utilisation sample seen (CPU microseconds), so each tick asks for new ones.
  unsigned long long process_utilization_seen_us = 0;
  /// Whether processes are attributed to containers and pods from <proc_root>/PID/cgroup; off
  /// when that /proc is another PID namespace's than NVML's PIDs are.
  bool read_cgroups = true;
  /// Set by the source once the device is registered for XID events; counted from then on.
  std::optional<events::GpuXid> xid;

  void free_pair(GpmPair& pair);

 private:
  const NvmlFunctions* functions_;
  std::string proc_root_;
};

/// Reads every metric the table supports. A call that fails only leaves its field empty; the
/// device as a whole is given up (nullopt, reason in `error`) when its UUID or name cannot be
/// read or any call reports the GPU lost. Sets collector and gpu_index; host and interval_ms are
/// the caller's. Does not throw, bar allocation failure.
std::optional<events::GpuSample> sample_device(const NvmlFunctions& functions, nvmlDevice_t device,
                                               unsigned index, DeviceState& state,
                                               std::string& error);

/// The same without state kept between calls: no GPM activity (that needs two samples), process
/// utilisation over everything the driver still holds, cgroups read under /proc.
std::optional<events::GpuSample> sample_device(const NvmlFunctions& functions, nvmlDevice_t device,
                                               unsigned index, std::string& error);

/// The names of the set nvmlClocksEventReason* bits, as nvidia-smi -q names them
/// ("gpu_idle", "sw_power_cap", ...); bits without a name are left out (the mask keeps them).
std::vector<std::string> clock_event_reason_names(unsigned long long mask);

}  // namespace telemetryd::nvml
