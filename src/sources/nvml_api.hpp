#pragma once
// libnvidia-ml loaded with dlopen rather than linked, so one telemetryd binary runs on hosts with
// and without the NVIDIA driver, and NVML initialised for the lifetime of one NvmlApi.

#include <memory>
#include <string>

#include "sources/nvml_types.hpp"

namespace telemetryd::nvml {

/// Entry points resolved from the library. The first group is required; the others are null when
/// the driver lacks them, and the fields they feed are then omitted from every sample.
struct NvmlFunctions {
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*device_get_count)(unsigned int* count) = nullptr;
  nvmlReturn_t (*device_get_handle_by_index)(unsigned int index, nvmlDevice_t* device) = nullptr;
  nvmlReturn_t (*device_get_uuid)(nvmlDevice_t device, char* uuid, unsigned int length) = nullptr;
  nvmlReturn_t (*device_get_name)(nvmlDevice_t device, char* name, unsigned int length) = nullptr;

  const char* (*error_string)(nvmlReturn_t result) = nullptr;
  nvmlReturn_t (*device_get_utilization_rates)(nvmlDevice_t device,
                                               nvmlUtilization_t* utilization) = nullptr;
  nvmlReturn_t (*device_get_memory_info)(nvmlDevice_t device, nvmlMemory_t* memory) = nullptr;
  nvmlReturn_t (*device_get_power_usage)(nvmlDevice_t device, unsigned int* milliwatts) = nullptr;
  nvmlReturn_t (*device_get_enforced_power_limit)(nvmlDevice_t device,
                                                  unsigned int* milliwatts) = nullptr;
  nvmlReturn_t (*device_get_total_energy_consumption)(nvmlDevice_t device,
                                                      unsigned long long* millijoules) = nullptr;
  nvmlReturn_t (*device_get_temperature)(nvmlDevice_t device, int sensor,
                                         unsigned int* celsius) = nullptr;
  nvmlReturn_t (*device_get_clock_info)(nvmlDevice_t device, int clock_type,
                                        unsigned int* mhz) = nullptr;
  nvmlReturn_t (*device_get_ecc_mode)(nvmlDevice_t device, nvmlEnableState_t* current,
                                      nvmlEnableState_t* pending) = nullptr;
  nvmlReturn_t (*device_get_total_ecc_errors)(nvmlDevice_t device, int error_type, int counter_type,
                                              unsigned long long* count) = nullptr;
  nvmlReturn_t (*device_get_compute_running_processes)(nvmlDevice_t device, unsigned int* count,
                                                       nvmlProcessInfo_v1_t* infos) = nullptr;

  // Issue 12: each optional; a missing one omits its fields.
  nvmlReturn_t (*device_get_memory_info_v2)(nvmlDevice_t device, nvmlMemory_v2_t* memory) = nullptr;
  nvmlReturn_t (*device_get_performance_state)(nvmlDevice_t device,
                                               nvmlPstates_t* pstate) = nullptr;
  nvmlReturn_t (*device_get_current_clocks_event_reasons)(nvmlDevice_t device,
                                                          unsigned long long* reasons) = nullptr;
  // The deprecated name of the same call, for drivers before R535.
  nvmlReturn_t (*device_get_current_clocks_throttle_reasons)(nvmlDevice_t device,
                                                             unsigned long long* reasons) = nullptr;
  nvmlReturn_t (*device_get_curr_pcie_link_generation)(nvmlDevice_t device,
                                                       unsigned int* generation) = nullptr;
  nvmlReturn_t (*device_get_curr_pcie_link_width)(nvmlDevice_t device,
                                                  unsigned int* width) = nullptr;
  nvmlReturn_t (*device_get_max_pcie_link_generation)(nvmlDevice_t device,
                                                      unsigned int* generation) = nullptr;
  nvmlReturn_t (*device_get_max_pcie_link_width)(nvmlDevice_t device,
                                                 unsigned int* width) = nullptr;
  nvmlReturn_t (*device_get_field_values)(nvmlDevice_t device, int count,
                                          nvmlFieldValue_t* values) = nullptr;
  nvmlReturn_t (*device_get_remapped_rows)(nvmlDevice_t device, unsigned int* correctable,
                                           unsigned int* uncorrectable, unsigned int* pending,
                                           unsigned int* failure) = nullptr;
  nvmlReturn_t (*device_get_process_utilization)(nvmlDevice_t device,
                                                 nvmlProcessUtilizationSample_t* samples,
                                                 unsigned int* count,
                                                 unsigned long long last_seen_us) = nullptr;
  nvmlReturn_t (*event_set_create)(nvmlEventSet_t* set) = nullptr;
  nvmlReturn_t (*device_register_events)(nvmlDevice_t device, unsigned long long event_types,
                                         nvmlEventSet_t set) = nullptr;
  nvmlReturn_t (*event_set_wait_v2)(nvmlEventSet_t set, nvmlEventData_t* data,
                                    unsigned int timeout_ms) = nullptr;
  nvmlReturn_t (*event_set_free)(nvmlEventSet_t set) = nullptr;
  nvmlReturn_t (*gpm_query_device_support)(nvmlDevice_t device,
                                           nvmlGpmSupport_t* support) = nullptr;
  nvmlReturn_t (*gpm_sample_alloc)(nvmlGpmSample_t* sample) = nullptr;
  nvmlReturn_t (*gpm_sample_free)(nvmlGpmSample_t sample) = nullptr;
  nvmlReturn_t (*gpm_sample_get)(nvmlDevice_t device, nvmlGpmSample_t sample) = nullptr;
  nvmlReturn_t (*gpm_mig_sample_get)(nvmlDevice_t device, unsigned int gpu_instance_id,
                                     nvmlGpmSample_t sample) = nullptr;
  nvmlReturn_t (*gpm_metrics_get)(nvmlGpmMetricsGet_t* metrics) = nullptr;
  nvmlReturn_t (*device_get_mig_mode)(nvmlDevice_t device, unsigned int* current,
                                      unsigned int* pending) = nullptr;
  nvmlReturn_t (*device_get_max_mig_device_count)(nvmlDevice_t device,
                                                  unsigned int* count) = nullptr;
  nvmlReturn_t (*device_get_mig_device_handle_by_index)(nvmlDevice_t device, unsigned int index,
                                                        nvmlDevice_t* mig_device) = nullptr;
  nvmlReturn_t (*device_get_gpu_instance_id)(nvmlDevice_t mig_device, unsigned int* id) = nullptr;
};

class NvmlApi {
 public:
  /// Opens `library` (a file name searched like any shared library, or a path), resolves the
  /// table and calls nvmlInit_v2. Throws StartupError naming the library and the cause.
  explicit NvmlApi(const std::string& library);
  /// nvmlShutdown, then dlclose.
  ~NvmlApi();
  NvmlApi(const NvmlApi&) = delete;
  NvmlApi& operator=(const NvmlApi&) = delete;

  const NvmlFunctions& functions() const { return functions_; }

 private:
  struct DlClose {
    void operator()(void* handle) const;
  };
  // Declared first so it closes last, after the destructor body has shut NVML down.
  std::unique_ptr<void, DlClose> handle_;
  NvmlFunctions functions_;
};

/// nvmlErrorString's text when the library has it, else the bare code.
std::string error_text(const NvmlFunctions& functions, nvmlReturn_t code);

}  // namespace telemetryd::nvml
