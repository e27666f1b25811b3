#include "metrics/gpu_exporter.hpp"

#include <array>
#include <cmath>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "events/gpu_metrics.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/source.hpp"

namespace telemetryd::metrics {
namespace {

// nvmlClocksEventReason* bits and the names gpu.metrics.v1 uses for them (docs/gpu-metrics.md).
struct Reason {
  std::int64_t bit;
  const char* name;
};
constexpr std::array<Reason, 9> kReasons{{{0x1, "gpu_idle"},
                                          {0x2, "applications_clocks_setting"},
                                          {0x4, "sw_power_cap"},
                                          {0x8, "hw_slowdown"},
                                          {0x10, "sync_boost"},
                                          {0x20, "sw_thermal_slowdown"},
                                          {0x40, "hw_thermal_slowdown"},
                                          {0x80, "hw_power_brake_slowdown"},
                                          {0x100, "display_clock_setting"}}};

// One slot per exported value of a GPU. Reasons and GPM activity take a run of slots each.
enum Id : std::size_t {
  kUtil,
  kMemUtil,
  kMemUsed,
  kMemFree,
  kMemReserved,
  kMemTotal,
  kPower,
  kPowerLimit,
  kEnergy,
  kTemp,
  kMemTemp,
  kSmClock,
  kMemClock,
  kPstate,
  kReasonsMask,
  kPcieTx,
  kPcieRx,
  kLinkGen,
  kLinkWidth,
  kLinkGenMax,
  kLinkWidthMax,
  kXidCount,
  kXidLast,
  kEccMode,
  kEccVolCorrected,
  kEccVolUncorrected,
  kEccAggCorrected,
  kEccAggUncorrected,
  kRemapCorrectable,
  kRemapUncorrectable,
  kRemapPending,
  kRemapFailure,
  kReasonFirst,
  kActivityFirst = kReasonFirst + kReasons.size(),
  kCount = kActivityFirst + 7,
};
constexpr std::size_t kActivityCount = 7;
constexpr std::size_t kProcessCount = 3;

struct Def {
  std::string name;  // empty: not exported under this naming
  std::string help;
  bool counter = false;
  double scale = 1.0;  // applied to the sample's value (percent -> ratio, MHz -> Hz, ...)
  std::vector<std::string> extra_names;
  std::vector<std::string> extra_values;  // for MIG and processes: filled per child
};

struct Naming {
  std::vector<std::string> base_names;
  std::vector<Def> gpu;                    // kCount
  std::array<Def, kActivityCount> mig;     // per GPU instance, extra label last
  std::array<Def, kProcessCount> process;  // memory, SM, memory interface
};

using Activity = std::array<std::optional<double>, kActivityCount>;
Activity activity_values(const events::GpuActivity& a) {
  return {a.sm_active_percent,   a.sm_occupancy_percent, a.tensor_active_percent,
          a.dram_active_percent, a.fp16_active_percent,  a.fp32_active_percent,
          a.fp64_active_percent};
}

Naming telemetryd_naming() {
  Naming n;
  n.base_names = {"gpu", "uuid", "model_name", "host"};
  n.gpu.resize(kCount);
  auto& g = n.gpu;
  g[kUtil] = {"telemetryd_gpu_utilization_ratio",
              "Fraction of the last sample period in which a kernel ran on the GPU.", false, 0.01};
  g[kMemUtil] = {"telemetryd_gpu_memory_utilization_ratio",
                 "Fraction of the last sample period in which device memory was read or written.",
                 false, 0.01};
  g[kMemUsed] = {"telemetryd_gpu_memory_used_bytes",
                 "Device memory in use, without the driver's reserved memory (as nvidia-smi)."};
  g[kMemFree] = {"telemetryd_gpu_memory_free_bytes", "Device memory free."};
  g[kMemReserved] = {"telemetryd_gpu_memory_reserved_bytes",
                     "Device memory the driver reserves for itself."};
  g[kMemTotal] = {"telemetryd_gpu_memory_total_bytes", "Device memory installed."};
  g[kPower] = {"telemetryd_gpu_power_watts", "Power draw."};
  g[kPowerLimit] = {"telemetryd_gpu_power_limit_watts", "Power management limit."};
  g[kEnergy] = {"telemetryd_gpu_energy_joules_total",
                "Energy consumed since the driver was loaded.", true, 0.001};
  g[kTemp] = {"telemetryd_gpu_temperature_celsius", "GPU die temperature."};
  g[kMemTemp] = {"telemetryd_gpu_memory_temperature_celsius", "Device memory (HBM) temperature."};
  g[kSmClock] = {"telemetryd_gpu_sm_clock_hertz", "Current SM clock.", false, 1e6};
  g[kMemClock] = {"telemetryd_gpu_memory_clock_hertz", "Current memory clock.", false, 1e6};
  g[kPstate] = {"telemetryd_gpu_pstate", "Performance state: 0 is the highest, 15 the lowest."};
  g[kPcieTx] = {"telemetryd_gpu_pcie_tx_bytes_per_second",
                "PCIe bytes sent per second over the sampling interval."};
  g[kPcieRx] = {"telemetryd_gpu_pcie_rx_bytes_per_second",
                "PCIe bytes received per second over the sampling interval."};
  g[kLinkGen] = {"telemetryd_gpu_pcie_link_generation", "Current PCIe link generation."};
  g[kLinkWidth] = {"telemetryd_gpu_pcie_link_width", "Current PCIe link width in lanes."};
  g[kLinkGenMax] = {"telemetryd_gpu_pcie_link_generation_max",
                    "Highest PCIe link generation of the GPU and its slot."};
  g[kLinkWidthMax] = {"telemetryd_gpu_pcie_link_width_max",
                      "Widest PCIe link of the GPU and its slot, in lanes."};
  g[kXidCount] = {"telemetryd_gpu_xid_errors_total",
                  "XID errors NVML reported since telemetryd started sampling.", true};
  g[kXidLast] = {"telemetryd_gpu_last_xid", "Code of the most recent XID error."};
  g[kEccMode] = {"telemetryd_gpu_ecc_mode_enabled", "1 when ECC is enabled."};
  const char* ecc_help =
      "ECC errors: volatile since the last driver load, aggregate over the GPU's life.";
  g[kEccVolCorrected] = {"telemetryd_gpu_ecc_errors_total", ecc_help, true, 1, {"type", "scope"},
                         {"corrected", "volatile"}};
  g[kEccVolUncorrected] = {"telemetryd_gpu_ecc_errors_total", ecc_help, true, 1, {"type", "scope"},
                           {"uncorrected", "volatile"}};
  g[kEccAggCorrected] = {"telemetryd_gpu_ecc_errors_total", ecc_help, true, 1, {"type", "scope"},
                         {"corrected", "aggregate"}};
  g[kEccAggUncorrected] = {"telemetryd_gpu_ecc_errors_total", ecc_help, true, 1, {"type", "scope"},
                           {"uncorrected", "aggregate"}};
  const char* remap_help = "Memory rows remapped, by the kind of error that caused it.";
  g[kRemapCorrectable] = {
      "telemetryd_gpu_remapped_rows_total", remap_help, true, 1, {"cause"}, {"correctable"}};
  g[kRemapUncorrectable] = {
      "telemetryd_gpu_remapped_rows_total", remap_help, true, 1, {"cause"}, {"uncorrectable"}};
  g[kRemapPending] = {"telemetryd_gpu_row_remap_pending",
                      "1 when a row remapping waits for a GPU reset."};
  g[kRemapFailure] = {"telemetryd_gpu_row_remap_failure", "1 when a row remapping failed."};
  for (std::size_t i = 0; i < kReasons.size(); ++i) {
    g[kReasonFirst + i] = {"telemetryd_gpu_clock_event_reason",
                           "1 while this reason holds the clocks down "
                           "(nvmlDeviceGetCurrentClocksEventReasons), else 0.",
                           false,
                           1,
                           {"reason"},
                           {kReasons[i].name}};
  }
  const std::array<std::pair<const char*, const char*>, kActivityCount> activity{{
      {"sm_active", "Fraction of cycles an SM had at least one warp resident (GPM)."},
      {"sm_occupancy", "Resident warps per SM over the maximum (GPM)."},
      {"tensor_active", "Fraction of cycles the tensor pipes were active (GPM)."},
      {"dram_active", "Fraction of cycles device memory was sending or receiving (GPM)."},
      {"fp16_active", "Fraction of cycles the FP16 pipe was active (GPM)."},
      {"fp32_active", "Fraction of cycles the FP32 pipe was active (GPM)."},
      {"fp64_active", "Fraction of cycles the FP64 pipe was active (GPM)."},
  }};
  for (std::size_t i = 0; i < kActivityCount; ++i) {
    g[kActivityFirst + i] = {std::string("telemetryd_gpu_") + activity[i].first + "_ratio",
                             activity[i].second, false, 0.01};
    n.mig[i] = {std::string("telemetryd_gpu_mig_") + activity[i].first + "_ratio",
                activity[i].second,
                false,
                0.01,
                {"gpu_i_id"}};
  }
  const std::vector<std::string> process_labels{"pid", "container_id", "pod_uid"};
  n.process[0] = {"telemetryd_gpu_process_memory_used_bytes",
                  "Device memory used by a process (container and pod from its cgroup).", false, 1,
                  process_labels};
  n.process[1] = {"telemetryd_gpu_process_sm_utilization_ratio",
                  "Fraction of the last interval a kernel of this process ran on the SMs.", false,
                  0.01, process_labels};
  n.process[2] = {"telemetryd_gpu_process_memory_utilization_ratio",
                  "Fraction of the last interval this process used the memory interface.", false,
                  0.01, process_labels};
  return n;
}

// dcgm-exporter's field names, units and labels (its etc/default-counters.csv and
// dcp-metrics-included.csv), for dashboards written against it. Values without a DCGM field are
// not exported in this mode.
Naming dcgm_naming() {
  constexpr double kMiB = 1.0 / (1024.0 * 1024.0);
  Naming n;
  n.base_names = {"gpu", "UUID", "device", "modelName", "Hostname"};
  n.gpu.resize(kCount);
  auto& g = n.gpu;
  g[kUtil] = {"DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."};
  g[kMemUtil] = {"DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."};
  g[kMemUsed] = {"DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", false, kMiB};
  g[kMemFree] = {"DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", false, kMiB};
  g[kMemReserved] = {"DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", false,
                     kMiB};
  g[kMemTotal] = {"DCGM_FI_DEV_FB_TOTAL", "Framebuffer memory total (in MiB).", false, kMiB};
  g[kPower] = {"DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."};
  g[kPowerLimit] = {"DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W)."};
  g[kEnergy] = {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                "Total energy consumption since boot (in mJ).", true};
  g[kTemp] = {"DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."};
  g[kMemTemp] = {"DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C)."};
  g[kSmClock] = {"DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."};
  g[kMemClock] = {"DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."};
  g[kPstate] = {"DCGM_FI_DEV_PSTATE", "Performance state (P-State) 0-15."};
  g[kReasonsMask] = {"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "Current clock throttle reasons."};
  // dcgm-exporter declares these counters but they hold NVML's KB/s reading; a gauge here.
  g[kPcieTx] = {"DCGM_FI_DEV_PCIE_TX_THROUGHPUT", "PCIe TX throughput (in KB/s) via NVML.", false,
                1.0 / 1024};
  g[kPcieRx] = {"DCGM_FI_DEV_PCIE_RX_THROUGHPUT", "PCIe RX throughput (in KB/s) via NVML.", false,
                1.0 / 1024};
  g[kLinkGen] = {"DCGM_FI_DEV_PCIE_LINK_GEN", "PCIe current link generation."};
  g[kLinkWidth] = {"DCGM_FI_DEV_PCIE_LINK_WIDTH", "PCIe current link width."};
  g[kLinkGenMax] = {"DCGM_FI_DEV_PCIE_MAX_LINK_GEN", "PCIe max link generation."};
  g[kLinkWidthMax] = {"DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "PCIe max link width."};
  g[kXidLast] = {"DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."};
  g[kEccMode] = {"DCGM_FI_DEV_ECC_CURRENT", "Current ECC mode for the device."};
  g[kEccVolCorrected] = {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                         "Total number of single-bit volatile ECC errors.", true};
  g[kEccVolUncorrected] = {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                           "Total number of double-bit volatile ECC errors.", true};
  g[kEccAggCorrected] = {"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
                         "Total number of single-bit persistent ECC errors.", true};
  g[kEccAggUncorrected] = {"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
                           "Total number of double-bit persistent ECC errors.", true};
  g[kRemapCorrectable] = {"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
                          "Number of remapped rows for correctable errors", true};
  g[kRemapUncorrectable] = {"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
                            "Number of remapped rows for uncorrectable errors", true};
  g[kRemapPending] = {"DCGM_FI_DEV_ROW_REMAP_PENDING", "Whether remapping of rows is pending"};
  g[kRemapFailure] = {"DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed"};
  const std::array<std::pair<const char*, const char*>, kActivityCount> activity{{
      {"DCGM_FI_PROF_SM_ACTIVE", "The ratio of cycles an SM has at least 1 warp assigned."},
      {"DCGM_FI_PROF_SM_OCCUPANCY", "The ratio of number of warps resident on an SM."},
      {"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor (HMMA) pipe is active."},
      {"DCGM_FI_PROF_DRAM_ACTIVE",
       "Ratio of cycles the device memory interface is active sending or receiving data."},
      {"DCGM_FI_PROF_PIPE_FP16_ACTIVE", "Ratio of cycles the fp16 pipes are active."},
      {"DCGM_FI_PROF_PIPE_FP32_ACTIVE", "Ratio of cycles the fp32 pipes are active."},
      {"DCGM_FI_PROF_PIPE_FP64_ACTIVE", "Ratio of cycles the fp64 pipes are active."},
  }};
  // dcgm-exporter puts GPU_I_ID on the same names; an empty value is an absent label.
  for (std::size_t i = 0; i < kActivityCount; ++i) {
    g[kActivityFirst + i] = {
        activity[i].first, activity[i].second, false, 0.01, {"GPU_I_ID"}, {""}};
    n.mig[i] = {activity[i].first, activity[i].second, false, 0.01, {"GPU_I_ID"}};
  }
  return n;
}

// A unit change. Dividing by the exact power of ten or two, not multiplying by its inverse, keeps
// 223456 mJ at 223.456 J rather than 223.45600000000002.
double scaled(const Def& def, double value) {
  return def.scale < 1 ? value / std::round(1 / def.scale) : value * def.scale;
}

std::optional<double> as_double(const std::optional<std::int64_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<double>(*v);
}
std::optional<double> as_double(const std::optional<bool>& v) {
  if (!v) return std::nullopt;
  return *v ? 1.0 : 0.0;
}

std::vector<std::string> joined(const std::vector<std::string>& a,
                                const std::vector<std::string>& b) {
  std::vector<std::string> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

struct GpuExporter::Impl {
  struct Slot {
    Gauge* gauge = nullptr;
    Counter* counter = nullptr;
  };
  struct ProcessSeries {
    std::vector<std::string> labels;  // base + pid, container_id, pod_uid
    std::array<Gauge*, kProcessCount> gauges{};
    bool seen = false;
  };
  struct GpuSeries {
    std::vector<std::string> labels;  // base label values
    std::array<Slot, kCount> slots{};
    std::unordered_map<std::int64_t, std::array<Gauge*, kActivityCount>> mig;
    std::unordered_map<std::int64_t, ProcessSeries> processes;
  };

  Registry& registry;
  GpuExporterSettings settings;
  Naming naming;
  std::mutex mutex;
  std::unordered_map<std::string, GpuSeries> gpus;
  std::array<Family<Gauge>*, kCount> gauge_families{};
  std::array<Family<Counter>*, kCount> counter_families{};
  std::array<Family<Gauge>*, kActivityCount> mig_families{};
  std::array<Family<Gauge>*, kProcessCount> process_families{};
  bool warned_max_gpus = false;

  Impl(Registry& r, GpuExporterSettings s)
      : registry(r),
        settings(s),
        naming(s.naming == GpuNaming::kDcgm ? dcgm_naming() : telemetryd_naming()) {}

  Family<Gauge>& gauge_family(const Def& def) {
    return registry.gauge(def.name, def.help, joined(naming.base_names, def.extra_names));
  }

  void put(GpuSeries& gpu, std::size_t id, std::optional<double> value) {
    if (!value) return;
    const Def& def = naming.gpu[id];
    if (def.name.empty()) return;
    Slot& slot = gpu.slots[id];
    const double v = scaled(def, *value);
    if (def.counter) {
      if (slot.counter == nullptr) {
        if (counter_families[id] == nullptr) {
          counter_families[id] =
              &registry.counter(def.name, def.help, joined(naming.base_names, def.extra_names));
        }
        slot.counter = &counter_families[id]->with(joined(gpu.labels, def.extra_values));
      }
      // The driver's total went back (a GPU reset): a new series starting there, which
      // Prometheus reads as a counter reset, since a prometheus::Counter only increases.
      if (v < slot.counter->Value()) {
        const std::vector<std::string> labels = joined(gpu.labels, def.extra_values);
        counter_families[id]->remove(labels);
        slot.counter = &counter_families[id]->with(labels);
      }
      slot.counter->Increment(v - slot.counter->Value());
    } else {
      if (slot.gauge == nullptr) {
        if (gauge_families[id] == nullptr) gauge_families[id] = &gauge_family(def);
        slot.gauge = &gauge_families[id]->with(joined(gpu.labels, def.extra_values));
      }
      slot.gauge->Set(v);
    }
  }

  GpuSeries* series_for(const events::GpuSample& s) {
    if (const auto it = gpus.find(s.gpu_uuid); it != gpus.end()) return &it->second;
    if (gpus.size() >= settings.max_gpus) {
      if (!warned_max_gpus) {
        warned_max_gpus = true;
        log::warn("gpu_metrics", "more GPUs than gpu_metrics.max_gpus; the rest are not exported",
                  {{"max_gpus", settings.max_gpus}, {"first_left_out", s.gpu_uuid}});
      }
      return nullptr;
    }
    GpuSeries& gpu = gpus[s.gpu_uuid];
    const std::string index = s.gpu_index ? std::to_string(*s.gpu_index) : "";
    if (settings.naming == GpuNaming::kDcgm) {
      gpu.labels = {index, s.gpu_uuid, s.gpu_index ? "nvidia" + index : "", s.model_name, s.host};
    } else {
      gpu.labels = {index, s.gpu_uuid, s.model_name, s.host};
    }
    return &gpu;
  }

  // `mig` absent: the GPU is not in MIG mode (or no instance had a reading), so no instances.
  void update_mig(GpuSeries& gpu, const std::optional<std::vector<events::GpuMigActivity>>& mig) {
    std::unordered_set<std::int64_t> listed;
    for (const auto& instance : mig.value_or(std::vector<events::GpuMigActivity>{})) {
      listed.insert(instance.gpu_instance_id);
      auto& gauges = gpu.mig[instance.gpu_instance_id];
      const Activity values = activity_values(instance.activity);
      for (std::size_t i = 0; i < kActivityCount; ++i) {
        if (!values[i] || naming.mig[i].name.empty()) continue;
        if (gauges[i] == nullptr) {
          if (mig_families[i] == nullptr) mig_families[i] = &gauge_family(naming.mig[i]);
          gauges[i] = &mig_families[i]->with(
              joined(gpu.labels, {std::to_string(instance.gpu_instance_id)}));
        }
        gauges[i]->Set(scaled(naming.mig[i], *values[i]));
      }
    }
    // An instance the sample no longer lists (destroyed, or MIG mode turned off) takes its
    // series with it rather than keeping its last values.
    for (auto it = gpu.mig.begin(); it != gpu.mig.end();) {
      if (listed.count(it->first) != 0) {
        ++it;
        continue;
      }
      for (std::size_t i = 0; i < kActivityCount; ++i) {
        if (it->second[i] != nullptr) {
          mig_families[i]->remove(joined(gpu.labels, {std::to_string(it->first)}));
        }
      }
      it = gpu.mig.erase(it);
    }
  }

  // Removes the series of slot `id` of this GPU, if it has one.
  void drop(GpuSeries& gpu, std::size_t id) {
    Slot& slot = gpu.slots[id];
    if (slot.gauge == nullptr && slot.counter == nullptr) return;
    const std::vector<std::string> labels = joined(gpu.labels, naming.gpu[id].extra_values);
    if (slot.gauge != nullptr) gauge_families[id]->remove(labels);
    if (slot.counter != nullptr) counter_families[id]->remove(labels);
    slot = Slot{};
  }

  void drop_process(ProcessSeries& p) {
    for (std::size_t i = 0; i < kProcessCount; ++i) {
      if (p.gauges[i] != nullptr) process_families[i]->remove(p.labels);
      p.gauges[i] = nullptr;
    }
  }

  void update_processes(GpuSeries& gpu, const std::vector<events::GpuProcess>& processes) {
    if (naming.process[0].name.empty()) return;
    for (auto& [pid, series] : gpu.processes) series.seen = false;
    std::size_t taken = 0;
    for (const auto& p : processes) {
      if (taken == settings.max_processes_per_gpu) break;
      ++taken;
      ProcessSeries& series = gpu.processes[p.pid];
      series.seen = true;
      std::vector<std::string> labels = joined(
          gpu.labels, {std::to_string(p.pid), p.container_id.value_or(""), p.pod_uid.value_or("")});
      if (series.labels != labels) {  // new, or its cgroup was read only now
        drop_process(series);
        series.labels = std::move(labels);
      }
      const std::array<std::optional<double>, kProcessCount> values{
          as_double(p.used_memory_bytes), p.utilization_sm_percent, p.utilization_memory_percent};
      for (std::size_t i = 0; i < kProcessCount; ++i) {
        if (!values[i]) continue;
        if (series.gauges[i] == nullptr) {
          if (process_families[i] == nullptr) {
            process_families[i] = &gauge_family(naming.process[i]);
          }
          series.gauges[i] = &process_families[i]->with(series.labels);
        }
        series.gauges[i]->Set(scaled(naming.process[i], *values[i]));
      }
    }
    // A process that is gone takes its series with it, so /metrics does not grow with every
    // short job that ever ran.
    for (auto it = gpu.processes.begin(); it != gpu.processes.end();) {
      if (it->second.seen) {
        ++it;
      } else {
        drop_process(it->second);
        it = gpu.processes.erase(it);
      }
    }
  }

  void update(const events::GpuSample& s) {
    const std::lock_guard lock(mutex);
    GpuSeries* found = series_for(s);
    if (found == nullptr) return;
    GpuSeries& gpu = *found;
    put(gpu, kUtil, s.utilization_gpu_percent);
    put(gpu, kMemUtil, s.utilization_memory_percent);
    put(gpu, kMemUsed, as_double(s.memory_used_bytes));
    put(gpu, kMemFree, as_double(s.memory_free_bytes));
    put(gpu, kMemReserved, as_double(s.memory_reserved_bytes));
    put(gpu, kMemTotal, as_double(s.memory_total_bytes));
    put(gpu, kPower, s.power_draw_watts);
    put(gpu, kPowerLimit, s.power_limit_watts);
    put(gpu, kEnergy, as_double(s.energy_consumed_mj));
    put(gpu, kTemp, s.temperature_gpu_celsius);
    put(gpu, kMemTemp, s.temperature_memory_celsius);
    put(gpu, kSmClock, as_double(s.clock_sm_mhz));
    put(gpu, kMemClock, as_double(s.clock_mem_mhz));
    put(gpu, kPstate, as_double(s.pstate));
    put(gpu, kPcieTx, as_double(s.pcie.tx_bytes_per_second));
    put(gpu, kPcieRx, as_double(s.pcie.rx_bytes_per_second));
    put(gpu, kLinkGen, as_double(s.pcie.link_gen));
    put(gpu, kLinkWidth, as_double(s.pcie.link_width));
    put(gpu, kLinkGenMax, as_double(s.pcie.link_gen_max));
    put(gpu, kLinkWidthMax, as_double(s.pcie.link_width_max));
    if (s.xid) {
      put(gpu, kXidCount, static_cast<double>(s.xid->count));
      put(gpu, kXidLast, as_double(s.xid->last));
    }
    put(gpu, kEccMode, as_double(s.ecc.mode_enabled));
    put(gpu, kEccVolCorrected, as_double(s.ecc.volatile_corrected));
    put(gpu, kEccVolUncorrected, as_double(s.ecc.volatile_uncorrected));
    put(gpu, kEccAggCorrected, as_double(s.ecc.aggregate_corrected));
    put(gpu, kEccAggUncorrected, as_double(s.ecc.aggregate_uncorrected));
    put(gpu, kRemapCorrectable, as_double(s.remapped_rows.correctable));
    put(gpu, kRemapUncorrectable, as_double(s.remapped_rows.uncorrectable));
    put(gpu, kRemapPending, as_double(s.remapped_rows.pending));
    put(gpu, kRemapFailure, as_double(s.remapped_rows.failure));
    update_reasons(gpu, s);
    const Activity activity = activity_values(s.activity);
    for (std::size_t i = 0; i < kActivityCount; ++i) put(gpu, kActivityFirst + i, activity[i]);
    update_mig(gpu, s.mig);
    if (s.processes) update_processes(gpu, *s.processes);
  }

  void update_reasons(GpuSeries& gpu, const events::GpuSample& s) {
    // The mask is authoritative; the names stand in for a producer that sent only those.
    std::optional<std::int64_t> mask = s.clock_event_reasons_mask;
    if (!mask && s.clock_event_reasons) {
      mask = 0;
      for (const auto& name : *s.clock_event_reasons) {
        for (const auto& reason : kReasons) {
          if (name == reason.name) *mask |= reason.bit;
        }
      }
    }
    if (!mask) {
      // No reading this time: no reason series, rather than the last sample's values.
      drop(gpu, kReasonsMask);
      for (std::size_t i = 0; i < kReasons.size(); ++i) drop(gpu, kReasonFirst + i);
      return;
    }
    put(gpu, kReasonsMask, static_cast<double>(*mask));
    for (std::size_t i = 0; i < kReasons.size(); ++i) {
      put(gpu, kReasonFirst + i, (*mask & kReasons[i].bit) != 0 ? 1.0 : 0.0);
    }
  }
};

GpuExporter::GpuExporter(Registry& registry, GpuExporterSettings settings)
    : impl_(std::make_unique<Impl>(registry, settings)) {}

GpuExporter::~GpuExporter() = default;

void GpuExporter::update(const events::GpuSample& sample) {
  impl_->update(sample);
}

const SectionSpec& gpu_metrics_section() {
  static const SectionSpec section{
      "gpu_metrics",
      "Per-GPU series on /metrics from every GPU sample (producer, all and gpu-exporter roles); "
      "names and units in docs/gpu-metrics.md.",
      {
          {.name = "enabled",
           .type = ValueType::kBool,
           .description = "Export each sampled GPU's readings on /metrics (the gpu-exporter role "
                          "always does).",
           .default_value = "true"},
          {.name = "naming",
           .description = "telemetryd: telemetryd_gpu_* names in base units (bytes, watts, "
                          "hertz, ratios); dcgm: dcgm-exporter's DCGM_FI_* names, units and labels "
                          "(gpu, UUID, device, modelName, Hostname).",
           .default_value = "telemetryd",
           .allowed = {"telemetryd", "dcgm"}},
          {.name = "max_gpus",
           .type = ValueType::kInt,
           .description = "GPUs exported at most (by UUID); later ones are left out with a "
                          "warning, which bounds a large synthetic fleet.",
           .default_value = "256",
           .min = 1,
           .max = 100000},
          {.name = "max_processes_per_gpu",
           .type = ValueType::kInt,
           .description = "Per-process series per GPU at most (0: none); a process that exits "
                          "loses its series at the next sample.",
           .default_value = "32",
           .min = 0,
           .max = 4096},
      }};
  return section;
}

GpuExporterSettings gpu_exporter_settings(const Config& config) {
  GpuExporterSettings s;
  s.naming = config.str("gpu_metrics.naming") == "dcgm" ? GpuNaming::kDcgm : GpuNaming::kTelemetryd;
  s.max_gpus = static_cast<std::size_t>(config.integer("gpu_metrics.max_gpus"));
  s.max_processes_per_gpu =
      static_cast<std::size_t>(config.integer("gpu_metrics.max_processes_per_gpu"));
  return s;
}

std::unique_ptr<GpuExporter> export_gpu_samples(Source& source, const Config& config,
                                                Registry& registry) {
  if (!config.flag("gpu_metrics.enabled")) return nullptr;
  auto exporter = std::make_unique<GpuExporter>(registry, gpu_exporter_settings(config));
  source.observe_gpu_samples(
      [raw = exporter.get()](const events::GpuSample& sample) { raw->update(sample); });
  return exporter;
}

}  // namespace telemetryd::metrics
