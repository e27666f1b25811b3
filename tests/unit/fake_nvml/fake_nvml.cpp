// A stand-in libnvidia-ml for hosts without a GPU: the NVML entry points telemetryd resolves, with
// fixed readings for two GPUs. GPU 0 supports everything; GPU 1 is a consumer card without power
// readings, energy counter, ECC or process accounting. Tests steer failures through environment
// variables, read on every call:
//   TELEMETRYD_FAKE_NVML_INIT_FAIL  set: nvmlInit_v2 reports the driver not loaded
//   TELEMETRYD_FAKE_NVML_LOST       bit mask of GPUs that fall off the bus mid-read

#include <cstdlib>
#include <cstring>

#include "sources/nvml_types.hpp"

using namespace telemetryd::nvml;

struct telemetryd::nvml::nvmlDevice_st {
  unsigned index;
};

namespace {

nvmlDevice_st gpus[2] = {{0}, {1}};
int live_inits = 0;

const char* const kUuids[2] = {"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",
                               "GPU-3f0e1b2c-4d5e-0190-f6c2-7a1b7c3e9a51"};
const char* const kNames[2] = {"NVIDIA A100-PCIE-40GB", "NVIDIA GeForce RTX 3090"};

bool valid(nvmlDevice_t device) {
  return device == &gpus[0] || device == &gpus[1];
}
bool full(nvmlDevice_t device) {
  return device == &gpus[0];
}

bool lost(nvmlDevice_t device) {
  const char* mask = std::getenv("TELEMETRYD_FAKE_NVML_LOST");
  return mask != nullptr && ((std::atoi(mask) >> device->index) & 1) != 0;
}

nvmlReturn_t copy_text(const char* text, char* out, unsigned length) {
  if (std::strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::strcpy(out, text);
  return NVML_SUCCESS;
}

}  // namespace

extern "C" {

int fake_nvml_live_inits() {
  return live_inits;
}

nvmlReturn_t nvmlInit_v2() {
  if (std::getenv("TELEMETRYD_FAKE_NVML_INIT_FAIL") != nullptr) return NVML_ERROR_DRIVER_NOT_LOADED;
  ++live_inits;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown() {
  --live_inits;
  return NVML_SUCCESS;
}

const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = 2;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (index >= 2) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = &gpus[index];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  if (!valid(device)) return 2;
  return copy_text(kUuids[device->index], uuid, length);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  if (!valid(device)) return 2;
  return copy_text(kNames[device->index], name, length);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization) {
  *utilization = full(device) ? nvmlUtilization_t{87, 41} : nvmlUtilization_t{5, 1};
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  *memory = full(device) ? nvmlMemory_t{42949672960ULL, 11811160064ULL, 31138512896ULL}
                         : nvmlMemory_t{25769803776ULL, 24696061952ULL, 1073741824ULL};
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* milliwatts) {
  if (lost(device)) return NVML_ERROR_GPU_IS_LOST;
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *milliwatts = 231400;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int* milliwatts) {
  *milliwatts = full(device) ? 250000 : 350000;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                 unsigned long long* millijoules) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *millijoules = 98123456789ULL;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int* temp) {
  if (sensor != NVML_TEMPERATURE_GPU) return 2;
  *temp = full(device) ? 64 : 45;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int* clock) {
  if (type == NVML_CLOCK_SM) {
    *clock = full(device) ? 1410 : 210;
  } else if (type == NVML_CLOCK_MEM) {
    *clock = full(device) ? 1215 : 405;
  } else {
    return 2;
  }
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t* current,
                                  nvmlEnableState_t* pending) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *current = NVML_FEATURE_ENABLED;
  *pending = NVML_FEATURE_ENABLED;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int error_type, int counter_type,
                                         unsigned long long* count) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  // Distinct values per cell so a swapped argument shows up in the test.
  static const unsigned long long kCounts[2][2] = {{2, 17}, {0, 1}};  // [type][counter]
  *count = kCounts[error_type][counter_type];
  return NVML_SUCCESS;
}

// Like the driver: an empty buffer reports the count needed with INSUFFICIENT_SIZE.
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int* count,
                                                  nvmlProcessInfo_v1_t* infos) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  const nvmlProcessInfo_v1_t running[2] = {{4242, 1073741824ULL}, {4343, NVML_VALUE_NOT_AVAILABLE}};
  const unsigned needed = 2;
  if (*count < needed || infos == nullptr) {
    *count = needed;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  *count = needed;
  for (unsigned i = 0; i < needed; ++i) infos[i] = running[i];
  return NVML_SUCCESS;
}

}  // extern "C"
