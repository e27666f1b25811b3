#include "sources/nvml_api.hpp"

#include <dlfcn.h>

#include "telemetryd/errors.hpp"

namespace telemetryd::nvml {
namespace {

template <typename Fn>
void resolve(void* handle, const char* name, Fn& slot) {
  slot = reinterpret_cast<Fn>(dlsym(handle, name));
}

template <typename Fn>
void require(void* handle, const char* name, Fn& slot, const std::string& library) {
  resolve(handle, name, slot);
  if (slot == nullptr) {
    throw StartupError("nvml: " + library + " has no symbol " + name +
                       " (not NVML, or a driver older than R319)");
  }
}

}  // namespace

void NvmlApi::DlClose::operator()(void* handle) const {
  dlclose(handle);
}

NvmlApi::NvmlApi(const std::string& library) {
  // RTLD_LOCAL keeps NVML's symbols out of the global namespace, where they could shadow those of
  // another copy loaded by a plugin; RTLD_NOW surfaces a broken install here, not mid-sample.
  handle_.reset(dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle_) {
    const char* why = dlerror();
    throw StartupError("nvml: cannot load " + library + ": " + (why ? why : "unknown error") +
                       " (install the NVIDIA driver, or use producer.source: synthetic)");
  }
  void* h = handle_.get();
  NvmlFunctions& f = functions_;
  require(h, "nvmlInit_v2", f.init, library);
  require(h, "nvmlShutdown", f.shutdown, library);
  require(h, "nvmlDeviceGetCount_v2", f.device_get_count, library);
  require(h, "nvmlDeviceGetHandleByIndex_v2", f.device_get_handle_by_index, library);
  require(h, "nvmlDeviceGetUUID", f.device_get_uuid, library);
  require(h, "nvmlDeviceGetName", f.device_get_name, library);
  resolve(h, "nvmlErrorString", f.error_string);
  resolve(h, "nvmlDeviceGetUtilizationRates", f.device_get_utilization_rates);
  // The unversioned names keep their original (v1) ABI; nvml.h only maps them to newer versions
  // with macros, which a dlsym by name bypasses.
  resolve(h, "nvmlDeviceGetMemoryInfo", f.device_get_memory_info);
  resolve(h, "nvmlDeviceGetPowerUsage", f.device_get_power_usage);
  resolve(h, "nvmlDeviceGetEnforcedPowerLimit", f.device_get_enforced_power_limit);
  resolve(h, "nvmlDeviceGetTotalEnergyConsumption", f.device_get_total_energy_consumption);
  resolve(h, "nvmlDeviceGetTemperature", f.device_get_temperature);
  resolve(h, "nvmlDeviceGetClockInfo", f.device_get_clock_info);
  resolve(h, "nvmlDeviceGetEccMode", f.device_get_ecc_mode);
  resolve(h, "nvmlDeviceGetTotalEccErrors", f.device_get_total_ecc_errors);
  resolve(h, "nvmlDeviceGetComputeRunningProcesses", f.device_get_compute_running_processes);
  resolve(h, "nvmlDeviceGetMemoryInfo_v2", f.device_get_memory_info_v2);
  resolve(h, "nvmlDeviceGetPerformanceState", f.device_get_performance_state);
  resolve(h, "nvmlDeviceGetCurrentClocksEventReasons", f.device_get_current_clocks_event_reasons);
  resolve(h, "nvmlDeviceGetCurrentClocksThrottleReasons",
          f.device_get_current_clocks_throttle_reasons);
  resolve(h, "nvmlDeviceGetCurrPcieLinkGeneration", f.device_get_curr_pcie_link_generation);
  resolve(h, "nvmlDeviceGetCurrPcieLinkWidth", f.device_get_curr_pcie_link_width);
  resolve(h, "nvmlDeviceGetMaxPcieLinkGeneration", f.device_get_max_pcie_link_generation);
  resolve(h, "nvmlDeviceGetMaxPcieLinkWidth", f.device_get_max_pcie_link_width);
  resolve(h, "nvmlDeviceGetFieldValues", f.device_get_field_values);
  resolve(h, "nvmlDeviceGetRemappedRows", f.device_get_remapped_rows);
  resolve(h, "nvmlDeviceGetProcessUtilization", f.device_get_process_utilization);
  resolve(h, "nvmlEventSetCreate", f.event_set_create);
  resolve(h, "nvmlDeviceRegisterEvents", f.device_register_events);
  resolve(h, "nvmlEventSetWait_v2", f.event_set_wait_v2);
  resolve(h, "nvmlEventSetFree", f.event_set_free);
  resolve(h, "nvmlGpmQueryDeviceSupport", f.gpm_query_device_support);
  resolve(h, "nvmlGpmSampleAlloc", f.gpm_sample_alloc);
  resolve(h, "nvmlGpmSampleFree", f.gpm_sample_free);
  resolve(h, "nvmlGpmSampleGet", f.gpm_sample_get);
  resolve(h, "nvmlGpmMigSampleGet", f.gpm_mig_sample_get);
  resolve(h, "nvmlGpmMetricsGet", f.gpm_metrics_get);
  resolve(h, "nvmlDeviceGetMigMode", f.device_get_mig_mode);
  resolve(h, "nvmlDeviceGetMaxMigDeviceCount", f.device_get_max_mig_device_count);
  resolve(h, "nvmlDeviceGetMigDeviceHandleByIndex", f.device_get_mig_device_handle_by_index);
  resolve(h, "nvmlDeviceGetGpuInstanceId", f.device_get_gpu_instance_id);

  const nvmlReturn_t rc = f.init();
  if (rc != NVML_SUCCESS) {
    // The destructor does not run, so no nvmlShutdown follows the failed init; handle_ still
    // closes the library as a constructed member.
    throw StartupError("nvml: nvmlInit failed (" + library + "): " + error_text(f, rc));
  }
}

NvmlApi::~NvmlApi() {
  if (functions_.shutdown != nullptr) functions_.shutdown();
}

std::string error_text(const NvmlFunctions& functions, nvmlReturn_t code) {
  const char* text = functions.error_string ? functions.error_string(code) : nullptr;
  if (text != nullptr) return text;
  return "NVML error " + std::to_string(code);
}

}  // namespace telemetryd::nvml
