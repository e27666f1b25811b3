#include "sources/nvml_device.hpp"

#include <cstddef>
#include <vector>

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

void read_metrics(DeviceReader& reader, events::GpuSample& s) {
  const NvmlFunctions& f = reader.functions();
  nvmlUtilization_t utilization{};
  if (reader.ok(f.device_get_utilization_rates, &utilization)) {
    s.utilization_gpu_percent = utilization.gpu;
    s.utilization_memory_percent = utilization.memory;
  }
  nvmlMemory_t memory{};
  if (reader.ok(f.device_get_memory_info, &memory)) {
    s.memory_total_bytes = static_cast<std::int64_t>(memory.total);
    s.memory_used_bytes = static_cast<std::int64_t>(memory.used);
  }
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
  s.ecc = read_ecc(reader);
  s.processes = read_processes(reader);
}

}  // namespace

std::optional<events::GpuSample> sample_device(const NvmlFunctions& functions, nvmlDevice_t device,
                                               unsigned index, std::string& error) {
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
  read_metrics(reader, s);
  // A GPU lost mid-read would mix live and missing fields; none of it is trusted.
  if (reader.lost()) {
    error = gpu + " (" + *uuid + "): " + error_text(functions, NVML_ERROR_GPU_IS_LOST);
    return std::nullopt;
  }
  return s;
}

}  // namespace telemetryd::nvml
