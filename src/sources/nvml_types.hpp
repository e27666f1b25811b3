#pragma once
// The slice of NVIDIA's nvml.h ABI that telemetryd calls, redeclared here because nvml.h is not
// packaged for Debian and the daemon must build and run on hosts without the driver. Names,
// values and layouts follow nvml.h exactly (transcribed from the NVML 13 header that NVIDIA
// publishes in github.com/NVIDIA/go-nvml, gen/nvml/nvml.h); only unversioned, _v2 or
// version-stamped entry points are used, whose ABI NVIDIA keeps for binaries built against old
// headers. The fake library in tests/unit/fake_nvml declares its own copy from the header, and
// tests/unit/nvml_abi_test.cpp compares the two field by field, so a transcription error in
// either one fails a test; the static_asserts pin the sizes nvml.h implies on LP64.

#include <cstddef>

namespace telemetryd::nvml {

struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;
struct nvmlEventSet_st;
using nvmlEventSet_t = nvmlEventSet_st*;
struct nvmlGpmSample_st;
using nvmlGpmSample_t = nvmlGpmSample_st*;

// nvml.h declares these as C enums; with values in int range the SysV ABIs pass them as int.
using nvmlReturn_t = int;
using nvmlEnableState_t = int;
using nvmlPstates_t = int;
using nvmlValueType_t = int;

inline constexpr nvmlReturn_t NVML_SUCCESS = 0;
inline constexpr nvmlReturn_t NVML_ERROR_INVALID_ARGUMENT = 2;
inline constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
inline constexpr nvmlReturn_t NVML_ERROR_NOT_FOUND = 6;
inline constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
inline constexpr nvmlReturn_t NVML_ERROR_DRIVER_NOT_LOADED = 9;
inline constexpr nvmlReturn_t NVML_ERROR_TIMEOUT = 10;
inline constexpr nvmlReturn_t NVML_ERROR_FUNCTION_NOT_FOUND = 13;
inline constexpr nvmlReturn_t NVML_ERROR_GPU_IS_LOST = 15;
inline constexpr nvmlReturn_t NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25;
/// From nvmlDeviceRegisterEvents or nvmlEventSetWait_v2: the event set is in an undefined state
/// and should be freed.
inline constexpr nvmlReturn_t NVML_ERROR_UNKNOWN = 999;

inline constexpr nvmlEnableState_t NVML_FEATURE_ENABLED = 1;
inline constexpr int NVML_TEMPERATURE_GPU = 0;                // nvmlTemperatureSensors_t
inline constexpr int NVML_CLOCK_SM = 1;                       // nvmlClockType_t
inline constexpr int NVML_CLOCK_MEM = 2;                      // nvmlClockType_t
inline constexpr int NVML_MEMORY_ERROR_TYPE_CORRECTED = 0;    // nvmlMemoryErrorType_t
inline constexpr int NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1;  // nvmlMemoryErrorType_t
inline constexpr int NVML_VOLATILE_ECC = 0;                   // nvmlEccCounterType_t
inline constexpr int NVML_AGGREGATE_ECC = 1;                  // nvmlEccCounterType_t

inline constexpr nvmlPstates_t NVML_PSTATE_0 = 0;  // maximum performance
inline constexpr nvmlPstates_t NVML_PSTATE_15 = 15;
inline constexpr nvmlPstates_t NVML_PSTATE_UNKNOWN = 32;

inline constexpr unsigned NVML_DEVICE_MIG_DISABLE = 0x0;
inline constexpr unsigned NVML_DEVICE_MIG_ENABLE = 0x1;

// nvmlValueType_t
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_DOUBLE = 0;
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_UNSIGNED_INT = 1;
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_UNSIGNED_LONG = 2;
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3;
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4;
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_SIGNED_INT = 5;
inline constexpr nvmlValueType_t NVML_VALUE_TYPE_UNSIGNED_SHORT = 6;

/// Field id for nvmlDeviceGetFieldValues: memory (HBM) temperature, degrees Celsius.
inline constexpr unsigned NVML_FI_DEV_MEMORY_TEMP = 82;
/// Field ids for nvmlDeviceGetFieldValues: PCIe bytes transmitted and received, cumulative
/// ("Value can be wrapped").
inline constexpr unsigned NVML_FI_DEV_PCIE_COUNT_TX_BYTES = 197;
inline constexpr unsigned NVML_FI_DEV_PCIE_COUNT_RX_BYTES = 198;

/// nvmlEventType bit masks (a `#define ... LL` in nvml.h).
inline constexpr unsigned long long nvmlEventTypeXidCriticalError = 0x0000000000000008ULL;

/// nvmlClocksEventReason* bit masks. nvml.h only spells the hardware ones
/// nvmlClocksThrottleReason*; the values are what count.
inline constexpr unsigned long long nvmlClocksEventReasonGpuIdle = 0x0000000000000001ULL;
inline constexpr unsigned long long nvmlClocksEventReasonApplicationsClocksSetting =
    0x0000000000000002ULL;
inline constexpr unsigned long long nvmlClocksEventReasonSwPowerCap = 0x0000000000000004ULL;
inline constexpr unsigned long long nvmlClocksThrottleReasonHwSlowdown = 0x0000000000000008ULL;
inline constexpr unsigned long long nvmlClocksEventReasonSyncBoost = 0x0000000000000010ULL;
inline constexpr unsigned long long nvmlClocksEventReasonSwThermalSlowdown = 0x0000000000000020ULL;
inline constexpr unsigned long long nvmlClocksThrottleReasonHwThermalSlowdown =
    0x0000000000000040ULL;
inline constexpr unsigned long long nvmlClocksThrottleReasonHwPowerBrakeSlowdown =
    0x0000000000000080ULL;
inline constexpr unsigned long long nvmlClocksEventReasonDisplayClockSetting =
    0x0000000000000100ULL;

// nvmlGpmMetricId_t: the activity metrics telemetryd asks for (percent, 0.0 - 100.0), and PCIe.
inline constexpr unsigned NVML_GPM_METRIC_GRAPHICS_UTIL = 1;
inline constexpr unsigned NVML_GPM_METRIC_SM_UTIL = 2;
inline constexpr unsigned NVML_GPM_METRIC_SM_OCCUPANCY = 3;
inline constexpr unsigned NVML_GPM_METRIC_INTEGER_UTIL = 4;
inline constexpr unsigned NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5;
inline constexpr unsigned NVML_GPM_METRIC_DFMA_TENSOR_UTIL = 6;
inline constexpr unsigned NVML_GPM_METRIC_HMMA_TENSOR_UTIL = 7;
inline constexpr unsigned NVML_GPM_METRIC_DMMA_TENSOR_UTIL = 8;
inline constexpr unsigned NVML_GPM_METRIC_IMMA_TENSOR_UTIL = 9;
inline constexpr unsigned NVML_GPM_METRIC_DRAM_BW_UTIL = 10;
inline constexpr unsigned NVML_GPM_METRIC_FP64_UTIL = 11;
inline constexpr unsigned NVML_GPM_METRIC_FP32_UTIL = 12;
inline constexpr unsigned NVML_GPM_METRIC_FP16_UTIL = 13;
// PCIe traffic from and to the GPU, MiB/s.
inline constexpr unsigned NVML_GPM_METRIC_PCIE_TX_PER_SEC = 20;
inline constexpr unsigned NVML_GPM_METRIC_PCIE_RX_PER_SEC = 21;
/// The size of nvmlGpmMetricsGet_t.metrics in the NVML 13 header (98 in 11.8, later 210).
/// NVML reads and writes only the first numMetrics entries, so any size at least as large as
/// the count asked for is compatible with every driver; this one matches the current header.
inline constexpr unsigned NVML_GPM_METRIC_MAX = 333;
inline constexpr unsigned NVML_GPM_METRICS_GET_VERSION = 1;
inline constexpr unsigned NVML_GPM_SUPPORT_VERSION = 1;

// NVML_DEVICE_UUID_V2_BUFFER_SIZE and NVML_DEVICE_NAME_V2_BUFFER_SIZE: large enough for every
// driver, older ones documented smaller minimums (80 and 64).
inline constexpr unsigned NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;
inline constexpr unsigned NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;

/// Reported instead of a value the driver does not know, e.g. per-process memory under WDDM.
inline constexpr unsigned long long NVML_VALUE_NOT_AVAILABLE = ~0ULL;

struct nvmlUtilization_t {
  unsigned int gpu;     // percent of the last sample period a kernel ran
  unsigned int memory;  // percent of it device memory was read or written
};

/// Version 1, as taken by the unversioned nvmlDeviceGetMemoryInfo; `used` includes reserved.
struct nvmlMemory_t {
  unsigned long long total;  // bytes
  unsigned long long free;
  unsigned long long used;
};

/// Taken by nvmlDeviceGetMemoryInfo_v2; `used` excludes `reserved` (nvidia-smi's memory.used).
struct nvmlMemory_v2_t {
  unsigned int version;  // nvmlMemory_v2: sizeof | 2 << 24
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};

/// NVML_STRUCT_VERSION(Memory, 2).
inline constexpr unsigned nvmlMemory_v2 =
    static_cast<unsigned>(sizeof(nvmlMemory_v2_t)) | (2U << 24U);

/// As filled by the unversioned nvmlDeviceGetComputeRunningProcesses (the v1 ABI).
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;  // bytes, or NVML_VALUE_NOT_AVAILABLE
};

struct nvmlProcessUtilizationSample_t {
  unsigned int pid;
  unsigned long long timeStamp;  // CPU timestamp, microseconds
  unsigned int smUtil;           // percent
  unsigned int memUtil;          // percent
  unsigned int encUtil;
  unsigned int decUtil;
};

struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;  // the XID for nvmlEventTypeXidCriticalError (999: unknown)
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

union nvmlValue_t {
  double dVal;
  int siVal;
  unsigned int uiVal;
  unsigned long ulVal;
  unsigned long long ullVal;
  signed long long sllVal;
  unsigned short usVal;
};

struct nvmlFieldValue_t {
  unsigned int fieldId;
  unsigned int scopeId;
  long long timestamp;
  long long latencyUsec;
  nvmlValueType_t valueType;
  nvmlReturn_t nvmlReturn;
  nvmlValue_t value;
};

struct nvmlGpmMetric_t {
  unsigned int metricId;
  nvmlReturn_t nvmlReturn;
  double value;
  struct {
    char* shortName;
    char* longName;
    char* unit;
  } metricInfo;
};

struct nvmlGpmMetricsGet_t {
  unsigned int version;  // NVML_GPM_METRICS_GET_VERSION
  unsigned int numMetrics;
  nvmlGpmSample_t sample1;
  nvmlGpmSample_t sample2;
  nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX];
};

struct nvmlGpmSupport_t {
  unsigned int version;  // NVML_GPM_SUPPORT_VERSION
  unsigned int isSupportedDevice;
};

static_assert(sizeof(nvmlUtilization_t) == 8);
static_assert(sizeof(nvmlMemory_t) == 24);
static_assert(sizeof(nvmlMemory_v2_t) == 40);
static_assert(nvmlMemory_v2 == 33554472);  // as the H200's driver reports it back
static_assert(sizeof(nvmlProcessInfo_v1_t) == 16);
static_assert(sizeof(nvmlProcessUtilizationSample_t) == 32);
static_assert(sizeof(nvmlEventData_t) == 32);
static_assert(sizeof(nvmlValue_t) == 8);
static_assert(sizeof(nvmlFieldValue_t) == 40);
static_assert(sizeof(nvmlGpmMetric_t) == 40);
static_assert(offsetof(nvmlGpmMetricsGet_t, metrics) == 24);
static_assert(sizeof(nvmlGpmSupport_t) == 8);

}  // namespace telemetryd::nvml
