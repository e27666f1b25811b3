#pragma once
// The slice of NVIDIA's nvml.h ABI that telemetryd calls, redeclared here because nvml.h is not
// packaged for Debian and the daemon must build and run on hosts without the driver. Names,
// values and layouts follow nvml.h exactly; only unversioned or _v2 entry points are used, whose
// ABI NVIDIA keeps for binaries built against old headers. The fake
// library in tests/unit/fake_nvml shares this header, so it cannot catch a transcription error
// here: the static_asserts at least pin the sizes that nvml.h implies on LP64.

namespace telemetryd::nvml {

struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;

// nvml.h declares these as C enums; with values in int range the SysV ABIs pass them as int.
using nvmlReturn_t = int;
using nvmlEnableState_t = int;

inline constexpr nvmlReturn_t NVML_SUCCESS = 0;
inline constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
inline constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
inline constexpr nvmlReturn_t NVML_ERROR_DRIVER_NOT_LOADED = 9;
inline constexpr nvmlReturn_t NVML_ERROR_GPU_IS_LOST = 15;

inline constexpr nvmlEnableState_t NVML_FEATURE_ENABLED = 1;
inline constexpr int NVML_TEMPERATURE_GPU = 0;                // nvmlTemperatureSensors_t
inline constexpr int NVML_CLOCK_SM = 1;                       // nvmlClockType_t
inline constexpr int NVML_CLOCK_MEM = 2;                      // nvmlClockType_t
inline constexpr int NVML_MEMORY_ERROR_TYPE_CORRECTED = 0;    // nvmlMemoryErrorType_t
inline constexpr int NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1;  // nvmlMemoryErrorType_t
inline constexpr int NVML_VOLATILE_ECC = 0;                   // nvmlEccCounterType_t
inline constexpr int NVML_AGGREGATE_ECC = 1;                  // nvmlEccCounterType_t

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

/// As filled by the unversioned nvmlDeviceGetComputeRunningProcesses (the v1 ABI).
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;  // bytes, or NVML_VALUE_NOT_AVAILABLE
};

static_assert(sizeof(nvmlUtilization_t) == 8);
static_assert(sizeof(nvmlMemory_t) == 24);
static_assert(sizeof(nvmlProcessInfo_v1_t) == 16);

}  // namespace telemetryd::nvml
