// The daemon's NVML declarations (src/sources/nvml_types.hpp, the NvmlFunctions table of
// nvml_api.hpp) against the fake library's own (tests/unit/fake_nvml/fake_nvml_abi.hpp), both
// transcribed from nvml.h: a field or parameter moved, resized or retyped in either one fails
// here, by name, instead of passing every test against a fake that shares the mistake.

#include <catch2/catch.hpp>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "fake_nvml/fake_nvml_abi.hpp"
#include "sources/nvml_api.hpp"
#include "sources/nvml_types.hpp"

namespace ours = telemetryd::nvml;
namespace theirs = fake_nvml;

namespace {

struct Layout {
  std::string name;
  std::size_t ours_offset, theirs_offset;
  std::size_t ours_size, theirs_size;
  bool same_kind;  // both floating, both signed integers, both unsigned, or both pointers
};

template <typename A, typename B>
constexpr bool same_kind() {
  using a = std::remove_cv_t<A>;
  using b = std::remove_cv_t<B>;
  if constexpr (std::is_pointer_v<a> || std::is_pointer_v<b>) {
    return std::is_pointer_v<a> && std::is_pointer_v<b>;
  } else if constexpr (std::is_arithmetic_v<a> && std::is_arithmetic_v<b>) {
    return std::is_floating_point_v<a> == std::is_floating_point_v<b> &&
           std::is_signed_v<a> == std::is_signed_v<b>;
  } else {
    return std::is_class_v<a> == std::is_class_v<b> && std::is_union_v<a> == std::is_union_v<b>;
  }
}

#define FIELD(type, member)                                                          \
  Layout {                                                                           \
#type "." #member, offsetof(ours::type, member), offsetof(theirs::type, member), \
        sizeof(ours::type::member), sizeof(theirs::type::member),                    \
        same_kind < decltype(ours::type::member), decltype(theirs::type::member)>()  \
  }

void check(const std::vector<Layout>& fields) {
  for (const Layout& f : fields) {
    INFO(f.name);
    CHECK(f.ours_offset == f.theirs_offset);
    CHECK(f.ours_size == f.theirs_size);
    CHECK(f.same_kind);
  }
}

// One parameter (or the return value) of an entry point as the ABI sees it: its size and kind,
// and for a pointer the size and kind of what it points to (0 for an opaque handle's struct).
struct Param {
  std::size_t size;
  char kind;  // p: pointer, f: floating, i: signed, u: unsigned, c: class, U: union, v: void
  std::size_t pointee_size;
  char pointee_kind;
  bool operator==(const Param&) const = default;
};

template <typename T>
constexpr char kind_of() {
  using t = std::remove_cv_t<T>;
  if constexpr (std::is_pointer_v<t>) return 'p';
  if constexpr (std::is_floating_point_v<t>) return 'f';
  if constexpr (std::is_integral_v<t>) return std::is_signed_v<t> ? 'i' : 'u';
  if constexpr (std::is_union_v<t>) return 'U';
  if constexpr (std::is_class_v<t>) return 'c';
  if constexpr (std::is_void_v<t>) return 'v';
  return '?';
}

template <typename T>
constexpr std::size_t size_of() {
  if constexpr (std::is_void_v<T>) {
    return 0;
  } else if constexpr (requires { sizeof(T); }) {
    return sizeof(T);
  } else {
    return 0;  // nvmlDevice_st and the other opaque handles
  }
}

template <typename T>
constexpr Param describe() {
  Param p{size_of<T>(), kind_of<T>(), 0, 0};
  if constexpr (std::is_pointer_v<T>) {
    using Pointee = std::remove_pointer_t<T>;
    p.pointee_size = size_of<Pointee>();
    p.pointee_kind = kind_of<Pointee>();
  }
  return p;
}

template <typename R, typename... Args>
std::vector<Param> signature(R (*)(Args...)) {
  return {describe<R>(), describe<Args>()...};
}

struct Signature {
  const char* symbol;
  std::vector<Param> ours, theirs;
};

#define SIGNATURE(member, symbol)                                   \
  Signature {                                                       \
#symbol, signature(decltype(ours::NvmlFunctions::member){}),    \
        signature(static_cast <decltype(&theirs::symbol)>(nullptr)) \
  }

}  // namespace

TEST_CASE("nvml_types.hpp lays out every struct as the fake's nvml.h does", "[nvml][abi]") {
  CHECK(sizeof(ours::nvmlUtilization_t) == sizeof(theirs::nvmlUtilization_t));
  CHECK(sizeof(ours::nvmlMemory_t) == sizeof(theirs::nvmlMemory_t));
  CHECK(sizeof(ours::nvmlMemory_v2_t) == sizeof(theirs::nvmlMemory_v2_t));
  CHECK(sizeof(ours::nvmlProcessInfo_v1_t) == sizeof(theirs::nvmlProcessInfo_v1_t));
  CHECK(sizeof(ours::nvmlProcessUtilizationSample_t) ==
        sizeof(theirs::nvmlProcessUtilizationSample_t));
  CHECK(sizeof(ours::nvmlEventData_t) == sizeof(theirs::nvmlEventData_t));
  CHECK(sizeof(ours::nvmlValue_t) == sizeof(theirs::nvmlValue_t));
  CHECK(sizeof(ours::nvmlFieldValue_t) == sizeof(theirs::nvmlFieldValue_t));
  CHECK(sizeof(ours::nvmlGpmMetric_t) == sizeof(theirs::nvmlGpmMetric_t));
  CHECK(sizeof(ours::nvmlGpmMetricsGet_t) == sizeof(theirs::nvmlGpmMetricsGet_t));
  CHECK(sizeof(ours::nvmlGpmSupport_t) == sizeof(theirs::nvmlGpmSupport_t));
  CHECK(alignof(ours::nvmlFieldValue_t) == alignof(theirs::nvmlFieldValue_t));
  CHECK(alignof(ours::nvmlGpmMetricsGet_t) == alignof(theirs::nvmlGpmMetricsGet_t));

  check({
      FIELD(nvmlUtilization_t, gpu),
      FIELD(nvmlUtilization_t, memory),
      FIELD(nvmlMemory_t, total),
      FIELD(nvmlMemory_t, free),
      FIELD(nvmlMemory_t, used),
      FIELD(nvmlMemory_v2_t, version),
      FIELD(nvmlMemory_v2_t, total),
      FIELD(nvmlMemory_v2_t, reserved),
      FIELD(nvmlMemory_v2_t, free),
      FIELD(nvmlMemory_v2_t, used),
      FIELD(nvmlProcessInfo_v1_t, pid),
      FIELD(nvmlProcessInfo_v1_t, usedGpuMemory),
      FIELD(nvmlProcessUtilizationSample_t, pid),
      FIELD(nvmlProcessUtilizationSample_t, timeStamp),
      FIELD(nvmlProcessUtilizationSample_t, smUtil),
      FIELD(nvmlProcessUtilizationSample_t, memUtil),
      FIELD(nvmlProcessUtilizationSample_t, encUtil),
      FIELD(nvmlProcessUtilizationSample_t, decUtil),
      FIELD(nvmlEventData_t, device),
      FIELD(nvmlEventData_t, eventType),
      FIELD(nvmlEventData_t, eventData),
      FIELD(nvmlEventData_t, gpuInstanceId),
      FIELD(nvmlEventData_t, computeInstanceId),
      FIELD(nvmlValue_t, dVal),
      FIELD(nvmlValue_t, siVal),
      FIELD(nvmlValue_t, uiVal),
      FIELD(nvmlValue_t, ulVal),
      FIELD(nvmlValue_t, ullVal),
      FIELD(nvmlValue_t, sllVal),
      FIELD(nvmlValue_t, usVal),
      FIELD(nvmlFieldValue_t, fieldId),
      FIELD(nvmlFieldValue_t, scopeId),
      FIELD(nvmlFieldValue_t, timestamp),
      FIELD(nvmlFieldValue_t, latencyUsec),
      FIELD(nvmlFieldValue_t, valueType),
      FIELD(nvmlFieldValue_t, nvmlReturn),
      FIELD(nvmlFieldValue_t, value),
      FIELD(nvmlGpmMetric_t, metricId),
      FIELD(nvmlGpmMetric_t, nvmlReturn),
      FIELD(nvmlGpmMetric_t, value),
      FIELD(nvmlGpmMetric_t, metricInfo),
      FIELD(nvmlGpmMetricsGet_t, version),
      FIELD(nvmlGpmMetricsGet_t, numMetrics),
      FIELD(nvmlGpmMetricsGet_t, sample1),
      FIELD(nvmlGpmMetricsGet_t, sample2),
      FIELD(nvmlGpmMetricsGet_t, metrics),
      FIELD(nvmlGpmSupport_t, version),
      FIELD(nvmlGpmSupport_t, isSupportedDevice),
  });

  // The anonymous metricInfo struct, member by member.
  using OursInfo = decltype(ours::nvmlGpmMetric_t::metricInfo);
  using TheirsInfo = decltype(theirs::nvmlGpmMetric_t::metricInfo);
  CHECK(sizeof(OursInfo) == sizeof(TheirsInfo));
  CHECK(offsetof(OursInfo, shortName) == offsetof(TheirsInfo, shortName));
  CHECK(offsetof(OursInfo, longName) == offsetof(TheirsInfo, longName));
  CHECK(offsetof(OursInfo, unit) == offsetof(TheirsInfo, unit));
}

TEST_CASE("nvml_types.hpp agrees with the fake's nvml.h on every constant", "[nvml][abi]") {
  const std::vector<std::pair<const char*, std::pair<long long, long long>>> values = {
      {"NVML_SUCCESS", {ours::NVML_SUCCESS, theirs::NVML_SUCCESS}},
      {"NVML_ERROR_INVALID_ARGUMENT",
       {ours::NVML_ERROR_INVALID_ARGUMENT, theirs::NVML_ERROR_INVALID_ARGUMENT}},
      {"NVML_ERROR_NOT_SUPPORTED",
       {ours::NVML_ERROR_NOT_SUPPORTED, theirs::NVML_ERROR_NOT_SUPPORTED}},
      {"NVML_ERROR_NOT_FOUND", {ours::NVML_ERROR_NOT_FOUND, theirs::NVML_ERROR_NOT_FOUND}},
      {"NVML_ERROR_INSUFFICIENT_SIZE",
       {ours::NVML_ERROR_INSUFFICIENT_SIZE, theirs::NVML_ERROR_INSUFFICIENT_SIZE}},
      {"NVML_ERROR_DRIVER_NOT_LOADED",
       {ours::NVML_ERROR_DRIVER_NOT_LOADED, theirs::NVML_ERROR_DRIVER_NOT_LOADED}},
      {"NVML_ERROR_TIMEOUT", {ours::NVML_ERROR_TIMEOUT, theirs::NVML_ERROR_TIMEOUT}},
      {"NVML_ERROR_FUNCTION_NOT_FOUND",
       {ours::NVML_ERROR_FUNCTION_NOT_FOUND, theirs::NVML_ERROR_FUNCTION_NOT_FOUND}},
      {"NVML_ERROR_GPU_IS_LOST", {ours::NVML_ERROR_GPU_IS_LOST, theirs::NVML_ERROR_GPU_IS_LOST}},
      {"NVML_ERROR_ARGUMENT_VERSION_MISMATCH",
       {ours::NVML_ERROR_ARGUMENT_VERSION_MISMATCH, theirs::NVML_ERROR_ARGUMENT_VERSION_MISMATCH}},
      {"NVML_ERROR_UNKNOWN", {ours::NVML_ERROR_UNKNOWN, theirs::NVML_ERROR_UNKNOWN}},
      {"NVML_FEATURE_ENABLED", {ours::NVML_FEATURE_ENABLED, theirs::NVML_FEATURE_ENABLED}},
      {"NVML_TEMPERATURE_GPU", {ours::NVML_TEMPERATURE_GPU, theirs::NVML_TEMPERATURE_GPU}},
      {"NVML_CLOCK_SM", {ours::NVML_CLOCK_SM, theirs::NVML_CLOCK_SM}},
      {"NVML_CLOCK_MEM", {ours::NVML_CLOCK_MEM, theirs::NVML_CLOCK_MEM}},
      {"NVML_MEMORY_ERROR_TYPE_CORRECTED",
       {ours::NVML_MEMORY_ERROR_TYPE_CORRECTED, theirs::NVML_MEMORY_ERROR_TYPE_CORRECTED}},
      {"NVML_MEMORY_ERROR_TYPE_UNCORRECTED",
       {ours::NVML_MEMORY_ERROR_TYPE_UNCORRECTED, theirs::NVML_MEMORY_ERROR_TYPE_UNCORRECTED}},
      {"NVML_VOLATILE_ECC", {ours::NVML_VOLATILE_ECC, theirs::NVML_VOLATILE_ECC}},
      {"NVML_AGGREGATE_ECC", {ours::NVML_AGGREGATE_ECC, theirs::NVML_AGGREGATE_ECC}},
      {"NVML_PSTATE_0", {ours::NVML_PSTATE_0, theirs::NVML_PSTATE_0}},
      {"NVML_PSTATE_15", {ours::NVML_PSTATE_15, theirs::NVML_PSTATE_15}},
      {"NVML_PSTATE_UNKNOWN", {ours::NVML_PSTATE_UNKNOWN, theirs::NVML_PSTATE_UNKNOWN}},
      {"NVML_DEVICE_MIG_DISABLE", {ours::NVML_DEVICE_MIG_DISABLE, FAKE_NVML_DEVICE_MIG_DISABLE}},
      {"NVML_DEVICE_MIG_ENABLE", {ours::NVML_DEVICE_MIG_ENABLE, FAKE_NVML_DEVICE_MIG_ENABLE}},
      {"NVML_VALUE_TYPE_DOUBLE", {ours::NVML_VALUE_TYPE_DOUBLE, theirs::NVML_VALUE_TYPE_DOUBLE}},
      {"NVML_VALUE_TYPE_UNSIGNED_INT",
       {ours::NVML_VALUE_TYPE_UNSIGNED_INT, theirs::NVML_VALUE_TYPE_UNSIGNED_INT}},
      {"NVML_VALUE_TYPE_UNSIGNED_LONG",
       {ours::NVML_VALUE_TYPE_UNSIGNED_LONG, theirs::NVML_VALUE_TYPE_UNSIGNED_LONG}},
      {"NVML_VALUE_TYPE_UNSIGNED_LONG_LONG",
       {ours::NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, theirs::NVML_VALUE_TYPE_UNSIGNED_LONG_LONG}},
      {"NVML_VALUE_TYPE_SIGNED_LONG_LONG",
       {ours::NVML_VALUE_TYPE_SIGNED_LONG_LONG, theirs::NVML_VALUE_TYPE_SIGNED_LONG_LONG}},
      {"NVML_VALUE_TYPE_SIGNED_INT",
       {ours::NVML_VALUE_TYPE_SIGNED_INT, theirs::NVML_VALUE_TYPE_SIGNED_INT}},
      {"NVML_VALUE_TYPE_UNSIGNED_SHORT",
       {ours::NVML_VALUE_TYPE_UNSIGNED_SHORT, theirs::NVML_VALUE_TYPE_UNSIGNED_SHORT}},
      {"NVML_FI_DEV_MEMORY_TEMP", {ours::NVML_FI_DEV_MEMORY_TEMP, FAKE_NVML_FI_DEV_MEMORY_TEMP}},
      {"NVML_FI_DEV_PCIE_COUNT_TX_BYTES",
       {ours::NVML_FI_DEV_PCIE_COUNT_TX_BYTES, FAKE_NVML_FI_DEV_PCIE_COUNT_TX_BYTES}},
      {"NVML_FI_DEV_PCIE_COUNT_RX_BYTES",
       {ours::NVML_FI_DEV_PCIE_COUNT_RX_BYTES, FAKE_NVML_FI_DEV_PCIE_COUNT_RX_BYTES}},
      {"nvmlEventTypeXidCriticalError",
       {static_cast<long long>(ours::nvmlEventTypeXidCriticalError),
        FAKE_nvmlEventTypeXidCriticalError}},
      {"nvmlClocksEventReasonGpuIdle",
       {static_cast<long long>(ours::nvmlClocksEventReasonGpuIdle),
        FAKE_nvmlClocksEventReasonGpuIdle}},
      {"nvmlClocksEventReasonApplicationsClocksSetting",
       {static_cast<long long>(ours::nvmlClocksEventReasonApplicationsClocksSetting),
        FAKE_nvmlClocksEventReasonApplicationsClocksSetting}},
      {"nvmlClocksEventReasonSwPowerCap",
       {static_cast<long long>(ours::nvmlClocksEventReasonSwPowerCap),
        FAKE_nvmlClocksEventReasonSwPowerCap}},
      {"nvmlClocksThrottleReasonHwSlowdown",
       {static_cast<long long>(ours::nvmlClocksThrottleReasonHwSlowdown),
        FAKE_nvmlClocksThrottleReasonHwSlowdown}},
      {"nvmlClocksEventReasonSyncBoost",
       {static_cast<long long>(ours::nvmlClocksEventReasonSyncBoost),
        FAKE_nvmlClocksEventReasonSyncBoost}},
      {"nvmlClocksEventReasonSwThermalSlowdown",
       {static_cast<long long>(ours::nvmlClocksEventReasonSwThermalSlowdown),
        FAKE_nvmlClocksEventReasonSwThermalSlowdown}},
      {"nvmlClocksThrottleReasonHwThermalSlowdown",
       {static_cast<long long>(ours::nvmlClocksThrottleReasonHwThermalSlowdown),
        FAKE_nvmlClocksThrottleReasonHwThermalSlowdown}},
      {"nvmlClocksThrottleReasonHwPowerBrakeSlowdown",
       {static_cast<long long>(ours::nvmlClocksThrottleReasonHwPowerBrakeSlowdown),
        FAKE_nvmlClocksThrottleReasonHwPowerBrakeSlowdown}},
      {"nvmlClocksEventReasonDisplayClockSetting",
       {static_cast<long long>(ours::nvmlClocksEventReasonDisplayClockSetting),
        FAKE_nvmlClocksEventReasonDisplayClockSetting}},
      {"NVML_GPM_METRIC_GRAPHICS_UTIL",
       {ours::NVML_GPM_METRIC_GRAPHICS_UTIL, theirs::NVML_GPM_METRIC_GRAPHICS_UTIL}},
      {"NVML_GPM_METRIC_SM_UTIL", {ours::NVML_GPM_METRIC_SM_UTIL, theirs::NVML_GPM_METRIC_SM_UTIL}},
      {"NVML_GPM_METRIC_SM_OCCUPANCY",
       {ours::NVML_GPM_METRIC_SM_OCCUPANCY, theirs::NVML_GPM_METRIC_SM_OCCUPANCY}},
      {"NVML_GPM_METRIC_INTEGER_UTIL",
       {ours::NVML_GPM_METRIC_INTEGER_UTIL, theirs::NVML_GPM_METRIC_INTEGER_UTIL}},
      {"NVML_GPM_METRIC_ANY_TENSOR_UTIL",
       {ours::NVML_GPM_METRIC_ANY_TENSOR_UTIL, theirs::NVML_GPM_METRIC_ANY_TENSOR_UTIL}},
      {"NVML_GPM_METRIC_DFMA_TENSOR_UTIL",
       {ours::NVML_GPM_METRIC_DFMA_TENSOR_UTIL, theirs::NVML_GPM_METRIC_DFMA_TENSOR_UTIL}},
      {"NVML_GPM_METRIC_HMMA_TENSOR_UTIL",
       {ours::NVML_GPM_METRIC_HMMA_TENSOR_UTIL, theirs::NVML_GPM_METRIC_HMMA_TENSOR_UTIL}},
      {"NVML_GPM_METRIC_DMMA_TENSOR_UTIL",
       {ours::NVML_GPM_METRIC_DMMA_TENSOR_UTIL, theirs::NVML_GPM_METRIC_DMMA_TENSOR_UTIL}},
      {"NVML_GPM_METRIC_IMMA_TENSOR_UTIL",
       {ours::NVML_GPM_METRIC_IMMA_TENSOR_UTIL, theirs::NVML_GPM_METRIC_IMMA_TENSOR_UTIL}},
      {"NVML_GPM_METRIC_DRAM_BW_UTIL",
       {ours::NVML_GPM_METRIC_DRAM_BW_UTIL, theirs::NVML_GPM_METRIC_DRAM_BW_UTIL}},
      {"NVML_GPM_METRIC_FP64_UTIL",
       {ours::NVML_GPM_METRIC_FP64_UTIL, theirs::NVML_GPM_METRIC_FP64_UTIL}},
      {"NVML_GPM_METRIC_FP32_UTIL",
       {ours::NVML_GPM_METRIC_FP32_UTIL, theirs::NVML_GPM_METRIC_FP32_UTIL}},
      {"NVML_GPM_METRIC_FP16_UTIL",
       {ours::NVML_GPM_METRIC_FP16_UTIL, theirs::NVML_GPM_METRIC_FP16_UTIL}},
      {"NVML_GPM_METRIC_PCIE_TX_PER_SEC",
       {ours::NVML_GPM_METRIC_PCIE_TX_PER_SEC, theirs::NVML_GPM_METRIC_PCIE_TX_PER_SEC}},
      {"NVML_GPM_METRIC_PCIE_RX_PER_SEC",
       {ours::NVML_GPM_METRIC_PCIE_RX_PER_SEC, theirs::NVML_GPM_METRIC_PCIE_RX_PER_SEC}},
      {"NVML_GPM_METRIC_MAX", {ours::NVML_GPM_METRIC_MAX, theirs::NVML_GPM_METRIC_MAX}},
      {"NVML_GPM_METRICS_GET_VERSION",
       {ours::NVML_GPM_METRICS_GET_VERSION, FAKE_NVML_GPM_METRICS_GET_VERSION}},
      {"NVML_GPM_SUPPORT_VERSION", {ours::NVML_GPM_SUPPORT_VERSION, FAKE_NVML_GPM_SUPPORT_VERSION}},
      {"NVML_DEVICE_UUID_V2_BUFFER_SIZE",
       {ours::NVML_DEVICE_UUID_V2_BUFFER_SIZE, FAKE_NVML_DEVICE_UUID_V2_BUFFER_SIZE}},
      {"NVML_DEVICE_NAME_V2_BUFFER_SIZE",
       {ours::NVML_DEVICE_NAME_V2_BUFFER_SIZE, FAKE_NVML_DEVICE_NAME_V2_BUFFER_SIZE}},
      {"nvmlMemory_v2", {ours::nvmlMemory_v2, FAKE_nvmlMemory_v2}},
  };
  for (const auto& [name, pair] : values) {
    INFO(name);
    CHECK(pair.first == pair.second);
  }
  CHECK(ours::NVML_VALUE_NOT_AVAILABLE ==
        static_cast<unsigned long long>(FAKE_NVML_VALUE_NOT_AVAILABLE));
  // What the H200's driver wrote back into nvmlMemory_v2_t.version (nvml-support.txt).
  CHECK(ours::nvmlMemory_v2 == 33554472u);
}

TEST_CASE("NvmlFunctions declares every entry point as the fake's nvml.h does", "[nvml][abi]") {
  const std::vector<Signature> entry_points = {
      SIGNATURE(init, nvmlInit_v2),
      SIGNATURE(shutdown, nvmlShutdown),
      SIGNATURE(device_get_count, nvmlDeviceGetCount_v2),
      SIGNATURE(device_get_handle_by_index, nvmlDeviceGetHandleByIndex_v2),
      SIGNATURE(device_get_uuid, nvmlDeviceGetUUID),
      SIGNATURE(device_get_name, nvmlDeviceGetName),
      SIGNATURE(error_string, nvmlErrorString),
      SIGNATURE(device_get_utilization_rates, nvmlDeviceGetUtilizationRates),
      SIGNATURE(device_get_memory_info, nvmlDeviceGetMemoryInfo),
      SIGNATURE(device_get_power_usage, nvmlDeviceGetPowerUsage),
      SIGNATURE(device_get_enforced_power_limit, nvmlDeviceGetEnforcedPowerLimit),
      SIGNATURE(device_get_total_energy_consumption, nvmlDeviceGetTotalEnergyConsumption),
      SIGNATURE(device_get_temperature, nvmlDeviceGetTemperature),
      SIGNATURE(device_get_clock_info, nvmlDeviceGetClockInfo),
      SIGNATURE(device_get_ecc_mode, nvmlDeviceGetEccMode),
      SIGNATURE(device_get_total_ecc_errors, nvmlDeviceGetTotalEccErrors),
      SIGNATURE(device_get_compute_running_processes, nvmlDeviceGetComputeRunningProcesses),
      SIGNATURE(device_get_memory_info_v2, nvmlDeviceGetMemoryInfo_v2),
      SIGNATURE(device_get_performance_state, nvmlDeviceGetPerformanceState),
      SIGNATURE(device_get_current_clocks_event_reasons, nvmlDeviceGetCurrentClocksEventReasons),
      SIGNATURE(device_get_current_clocks_throttle_reasons,
                nvmlDeviceGetCurrentClocksThrottleReasons),
      SIGNATURE(device_get_curr_pcie_link_generation, nvmlDeviceGetCurrPcieLinkGeneration),
      SIGNATURE(device_get_curr_pcie_link_width, nvmlDeviceGetCurrPcieLinkWidth),
      SIGNATURE(device_get_max_pcie_link_generation, nvmlDeviceGetMaxPcieLinkGeneration),
      SIGNATURE(device_get_max_pcie_link_width, nvmlDeviceGetMaxPcieLinkWidth),
      SIGNATURE(device_get_field_values, nvmlDeviceGetFieldValues),
      SIGNATURE(device_get_remapped_rows, nvmlDeviceGetRemappedRows),
      SIGNATURE(device_get_process_utilization, nvmlDeviceGetProcessUtilization),
      SIGNATURE(event_set_create, nvmlEventSetCreate),
      SIGNATURE(device_register_events, nvmlDeviceRegisterEvents),
      SIGNATURE(event_set_wait_v2, nvmlEventSetWait_v2),
      SIGNATURE(event_set_free, nvmlEventSetFree),
      SIGNATURE(gpm_query_device_support, nvmlGpmQueryDeviceSupport),
      SIGNATURE(gpm_sample_alloc, nvmlGpmSampleAlloc),
      SIGNATURE(gpm_sample_free, nvmlGpmSampleFree),
      SIGNATURE(gpm_sample_get, nvmlGpmSampleGet),
      SIGNATURE(gpm_mig_sample_get, nvmlGpmMigSampleGet),
      SIGNATURE(gpm_metrics_get, nvmlGpmMetricsGet),
      SIGNATURE(device_get_mig_mode, nvmlDeviceGetMigMode),
      SIGNATURE(device_get_max_mig_device_count, nvmlDeviceGetMaxMigDeviceCount),
      SIGNATURE(device_get_mig_device_handle_by_index, nvmlDeviceGetMigDeviceHandleByIndex),
      SIGNATURE(device_get_gpu_instance_id, nvmlDeviceGetGpuInstanceId),
  };
  // A member added to NvmlFunctions without a line here fails this.
  CHECK(sizeof(ours::NvmlFunctions) == entry_points.size() * sizeof(void (*)()));
  for (const Signature& s : entry_points) {
    INFO(s.symbol);
    REQUIRE(s.ours.size() == s.theirs.size());
    for (std::size_t i = 0; i < s.ours.size(); ++i) {
      INFO((i == 0 ? std::string("return value") : "parameter " + std::to_string(i)));
      CHECK(s.ours[i].size == s.theirs[i].size);
      CHECK(s.ours[i].kind == s.theirs[i].kind);
      CHECK(s.ours[i].pointee_size == s.theirs[i].pointee_size);
      CHECK(s.ours[i].pointee_kind == s.theirs[i].pointee_kind);
    }
  }
}
