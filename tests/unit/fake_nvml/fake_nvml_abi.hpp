#pragma once
// The fake libnvidia-ml's own copy of NVIDIA's nvml.h ABI (NVML 13, as published in
// github.com/NVIDIA/go-nvml gen/nvml/nvml.h), written from the header and deliberately not from
// src/sources/nvml_types.hpp: the fake stands in for the driver, so sharing the daemon's
// declarations would let a transcription error there pass every test. Names follow nvml.h; the
// enums are C enums there, int here (same size and passing on the SysV ABIs).
// tests/unit/nvml_abi_test.cpp compares this file with nvml_types.hpp, field by field.

namespace fake_nvml {

struct nvmlDevice_st;
typedef struct nvmlDevice_st* nvmlDevice_t;
struct nvmlEventSet_st;
typedef struct nvmlEventSet_st* nvmlEventSet_t;
struct nvmlGpmSample_st;
typedef struct nvmlGpmSample_st* nvmlGpmSample_t;

// nvmlReturn_t
typedef int nvmlReturn_t;
enum : int {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_NOT_FOUND = 6,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_TIMEOUT = 10,
  NVML_ERROR_FUNCTION_NOT_FOUND = 13,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
  NVML_ERROR_UNKNOWN = 999,
};

typedef int nvmlEnableState_t;
enum : int { NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1 };
enum : int { NVML_TEMPERATURE_GPU = 0 };  // nvmlTemperatureSensors_t
enum : int { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };  // nvmlClockType_t
enum : int { NVML_MEMORY_ERROR_TYPE_CORRECTED = 0, NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1 };
enum : int { NVML_VOLATILE_ECC = 0, NVML_AGGREGATE_ECC = 1 };  // nvmlEccCounterType_t

typedef int nvmlPstates_t;
enum : int { NVML_PSTATE_0 = 0, NVML_PSTATE_8 = 8, NVML_PSTATE_15 = 15, NVML_PSTATE_UNKNOWN = 32 };

#define FAKE_NVML_DEVICE_MIG_DISABLE 0x0
#define FAKE_NVML_DEVICE_MIG_ENABLE 0x1

typedef int nvmlValueType_t;
enum : int {
  NVML_VALUE_TYPE_DOUBLE = 0,
  NVML_VALUE_TYPE_UNSIGNED_INT = 1,
  NVML_VALUE_TYPE_UNSIGNED_LONG = 2,
  NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3,
  NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4,
  NVML_VALUE_TYPE_SIGNED_INT = 5,
  NVML_VALUE_TYPE_UNSIGNED_SHORT = 6,
};

#define FAKE_NVML_FI_DEV_MEMORY_TEMP 82
#define FAKE_NVML_FI_DEV_PCIE_COUNT_TX_BYTES 197  // PCIe transmit bytes. Value can be wrapped.
#define FAKE_NVML_FI_DEV_PCIE_COUNT_RX_BYTES 198  // PCIe receive bytes. Value can be wrapped.

#define FAKE_nvmlEventTypeXidCriticalError 0x0000000000000008LL

#define FAKE_nvmlClocksEventReasonGpuIdle 0x0000000000000001LL
#define FAKE_nvmlClocksEventReasonApplicationsClocksSetting 0x0000000000000002LL
#define FAKE_nvmlClocksEventReasonSwPowerCap 0x0000000000000004LL
#define FAKE_nvmlClocksThrottleReasonHwSlowdown 0x0000000000000008LL
#define FAKE_nvmlClocksEventReasonSyncBoost 0x0000000000000010LL
#define FAKE_nvmlClocksEventReasonSwThermalSlowdown 0x0000000000000020LL
#define FAKE_nvmlClocksThrottleReasonHwThermalSlowdown 0x0000000000000040LL
#define FAKE_nvmlClocksThrottleReasonHwPowerBrakeSlowdown 0x0000000000000080LL
#define FAKE_nvmlClocksEventReasonDisplayClockSetting 0x0000000000000100LL

// nvmlGpmMetricId_t (part)
enum : unsigned {
  NVML_GPM_METRIC_GRAPHICS_UTIL = 1,
  NVML_GPM_METRIC_SM_UTIL = 2,
  NVML_GPM_METRIC_SM_OCCUPANCY = 3,
  NVML_GPM_METRIC_INTEGER_UTIL = 4,
  NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5,
  NVML_GPM_METRIC_DFMA_TENSOR_UTIL = 6,
  NVML_GPM_METRIC_HMMA_TENSOR_UTIL = 7,
  NVML_GPM_METRIC_DMMA_TENSOR_UTIL = 8,
  NVML_GPM_METRIC_IMMA_TENSOR_UTIL = 9,
  NVML_GPM_METRIC_DRAM_BW_UTIL = 10,
  NVML_GPM_METRIC_FP64_UTIL = 11,
  NVML_GPM_METRIC_FP32_UTIL = 12,
  NVML_GPM_METRIC_FP16_UTIL = 13,
  NVML_GPM_METRIC_PCIE_TX_PER_SEC = 20,  // PCIe traffic from this GPU in MiB/sec
  NVML_GPM_METRIC_PCIE_RX_PER_SEC = 21,  // PCIe traffic to this GPU in MiB/sec
  NVML_GPM_METRIC_MAX = 333,
};
#define FAKE_NVML_GPM_METRICS_GET_VERSION 1
#define FAKE_NVML_GPM_SUPPORT_VERSION 1

#define FAKE_NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define FAKE_NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
// nvml.h: #define NVML_VALUE_NOT_AVAILABLE (-1), stored into unsigned long long fields.
#define FAKE_NVML_VALUE_NOT_AVAILABLE (-1)

typedef struct nvmlUtilization_st {
  unsigned int gpu;
  unsigned int memory;
} nvmlUtilization_t;

typedef struct nvmlMemory_st {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlMemory_v2_st {
  unsigned int version;
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_v2_t;

#define FAKE_NVML_STRUCT_VERSION(data, ver) \
  (unsigned int)(sizeof(fake_nvml::nvml##data##_v##ver##_t) | (ver << 24U))
#define FAKE_nvmlMemory_v2 FAKE_NVML_STRUCT_VERSION(Memory, 2)

typedef struct nvmlProcessInfo_v1_st {
  unsigned int pid;
  unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct nvmlProcessUtilizationSample_st {
  unsigned int pid;
  unsigned long long timeStamp;
  unsigned int smUtil;
  unsigned int memUtil;
  unsigned int encUtil;
  unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

typedef struct nvmlEventData_st {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlEventData_t;

typedef union nvmlValue_st {
  double dVal;
  int siVal;
  unsigned int uiVal;
  unsigned long ulVal;
  unsigned long long ullVal;
  signed long long sllVal;
  unsigned short usVal;
} nvmlValue_t;

typedef struct nvmlFieldValue_st {
  unsigned int fieldId;
  unsigned int scopeId;
  long long timestamp;
  long long latencyUsec;
  nvmlValueType_t valueType;
  nvmlReturn_t nvmlReturn;
  nvmlValue_t value;
} nvmlFieldValue_t;

typedef struct {
  unsigned int metricId;
  nvmlReturn_t nvmlReturn;
  double value;
  struct {
    char* shortName;
    char* longName;
    char* unit;
  } metricInfo;
} nvmlGpmMetric_t;

typedef struct {
  unsigned int version;
  unsigned int numMetrics;
  nvmlGpmSample_t sample1;
  nvmlGpmSample_t sample2;
  nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX];
} nvmlGpmMetricsGet_t;

typedef struct {
  unsigned int version;
  unsigned int isSupportedDevice;
} nvmlGpmSupport_t;

// The entry points fake_nvml.cpp defines, declared from nvml.h. Its definitions (at global scope,
// C linkage: the same functions) must match these, or it does not compile; nvml_abi_test.cpp
// compares them with the daemon's NvmlFunctions, parameter by parameter.
extern "C" {
nvmlReturn_t nvmlInit_v2();
nvmlReturn_t nvmlShutdown();
const char* nvmlErrorString(nvmlReturn_t result);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory);
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* milliwatts);
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int* milliwatts);
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                 unsigned long long* millijoules);
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int* temp);
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int* clock);
nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t* current,
                                  nvmlEnableState_t* pending);
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int error_type, int counter_type,
                                         unsigned long long* count);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int* count,
                                                  nvmlProcessInfo_v1_t* infos);
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t* utilization,
                                             unsigned int* count, unsigned long long last_seen);
nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, nvmlPstates_t* pstate);
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                    unsigned long long* reasons);
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                       unsigned long long* reasons);
nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int* gen);
nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int* gen);
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int* width);
nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t, unsigned int* width);
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t* values);
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int* corrRows,
                                       unsigned int* uncRows, unsigned int* isPending,
                                       unsigned int* failureOccurred);
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set_out);
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types,
                                      nvmlEventSet_t event_set);
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t event_set, nvmlEventData_t* data, unsigned int);
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t event_set);
nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t* support);
nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t* sample);
nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample);
nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t sample);
nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpu_instance,
                                 nvmlGpmSample_t sample);
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t* get);
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int* current,
                                  unsigned int* pending);
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int* count);
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                 nvmlDevice_t* mig_device);
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int* id);
}

}  // namespace fake_nvml
