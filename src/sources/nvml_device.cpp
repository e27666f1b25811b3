#include "sources/nvml_device.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sources/nvml_cgroup.hpp"

namespace telemetryd::nvml {
namespace {

// Calls the entry points of one device and remembers whether the GPU fell off the bus, so that
// every read after that is skipped instead of waiting on a dead device.
class DeviceReader {
 public:
  DeviceReader(const NvmlFunctions& functions, nvmlDevice_t device)
      : functions_(functions), device_(device) {}

  template <typename Fn, typename... Args>
  nvmlReturn_t call(Fn fn, Args... args) {
    if (fn == nullptr) return NVML_ERROR_NOT_SUPPORTED;
    if (lost_) return NVML_ERROR_GPU_IS_LOST;
    const nvmlReturn_t rc = fn(device_, args...);
    if (rc == NVML_ERROR_GPU_IS_LOST) lost_ = true;
    return rc;
  }

  template <typename Fn, typename... Args>
  bool ok(Fn fn, Args... args) {
    return call(fn, args...) == NVML_SUCCESS;
  }

  std::optional<std::string> text(nvmlReturn_t (*fn)(nvmlDevice_t, char*, unsigned),
                                  nvmlReturn_t& rc) {
    static_assert(NVML_DEVICE_UUID_V2_BUFFER_SIZE == NVML_DEVICE_NAME_V2_BUFFER_SIZE);
    char buf[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    rc = call(fn, buf, static_cast<unsigned>(sizeof buf));
    if (rc != NVML_SUCCESS) return std::nullopt;
    buf[sizeof buf - 1] = '\0';  // never trust a foreign buffer to be terminated
    return std::string(buf);
  }

  const NvmlFunctions& functions() const { return functions_; }
  bool lost() const { return lost_; }

 private:
  const NvmlFunctions& functions_;
  nvmlDevice_t device_;
  bool lost_ = false;
};

std::optional<std::int64_t> ecc_count(DeviceReader& reader, int error_type, int counter_type) {
  unsigned long long count = 0;
  if (!reader.ok(reader.functions().device_get_total_ecc_errors, error_type, counter_type, &count))
    return std::nullopt;
  return static_cast<std::int64_t>(count);
}

events::GpuEcc read_ecc(DeviceReader& reader) {
  events::GpuEcc ecc;
  nvmlEnableState_t current = 0;
  nvmlEnableState_t pending = 0;
  if (reader.ok(reader.functions().device_get_ecc_mode, &current, &pending)) {
    ecc.mode_enabled = current == NVML_FEATURE_ENABLED;
  }
  ecc.volatile_corrected = ecc_count(reader, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC);
  ecc.volatile_uncorrected =
      ecc_count(reader, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC);
  ecc.aggregate_corrected = ecc_count(reader, NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC);
  ecc.aggregate_uncorrected =
      ecc_count(reader, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC);
  return ecc;
}

// The unversioned symbol fills v1 entries (16 bytes), but bindings have been bitten by process
// info layouts that differed from what they assumed (go-nvml#21, nvitop#79: v2 and v3 entries
// are 24 and 32 bytes). Room for 32 bytes an entry means such a mismatch cannot overrun the
// buffer, and a list holding a PID Linux cannot have is dropped rather than published as garbage.
constexpr std::size_t kEntriesOfRoom = 2;
constexpr unsigned kPidLimit = 4194304;  // PID_MAX_LIMIT on 64-bit Linux

// Two-call sizing: ask with an empty buffer, then with room for the count it reports plus slack,
// since processes may start between the calls. A list still growing after a few tries is
// dropped for this tick rather than chased.
std::optional<std::vector<events::GpuProcess>> read_processes(DeviceReader& reader) {
  const auto fn = reader.functions().device_get_compute_running_processes;
  unsigned count = 0;
  nvmlReturn_t rc = reader.call(fn, &count, static_cast<nvmlProcessInfo_v1_t*>(nullptr));
  std::vector<nvmlProcessInfo_v1_t> infos;
  for (int attempt = 0; attempt < 3 && rc == NVML_ERROR_INSUFFICIENT_SIZE; ++attempt) {
    const unsigned capacity = count + 8;
    infos.assign(capacity * kEntriesOfRoom, nvmlProcessInfo_v1_t{});
    count = capacity;
    rc = reader.call(fn, &count, infos.data());
  }
  if (rc != NVML_SUCCESS) return std::nullopt;
  std::vector<events::GpuProcess> out;
  for (unsigned i = 0; i < count && i < infos.size(); ++i) {
    if (infos[i].pid > kPidLimit) return std::nullopt;
    events::GpuProcess process{.pid = infos[i].pid};
    if (infos[i].usedGpuMemory != NVML_VALUE_NOT_AVAILABLE) {
      process.used_memory_bytes = static_cast<std::int64_t>(infos[i].usedGpuMemory);
    }
    out.push_back(process);
  }
  return out;
}

// NVML documents these as 0.0 - 100.0; a value a rounding step outside is clamped, anything
// further off (or NaN) is not published, since the schema would reject the whole sample for it.
std::optional<double> percent(double value) {
  if (!std::isfinite(value) || value < -0.5 || value > 100.5) return std::nullopt;
  return std::clamp(value, 0.0, 100.0);
}

// Per-process utilisation, newest sample per PID. The timestamp of the newest sample seen is
// kept, so the next tick asks only for samples taken since (NOT_FOUND when there are none).
std::unordered_map<unsigned, nvmlProcessUtilizationSample_t> read_process_utilization(
    DeviceReader& reader, DeviceState& state) {
  std::unordered_map<unsigned, nvmlProcessUtilizationSample_t> latest;
  const auto fn = reader.functions().device_get_process_utilization;
  // The timestamps are CPU wall-clock time: after the clock stepped back, one remembered from
  // before the step is in the future, and asking for samples after it would find none for as
  // long as the step was. Everything the driver still holds is asked for instead.
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  if (now_us < 0 || state.process_utilization_seen_us > static_cast<unsigned long long>(now_us)) {
    state.process_utilization_seen_us = 0;
  }
  const unsigned long long since = state.process_utilization_seen_us;
  unsigned count = 0;
  nvmlReturn_t rc =
      reader.call(fn, static_cast<nvmlProcessUtilizationSample_t*>(nullptr), &count, since);
  std::vector<nvmlProcessUtilizationSample_t> samples;
  for (int attempt = 0; attempt < 3 && rc == NVML_ERROR_INSUFFICIENT_SIZE; ++attempt) {
    const unsigned capacity = count + 8;
    samples.assign(capacity, nvmlProcessUtilizationSample_t{});
    count = capacity;
    rc = reader.call(fn, samples.data(), &count, since);
  }
  if (rc != NVML_SUCCESS) return latest;
  for (unsigned i = 0; i < count && i < samples.size(); ++i) {
    const nvmlProcessUtilizationSample_t& sample = samples[i];
    auto [it, inserted] = latest.try_emplace(sample.pid, sample);
    if (!inserted && sample.timeStamp > it->second.timeStamp) it->second = sample;
    state.process_utilization_seen_us =
        std::max(state.process_utilization_seen_us, sample.timeStamp);
  }
  return latest;
}

void attribute_processes(DeviceReader& reader, DeviceState& state,
                         std::vector<events::GpuProcess>& processes) {
  if (processes.empty()) return;
  const auto utilization = read_process_utilization(reader, state);
  for (events::GpuProcess& process : processes) {
    if (const auto it = utilization.find(static_cast<unsigned>(process.pid));
        it != utilization.end()) {
      process.utilization_sm_percent = percent(it->second.smUtil);
      process.utilization_memory_percent = percent(it->second.memUtil);
    }
    if (!state.read_cgroups) continue;
    CgroupIdentity identity = read_cgroup(state.proc_root(), process.pid);
    process.container_id = std::move(identity.container_id);
    process.pod_uid = std::move(identity.pod_uid);
  }
}

// v2 reports memory as nvidia-smi does: `used` without the driver's reserved memory. v1 (the
// only call before R510) counts the reserved memory as used; it is the fallback.
void read_memory(DeviceReader& reader, events::GpuSample& s) {
  const NvmlFunctions& f = reader.functions();
  nvmlMemory_v2_t v2{};
  v2.version = nvmlMemory_v2;
  if (reader.ok(f.device_get_memory_info_v2, &v2)) {
    s.memory_total_bytes = static_cast<std::int64_t>(v2.total);
    s.memory_used_bytes = static_cast<std::int64_t>(v2.used);
    s.memory_reserved_bytes = static_cast<std::int64_t>(v2.reserved);
    s.memory_free_bytes = static_cast<std::int64_t>(v2.free);
    return;
  }
  nvmlMemory_t v1{};
  if (reader.ok(f.device_get_memory_info, &v1)) {
    s.memory_total_bytes = static_cast<std::int64_t>(v1.total);
    s.memory_used_bytes = static_cast<std::int64_t>(v1.used);
    s.memory_free_bytes = static_cast<std::int64_t>(v1.free);
  }
}

// nvmlDeviceGetFieldValues says in valueType which union member it filled.
std::optional<double> field_number(const nvmlFieldValue_t& field) {
  switch (field.valueType) {
    case NVML_VALUE_TYPE_DOUBLE:
      return std::isfinite(field.value.dVal) ? std::optional(field.value.dVal) : std::nullopt;
    case NVML_VALUE_TYPE_UNSIGNED_INT:
      return field.value.uiVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG:
      return static_cast<double>(field.value.ulVal);
    case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
      return static_cast<double>(field.value.ullVal);
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
      return static_cast<double>(field.value.sllVal);
    case NVML_VALUE_TYPE_SIGNED_INT:
      return field.value.siVal;
    case NVML_VALUE_TYPE_UNSIGNED_SHORT:
      return field.value.usVal;
    default:
      return std::nullopt;
  }
}

// A cumulative counter as the driver typed it; nullopt for a type a counter cannot have.
std::optional<unsigned long long> field_counter(const nvmlFieldValue_t& field) {
  switch (field.valueType) {
    case NVML_VALUE_TYPE_UNSIGNED_INT:
      return field.value.uiVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG:
      return field.value.ulVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
      return field.value.ullVal;
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG:
      if (field.value.sllVal < 0) return std::nullopt;
      return static_cast<unsigned long long>(field.value.sllVal);
    default:
      return std::nullopt;
  }
}

// Bytes per second since the counter's last reading, which `field` then replaces. None on the
// first reading, and none when the counter went down: nvml.h says it can wrap, and a driver
// reload resets it; either way the difference is not the traffic.
std::optional<std::int64_t> counter_rate(DeviceState::PcieCount& last,
                                         const nvmlFieldValue_t& field,
                                         std::chrono::steady_clock::time_point at) {
  std::optional<unsigned long long> bytes;
  if (field.nvmlReturn == NVML_SUCCESS) bytes = field_counter(field);
  if (!bytes) {
    last.valid = false;
    return std::nullopt;
  }
  std::optional<std::int64_t> rate;
  if (last.valid && *bytes >= last.bytes && at > last.at) {
    const double seconds = std::chrono::duration<double>(at - last.at).count();
    const double per_second = static_cast<double>(*bytes - last.bytes) / seconds;
    if (per_second < 9.0e18) rate = std::llround(per_second);
  }
  last = {.bytes = *bytes, .at = at, .valid = true};
  return rate;
}

// One nvmlDeviceGetFieldValues call: the memory temperature, and the PCIe byte counters when
// GPM does not give the PCIe throughput.
void read_field_values(DeviceReader& reader, DeviceState& state, events::GpuSample& s) {
  const bool counters = state.gpm != DeviceState::Gpm::kSupported || state.gpm_pcie_unsupported;
  nvmlFieldValue_t fields[3] = {};
  fields[0].fieldId = NVML_FI_DEV_MEMORY_TEMP;
  fields[1].fieldId = NVML_FI_DEV_PCIE_COUNT_TX_BYTES;
  fields[2].fieldId = NVML_FI_DEV_PCIE_COUNT_RX_BYTES;
  // The call succeeds as a whole and reports per field: NOT_SUPPORTED shows up in nvmlReturn.
  if (!reader.ok(reader.functions().device_get_field_values, counters ? 3 : 1, fields)) {
    state.pcie_tx.valid = state.pcie_rx.valid = false;
    return;
  }
  if (fields[0].nvmlReturn == NVML_SUCCESS) s.temperature_memory_celsius = field_number(fields[0]);
  if (!counters) return;
  const auto at = state.now();
  s.pcie.tx_bytes_per_second = counter_rate(state.pcie_tx, fields[1], at);
  s.pcie.rx_bytes_per_second = counter_rate(state.pcie_rx, fields[2], at);
}

void read_clock_event_reasons(DeviceReader& reader, events::GpuSample& s) {
  const NvmlFunctions& f = reader.functions();
  unsigned long long mask = 0;
  nvmlReturn_t rc = reader.call(f.device_get_current_clocks_event_reasons, &mask);
  if (rc != NVML_SUCCESS && rc != NVML_ERROR_GPU_IS_LOST) {
    rc = reader.call(f.device_get_current_clocks_throttle_reasons, &mask);
  }
  if (rc != NVML_SUCCESS) return;
  // Defined bits end at 0x100; the top bit is dropped so the contract's integer stays >= 0.
  s.clock_event_reasons_mask = static_cast<std::int64_t>(
      mask & static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max()));
  s.clock_event_reasons = clock_event_reason_names(mask);
}

// The link; the throughput comes from GPM or the byte counters (DeviceState::PcieCount).
void read_pcie_link(DeviceReader& reader, events::GpuPcie& pcie) {
  const NvmlFunctions& f = reader.functions();
  unsigned value = 0;
  if (reader.ok(f.device_get_curr_pcie_link_generation, &value)) pcie.link_gen = value;
  if (reader.ok(f.device_get_curr_pcie_link_width, &value)) pcie.link_width = value;
  if (reader.ok(f.device_get_max_pcie_link_generation, &value)) pcie.link_gen_max = value;
  if (reader.ok(f.device_get_max_pcie_link_width, &value)) pcie.link_width_max = value;
}

void read_remapped_rows(DeviceReader& reader, events::GpuRemappedRows& rows) {
  unsigned correctable = 0, uncorrectable = 0, pending = 0, failure = 0;
  if (!reader.ok(reader.functions().device_get_remapped_rows, &correctable, &uncorrectable,
                 &pending, &failure))
    return;
  rows.correctable = correctable;
  rows.uncorrectable = uncorrectable;
  rows.pending = pending != 0;
  rows.failure = failure != 0;
}

// ---- GPM ------------------------------------------------------------------------------------

using ActivityField = std::optional<double> events::GpuActivity::*;
constexpr std::pair<unsigned, ActivityField> kGpmMetrics[] = {
    {NVML_GPM_METRIC_SM_UTIL, &events::GpuActivity::sm_active_percent},
    {NVML_GPM_METRIC_SM_OCCUPANCY, &events::GpuActivity::sm_occupancy_percent},
    {NVML_GPM_METRIC_ANY_TENSOR_UTIL, &events::GpuActivity::tensor_active_percent},
    {NVML_GPM_METRIC_DRAM_BW_UTIL, &events::GpuActivity::dram_active_percent},
    {NVML_GPM_METRIC_FP16_UTIL, &events::GpuActivity::fp16_active_percent},
    {NVML_GPM_METRIC_FP32_UTIL, &events::GpuActivity::fp32_active_percent},
    {NVML_GPM_METRIC_FP64_UTIL, &events::GpuActivity::fp64_active_percent},
};

struct GpmReading {
  events::GpuActivity activity;
  std::optional<std::int64_t> pcie_tx_bytes_per_second;
  std::optional<std::int64_t> pcie_rx_bytes_per_second;
  bool pcie_unsupported = false;
};

// GPM's PCIe metrics are MiB/s (nvml.h: "PCIe traffic from this GPU in MiB/sec").
std::optional<std::int64_t> mib_to_bytes_per_second(double mib_per_second) {
  if (!std::isfinite(mib_per_second) || mib_per_second < 0 || mib_per_second > 1e12)
    return std::nullopt;
  return std::llround(mib_per_second * 1048576.0);
}

constexpr unsigned kGpmPcieMetrics[] = {NVML_GPM_METRIC_PCIE_TX_PER_SEC,
                                        NVML_GPM_METRIC_PCIE_RX_PER_SEC};

GpmReading gpm_read(DeviceState& state, nvmlGpmSample_t first, nvmlGpmSample_t second,
                    bool with_pcie) {
  GpmReading reading;
  nvmlGpmMetricsGet_t& get = *state.gpm_metrics;
  get.version = NVML_GPM_METRICS_GET_VERSION;
  unsigned count = 0;
  for (const auto& metric : kGpmMetrics) {
    get.metrics[count] = nvmlGpmMetric_t{};
    get.metrics[count++].metricId = metric.first;
  }
  if (with_pcie) {
    for (const unsigned id : kGpmPcieMetrics) {
      get.metrics[count] = nvmlGpmMetric_t{};
      get.metrics[count++].metricId = id;
    }
  }
  get.numMetrics = count;
  get.sample1 = first;
  get.sample2 = second;
  if (state.functions().gpm_metrics_get(&get) != NVML_SUCCESS) return reading;
  for (std::size_t i = 0; i < std::size(kGpmMetrics); ++i) {
    // Each metric has its own status: one the GPU cannot count is only omitted.
    if (get.metrics[i].metricId != kGpmMetrics[i].first) continue;
    if (get.metrics[i].nvmlReturn != NVML_SUCCESS) continue;
    reading.activity.*(kGpmMetrics[i].second) = percent(get.metrics[i].value);
  }
  if (!with_pcie) return reading;
  for (std::size_t i = 0; i < std::size(kGpmPcieMetrics); ++i) {
    const nvmlGpmMetric_t& metric = get.metrics[std::size(kGpmMetrics) + i];
    if (metric.metricId != kGpmPcieMetrics[i]) continue;
    if (metric.nvmlReturn == NVML_ERROR_NOT_SUPPORTED) reading.pcie_unsupported = true;
    if (metric.nvmlReturn != NVML_SUCCESS) continue;
    (i == 0 ? reading.pcie_tx_bytes_per_second : reading.pcie_rx_bytes_per_second) =
        mib_to_bytes_per_second(metric.value);
  }
  return reading;
}

// Takes this tick's sample with `take` and reads GPM against the previous tick's.
template <typename Take>
std::optional<GpmReading> advance(DeviceState& state, GpmPair& pair, bool with_pcie, Take take) {
  const NvmlFunctions& f = state.functions();
  if (pair.previous == nullptr && f.gpm_sample_alloc(&pair.previous) != NVML_SUCCESS) {
    pair.previous = nullptr;
    return std::nullopt;
  }
  if (pair.current == nullptr && f.gpm_sample_alloc(&pair.current) != NVML_SUCCESS) {
    pair.current = nullptr;
    return std::nullopt;
  }
  if (take(pair.current) != NVML_SUCCESS) {
    pair.have_previous = false;  // a gap: the next difference would span it
    return std::nullopt;
  }
  const auto taken_at = state.now();
  // Too soon after the previous sample for NVML's counters: this one is dropped and the
  // previous kept, so the next tick's difference spans both intervals.
  if (pair.have_previous && taken_at - pair.previous_at <= kGpmMinInterval) return std::nullopt;
  std::optional<GpmReading> reading;
  if (pair.have_previous) reading = gpm_read(state, pair.previous, pair.current, with_pcie);
  std::swap(pair.previous, pair.current);
  pair.previous_at = taken_at;
  pair.have_previous = true;
  return reading;
}

// GPU instance ids of the MIG devices, each once (compute instances of one GPU instance share it).
std::set<unsigned> gpu_instance_ids(DeviceReader& reader) {
  const NvmlFunctions& f = reader.functions();
  std::set<unsigned> ids;
  unsigned count = 0;
  if (f.device_get_gpu_instance_id == nullptr ||
      !reader.ok(f.device_get_max_mig_device_count, &count))
    return ids;
  for (unsigned i = 0; i < count; ++i) {
    nvmlDevice_t mig = nullptr;
    if (!reader.ok(f.device_get_mig_device_handle_by_index, i, &mig)) continue;
    unsigned id = 0;
    if (f.device_get_gpu_instance_id(mig, &id) == NVML_SUCCESS) ids.insert(id);
  }
  return ids;
}

void read_mig_gpm(DeviceReader& reader, DeviceState& state, events::GpuSample& s) {
  const NvmlFunctions& f = reader.functions();
  unsigned current = 0, pending = 0;
  if (f.gpm_mig_sample_get == nullptr || !reader.ok(f.device_get_mig_mode, &current, &pending) ||
      current != NVML_DEVICE_MIG_ENABLE) {
    for (auto& [id, pair] : state.mig_gpm) state.free_pair(pair);
    state.mig_gpm.clear();
    return;
  }
  const std::set<unsigned> ids = gpu_instance_ids(reader);
  for (auto it = state.mig_gpm.begin(); it != state.mig_gpm.end();) {
    if (ids.count(it->first) != 0) {
      ++it;
      continue;
    }
    state.free_pair(it->second);  // a GPU instance destroyed since the last tick
    it = state.mig_gpm.erase(it);
  }
  std::vector<events::GpuMigActivity> out;
  for (const unsigned id : ids) {
    // PCIe is the whole GPU's: not asked per instance.
    auto reading = advance(state, state.mig_gpm[id], false, [&](nvmlGpmSample_t sample) {
      return reader.call(f.gpm_mig_sample_get, id, sample);
    });
    if (reading && !reading->activity.empty())
      out.push_back({.gpu_instance_id = id, .activity = reading->activity});
  }
  if (!out.empty()) s.mig = std::move(out);
}

void read_gpm(DeviceReader& reader, DeviceState& state, events::GpuSample& s) {
  const NvmlFunctions& f = reader.functions();
  if (state.gpm == DeviceState::Gpm::kUnknown) {
    if (f.gpm_query_device_support == nullptr || f.gpm_sample_alloc == nullptr ||
        f.gpm_sample_free == nullptr || f.gpm_sample_get == nullptr ||
        f.gpm_metrics_get == nullptr) {
      state.gpm = DeviceState::Gpm::kUnsupported;
      return;
    }
    nvmlGpmSupport_t support{};
    support.version = NVML_GPM_SUPPORT_VERSION;
    const nvmlReturn_t rc = reader.call(f.gpm_query_device_support, &support);
    if (rc == NVML_ERROR_GPU_IS_LOST) return;  // asked again once the GPU is back
    const bool supported = rc == NVML_SUCCESS && support.isSupportedDevice != 0;
    state.gpm = supported ? DeviceState::Gpm::kSupported : DeviceState::Gpm::kUnsupported;
    if (supported) state.gpm_metrics = std::make_unique<nvmlGpmMetricsGet_t>();
  }
  if (state.gpm != DeviceState::Gpm::kSupported) return;
  if (auto reading =
          advance(state, state.device_gpm, !state.gpm_pcie_unsupported,
                  [&](nvmlGpmSample_t sample) { return reader.call(f.gpm_sample_get, sample); })) {
    s.activity = reading->activity;
    s.pcie.tx_bytes_per_second = reading->pcie_tx_bytes_per_second;
    s.pcie.rx_bytes_per_second = reading->pcie_rx_bytes_per_second;
    // From the next tick on, the byte counters stand in.
    if (reading->pcie_unsupported) state.gpm_pcie_unsupported = true;
  }
  read_mig_gpm(reader, state, s);
}

void read_metrics(DeviceReader& reader, DeviceState& state, events::GpuSample& s) {
  const NvmlFunctions& f = reader.functions();
  nvmlUtilization_t utilization{};
  if (reader.ok(f.device_get_utilization_rates, &utilization)) {
    s.utilization_gpu_percent = utilization.gpu;
    s.utilization_memory_percent = utilization.memory;
  }
  read_memory(reader, s);
  unsigned milliwatts = 0;
  if (reader.ok(f.device_get_power_usage, &milliwatts)) s.power_draw_watts = milliwatts / 1000.0;
  if (reader.ok(f.device_get_enforced_power_limit, &milliwatts)) {
    s.power_limit_watts = milliwatts / 1000.0;
  }
  unsigned long long millijoules = 0;
  if (reader.ok(f.device_get_total_energy_consumption, &millijoules)) {
    s.energy_consumed_mj = static_cast<std::int64_t>(millijoules);
  }
  unsigned celsius = 0;
  if (reader.ok(f.device_get_temperature, NVML_TEMPERATURE_GPU, &celsius)) {
    s.temperature_gpu_celsius = celsius;
  }
  unsigned mhz = 0;
  if (reader.ok(f.device_get_clock_info, NVML_CLOCK_SM, &mhz)) s.clock_sm_mhz = mhz;
  if (reader.ok(f.device_get_clock_info, NVML_CLOCK_MEM, &mhz)) s.clock_mem_mhz = mhz;
  nvmlPstates_t pstate = NVML_PSTATE_UNKNOWN;
  if (reader.ok(f.device_get_performance_state, &pstate) && pstate >= NVML_PSTATE_0 &&
      pstate <= NVML_PSTATE_15) {
    s.pstate = pstate;
  }
  read_clock_event_reasons(reader, s);
  read_pcie_link(reader, s.pcie);
  s.ecc = read_ecc(reader);
  read_remapped_rows(reader, s.remapped_rows);
  s.processes = read_processes(reader);
  if (s.processes) attribute_processes(reader, state, *s.processes);
  read_gpm(reader, state, s);
  // After GPM, which decides whether the PCIe byte counters are needed.
  read_field_values(reader, state, s);
  s.xid = state.xid;
}

}  // namespace

DeviceState::DeviceState(const NvmlFunctions& functions, std::string proc_root)
    : functions_(&functions), proc_root_(std::move(proc_root)) {}

DeviceState::~DeviceState() {
  free_pair(device_gpm);
  for (auto& [id, pair] : mig_gpm) free_pair(pair);
}

void DeviceState::free_pair(GpmPair& pair) {
  for (nvmlGpmSample_t* sample : {&pair.previous, &pair.current}) {
    if (*sample != nullptr && functions_->gpm_sample_free != nullptr) {
      functions_->gpm_sample_free(*sample);
    }
    *sample = nullptr;
  }
  pair.have_previous = false;
}

std::vector<std::string> clock_event_reason_names(unsigned long long mask) {
  static constexpr std::pair<unsigned long long, const char*> kNames[] = {
      {nvmlClocksEventReasonGpuIdle, "gpu_idle"},
      {nvmlClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting"},
      {nvmlClocksEventReasonSwPowerCap, "sw_power_cap"},
      {nvmlClocksThrottleReasonHwSlowdown, "hw_slowdown"},
      {nvmlClocksEventReasonSyncBoost, "sync_boost"},
      {nvmlClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"},
      {nvmlClocksThrottleReasonHwThermalSlowdown, "hw_thermal_slowdown"},
      {nvmlClocksThrottleReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
      {nvmlClocksEventReasonDisplayClockSetting, "display_clocks_setting"},
  };
  std::vector<std::string> names;
  for (const auto& [bit, name] : kNames)
    if ((mask & bit) != 0) names.emplace_back(name);
  return names;
}

std::optional<events::GpuSample> sample_device(const NvmlFunctions& functions, nvmlDevice_t device,
                                               unsigned index, std::string& error) {
  DeviceState state(functions, "/proc");
  return sample_device(functions, device, index, state, error);
}

std::optional<events::GpuSample> sample_device(const NvmlFunctions& functions, nvmlDevice_t device,
                                               unsigned index, DeviceState& state,
                                               std::string& error) {
  DeviceReader reader(functions, device);
  const std::string gpu = "GPU " + std::to_string(index);
  nvmlReturn_t rc = NVML_SUCCESS;
  const auto uuid = reader.text(functions.device_get_uuid, rc);
  if (!uuid) {
    error = gpu + ": nvmlDeviceGetUUID failed: " + error_text(functions, rc);
    return std::nullopt;
  }
  const auto name = reader.text(functions.device_get_name, rc);
  if (!name) {
    error = gpu + " (" + *uuid + "): nvmlDeviceGetName failed: " + error_text(functions, rc);
    return std::nullopt;
  }
  events::GpuSample s;
  s.gpu_uuid = *uuid;
  s.model_name = *name;
  s.collector = "nvml";
  s.gpu_index = index;
  read_metrics(reader, state, s);
  // A GPU lost mid-read would mix live and missing fields; none of it is trusted.
  if (reader.lost()) {
    error = gpu + " (" + *uuid + "): " + error_text(functions, NVML_ERROR_GPU_IS_LOST);
    return std::nullopt;
  }
  return s;
}

}  // namespace telemetryd::nvml
