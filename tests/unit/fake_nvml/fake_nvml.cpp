// A stand-in libnvidia-ml for hosts without a GPU: the NVML entry points telemetryd resolves, with
// fixed readings for two GPUs. Its ABI is its own (fake_nvml_abi.hpp, from nvml.h), not the
// daemon's.
//
// GPU 0 is the NVIDIA H200 of /work/shared/reference/h200 (driver 580.159.04) 12 s into a bf16
// matmul loop: utilisation, power, energy, temperature and clocks are what NVML gave telemetryd
// then (gpuinfo_load.json); memory is that GPU's: total 150754820096 and reserved 644939776
// (nvml-support.txt, memory_v2), v1 used 1570635776 (gpuinfo_load.json), so v2 used =
// 1570635776 - 644939776 = 925696000 bytes = 882.8125 MiB, which nvidia-smi prints as 883
// (smi_load.csv); free = total - reserved - used = 149184184320 in both versions. Idle
// (TELEMETRYD_FAKE_NVML_IDLE) v1 used is 644939776 and v2 used 0, nvidia-smi's 0 MiB
// (smi_idle.csv). The rest is the idle snapshot of nvml-support.txt and nvidia-smi-q.xml (pstate
// P0, clock-event reasons 0x1 gpu_idle, memory 40 C, PCIe gen 5 x16, no remapped rows, GPM
// supported). The GPM activity values are made up (the readings hold only idle ones, all about
// 0), so are its PCIe rates (1.25 MiB/s out, 0.5 MiB/s in: the idle snapshot's 1209 and 550
// KB/s, rounded), and FP64 answers NOT_SUPPORTED per metric so the per-metric status is
// exercised. Both GPUs count PCIe bytes (field values 197 and 198), each call 3 MiB more sent
// and 1 MiB more received than the last. Process 484 with 916455424 bytes is the matmul's; 4343
// without a memory figure is the fake's own, for NVML_VALUE_NOT_AVAILABLE.
//
// GPU 1 is a consumer card: no power readings, energy counter, ECC, processes, memory v2, GPM,
// clock-event reasons, memory temperature, remapped rows or XID events; it has a pstate (P8),
// its PCIe link (gen 4 x16) and PCIe byte counters.
//
// Tests steer it through environment variables, read on every call:
//   TELEMETRYD_FAKE_NVML_INIT_FAIL      set: nvmlInit_v2 reports the driver not loaded
//   TELEMETRYD_FAKE_NVML_LOST           bit mask of GPUs that fall off the bus mid-read
//   TELEMETRYD_FAKE_NVML_IDLE           set: GPU 0 idle (memory, utilisation)
//   TELEMETRYD_FAKE_NVML_NO_MEMORY_V2   set: nvmlDeviceGetMemoryInfo_v2 answers FUNCTION_NOT_FOUND,
//                                       as the stub of a driver before R510 does
//   TELEMETRYD_FAKE_NVML_NO_EVENT_REASONS  set: only the deprecated ...ThrottleReasons answers
//   TELEMETRYD_FAKE_NVML_NO_EVENTS      set: nvmlEventSetCreate fails
//   TELEMETRYD_FAKE_NVML_MIG            set: GPU 0 is in MIG mode with GPU instances 1 and 2
//   TELEMETRYD_FAKE_NVML_NO_GPM_PCIE    set: the GPM PCIe metrics answer NOT_SUPPORTED
// and through functions tests find with dlsym: fake_nvml_inject_xid(gpu, xid) queues an XID
// event, fake_nvml_inject_wait_error(rc) queues a failed nvmlEventSetWait_v2 (GPU_IS_LOST, or
// UNKNOWN after which the set is undefined: every later wait on it fails the same way),
// fake_nvml_live_* count what was allocated and not yet freed, fake_nvml_register_calls counts
// nvmlDeviceRegisterEvents calls. nvmlDeviceRegisterEvents honours TELEMETRYD_FAKE_NVML_LOST.

#include <sys/time.h>

#include <cstdlib>
#include <cstring>
#include <deque>

#include "fake_nvml_abi.hpp"

using namespace fake_nvml;

struct fake_nvml::nvmlDevice_st {
  unsigned index;
  unsigned gpu_instance;  // MIG devices only
};

struct fake_nvml::nvmlEventSet_st {
  unsigned long long registered[2];  // event types per GPU
  bool broken;                       // a wait reported NVML_ERROR_UNKNOWN
};

struct fake_nvml::nvmlGpmSample_st {
  const nvmlDevice_st* device;
  unsigned gpu_instance;     // 0: the whole GPU
  unsigned long long taken;  // sequence number of the nvmlGpm*SampleGet that filled it, 0: none
};

namespace {

nvmlDevice_st gpus[2] = {{0, 0}, {1, 0}};
// MIG devices of GPU 0: two compute instances in GPU instance 2, one in 1.
nvmlDevice_st mig_devices[3] = {{0, 1}, {0, 2}, {0, 2}};
int live_inits = 0;
int live_event_sets = 0;
int live_gpm_samples = 0;
unsigned long long samples_taken = 0;
int register_calls = 0;
// PCIe byte counters per GPU, advanced by every read.
unsigned long long pcie_tx_bytes[2] = {1ULL << 40, 1ULL << 36};
unsigned long long pcie_rx_bytes[2] = {1ULL << 39, 1ULL << 35};
// An event, or (rc != NVML_SUCCESS) the failure one nvmlEventSetWait_v2 reports instead.
struct Pending {
  nvmlEventData_t event;
  nvmlReturn_t rc;
};
std::deque<Pending> pending_events;

const char* const kUuids[2] = {"GPU-f3a91e20-b3d1-e186-8a03-82a07e7a586a",
                               "GPU-3f0e1b2c-4d5e-0190-f6c2-7a1b7c3e9a51"};
const char* const kNames[2] = {"NVIDIA H200", "NVIDIA GeForce RTX 3090"};

constexpr unsigned long long kH200Total = 150754820096ULL;
constexpr unsigned long long kH200Reserved = 644939776ULL;
constexpr unsigned long long kH200UsedLoad = 925696000ULL;  // v2; v1 adds kH200Reserved

bool set(const char* name) {
  return std::getenv(name) != nullptr;
}

bool valid(nvmlDevice_t device) {
  return device == &gpus[0] || device == &gpus[1];
}
bool full(nvmlDevice_t device) {
  return device == &gpus[0];
}
bool idle() {
  return set("TELEMETRYD_FAKE_NVML_IDLE");
}
bool mig() {
  return set("TELEMETRYD_FAKE_NVML_MIG");
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

unsigned long long now_us() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return static_cast<unsigned long long>(tv.tv_sec) * 1000000ULL + tv.tv_usec;
}

// GPM activity of GPU 0 under the matmul (made up, see the top), and of its MIG instances.
bool gpm_value(unsigned metric, unsigned gpu_instance, double& value) {
  switch (metric) {
    case NVML_GPM_METRIC_GRAPHICS_UTIL:
      value = 99.1;
      break;
    case NVML_GPM_METRIC_SM_UTIL:
      value = 97.25;
      break;
    case NVML_GPM_METRIC_SM_OCCUPANCY:
      value = 48.5;
      break;
    case NVML_GPM_METRIC_ANY_TENSOR_UTIL:
      value = 71.75;
      break;
    case NVML_GPM_METRIC_DRAM_BW_UTIL:
      value = 35.5;
      break;
    case NVML_GPM_METRIC_FP32_UTIL:
      value = 2.25;
      break;
    case NVML_GPM_METRIC_FP16_UTIL:
      value = 0.5;
      break;
    case NVML_GPM_METRIC_PCIE_TX_PER_SEC:
      value = 1.25;
      return gpu_instance == 0 && !set("TELEMETRYD_FAKE_NVML_NO_GPM_PCIE");  // whole-GPU only
    case NVML_GPM_METRIC_PCIE_RX_PER_SEC:
      value = 0.5;
      return gpu_instance == 0 && !set("TELEMETRYD_FAKE_NVML_NO_GPM_PCIE");
    default:
      return false;  // FP64 among them
  }
  if (gpu_instance != 0) value = value / (gpu_instance + 1);  // 1: half, 2: a third
  return true;
}

}  // namespace

extern "C" {

int fake_nvml_live_inits() {
  return live_inits;
}
int fake_nvml_live_event_sets() {
  return live_event_sets;
}
int fake_nvml_live_gpm_samples() {
  return live_gpm_samples;
}
// An XID as the driver reports it through the event API, to the sets GPU `gpu` is registered in.
void fake_nvml_inject_xid(unsigned gpu, unsigned long long xid) {
  nvmlEventData_t event{};
  event.device = &gpus[gpu % 2];
  event.eventType = FAKE_nvmlEventTypeXidCriticalError;
  event.eventData = xid;
  event.gpuInstanceId = 0xFFFFFFFFu;
  event.computeInstanceId = 0xFFFFFFFFu;
  pending_events.push_back({event, NVML_SUCCESS});
}
void fake_nvml_inject_wait_error(nvmlReturn_t rc) {
  pending_events.push_back({nvmlEventData_t{}, rc});
}
int fake_nvml_register_calls() {
  return register_calls;
}

nvmlReturn_t nvmlInit_v2() {
  if (set("TELEMETRYD_FAKE_NVML_INIT_FAIL")) return NVML_ERROR_DRIVER_NOT_LOADED;
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
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
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
  if (index >= 2) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &gpus[index];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
  return copy_text(kUuids[device->index], uuid, length);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
  return copy_text(kNames[device->index], name, length);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization) {
  if (full(device)) {
    *utilization = idle() ? nvmlUtilization_t{0, 0} : nvmlUtilization_t{99, 22};
  } else {
    *utilization = nvmlUtilization_t{5, 1};
  }
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  if (full(device)) {
    const unsigned long long used = kH200Reserved + (idle() ? 0 : kH200UsedLoad);
    *memory = nvmlMemory_t{kH200Total, kH200Total - used, used};
  } else {
    *memory = nvmlMemory_t{25769803776ULL, 24696061952ULL, 1073741824ULL};
  }
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
  if (set("TELEMETRYD_FAKE_NVML_NO_MEMORY_V2")) return NVML_ERROR_FUNCTION_NOT_FOUND;
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  // Like the driver: a caller that did not stamp the version gets nothing.
  if (memory->version != FAKE_nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  const unsigned long long used = idle() ? 0 : kH200UsedLoad;
  memory->total = kH200Total;
  memory->reserved = kH200Reserved;
  memory->used = used;
  memory->free = kH200Total - kH200Reserved - used;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* milliwatts) {
  if (lost(device)) return NVML_ERROR_GPU_IS_LOST;
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *milliwatts = 694388;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int* milliwatts) {
  *milliwatts = full(device) ? 700000 : 350000;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device,
                                                 unsigned long long* millijoules) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *millijoules = 6979160ULL;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int* temp) {
  if (sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  *temp = full(device) ? 62 : 45;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int* clock) {
  if (type == NVML_CLOCK_SM) {
    *clock = full(device) ? 1470 : 210;
  } else if (type == NVML_CLOCK_MEM) {
    *clock = full(device) ? 3201 : 405;
  } else {
    return NVML_ERROR_INVALID_ARGUMENT;
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
  // The H200 counts none; distinct values per cell still let a swapped argument show up.
  static const unsigned long long kCounts[2][2] = {{2, 17}, {0, 1}};  // [type][counter]
  *count = kCounts[error_type][counter_type];
  return NVML_SUCCESS;
}

// Like the driver: an empty buffer reports the count needed with INSUFFICIENT_SIZE.
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int* count,
                                                  nvmlProcessInfo_v1_t* infos) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  const nvmlProcessInfo_v1_t running[2] = {
      {484, 916455424ULL}, {4343, static_cast<unsigned long long>(FAKE_NVML_VALUE_NOT_AVAILABLE)}};
  const unsigned needed = 2;
  if (*count < needed || infos == nullptr) {
    *count = needed;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  *count = needed;
  for (unsigned i = 0; i < needed; ++i) infos[i] = running[i];
  return NVML_SUCCESS;
}

// Two samples of process 484 (an older and a newer one) and one of 4343 with NVIDIA's
// out-of-range figure, so the source must keep the newest per PID and check the range.
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t* utilization,
                                             unsigned int* count, unsigned long long last_seen) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  const unsigned long long now = now_us();
  const nvmlProcessUtilizationSample_t samples[3] = {
      {484, now - 500000, 40, 10, 0, 0}, {484, now, 97, 22, 0, 0}, {4343, now, 101, 0, 0, 0}};
  unsigned needed = 0;
  for (const auto& sample : samples) needed += sample.timeStamp > last_seen ? 1 : 0;
  if (needed == 0) return NVML_ERROR_NOT_FOUND;
  if (utilization == nullptr || *count < needed) {
    *count = needed;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  unsigned written = 0;
  for (const auto& sample : samples)
    if (sample.timeStamp > last_seen) utilization[written++] = sample;
  *count = written;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, nvmlPstates_t* pstate) {
  *pstate = full(device) ? NVML_PSTATE_0 : NVML_PSTATE_8;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                    unsigned long long* reasons) {
  if (set("TELEMETRYD_FAKE_NVML_NO_EVENT_REASONS")) return NVML_ERROR_FUNCTION_NOT_FOUND;
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *reasons = FAKE_nvmlClocksEventReasonGpuIdle;
  return NVML_SUCCESS;
}

// The deprecated name; reports one more reason so a test can tell which call answered.
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                       unsigned long long* reasons) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *reasons = FAKE_nvmlClocksEventReasonGpuIdle | FAKE_nvmlClocksEventReasonSwPowerCap;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int* gen) {
  *gen = full(device) ? 5 : 4;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int* gen) {
  *gen = full(device) ? 5 : 4;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int* width) {
  *width = full(device) ? 16 : 8;
  return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t, unsigned int* width) {
  *width = 16;
  return NVML_SUCCESS;
}

// Per-field status like the driver: the call succeeds, an unknown field says NOT_SUPPORTED.
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t* values) {
  for (int i = 0; i < count; ++i) {
    nvmlFieldValue_t& v = values[i];
    v.timestamp = static_cast<long long>(now_us());
    v.latencyUsec = 0;
    if (v.fieldId == FAKE_NVML_FI_DEV_MEMORY_TEMP && full(device)) {
      v.valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
      v.nvmlReturn = NVML_SUCCESS;
      v.value.uiVal = 40;
    } else if (v.fieldId == FAKE_NVML_FI_DEV_PCIE_COUNT_TX_BYTES && valid(device)) {
      v.valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
      v.nvmlReturn = NVML_SUCCESS;
      v.value.ullVal = pcie_tx_bytes[device->index] += 3 * 1048576ULL;
    } else if (v.fieldId == FAKE_NVML_FI_DEV_PCIE_COUNT_RX_BYTES && valid(device)) {
      v.valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
      v.nvmlReturn = NVML_SUCCESS;
      v.value.ullVal = pcie_rx_bytes[device->index] += 1048576ULL;
    } else {
      v.nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    }
  }
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int* corrRows,
                                       unsigned int* uncRows, unsigned int* isPending,
                                       unsigned int* failureOccurred) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *corrRows = 0;
  *uncRows = 0;
  *isPending = 0;
  *failureOccurred = 0;
  return NVML_SUCCESS;
}

// ---- events ---------------------------------------------------------------------------------

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set_out) {
  if (set("TELEMETRYD_FAKE_NVML_NO_EVENTS")) return NVML_ERROR_NOT_SUPPORTED;
  *set_out = new nvmlEventSet_st{{0, 0}, false};
  ++live_event_sets;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types,
                                      nvmlEventSet_t event_set) {
  ++register_calls;
  if (!valid(device) || event_set == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (lost(device)) return NVML_ERROR_GPU_IS_LOST;
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  event_set->registered[device->index] |= types;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t event_set, nvmlEventData_t* data, unsigned int) {
  if (event_set == nullptr || data == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (event_set->broken) return NVML_ERROR_UNKNOWN;
  while (!pending_events.empty()) {
    const auto [event, rc] = pending_events.front();
    pending_events.pop_front();
    if (rc == NVML_ERROR_UNKNOWN) event_set->broken = true;
    if (rc != NVML_SUCCESS) return rc;
    if ((event_set->registered[event.device->index] & event.eventType) == 0) continue;
    *data = event;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t event_set) {
  if (event_set == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  delete event_set;
  --live_event_sets;
  return NVML_SUCCESS;
}

// ---- GPM and MIG ----------------------------------------------------------------------------

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t* support) {
  if (support->version != FAKE_NVML_GPM_SUPPORT_VERSION)
    return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  support->isSupportedDevice = full(device) ? 1 : 0;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t* sample) {
  if (sample == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *sample = new nvmlGpmSample_st{nullptr, 0, 0};
  ++live_gpm_samples;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample) {
  if (sample == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  delete sample;
  --live_gpm_samples;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t sample) {
  if (!valid(device) || sample == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *sample = nvmlGpmSample_st{device, 0, ++samples_taken};
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpu_instance,
                                 nvmlGpmSample_t sample) {
  if (!valid(device) || sample == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (!full(device) || !mig()) return NVML_ERROR_NOT_SUPPORTED;
  if (gpu_instance != 1 && gpu_instance != 2) return NVML_ERROR_NOT_FOUND;
  *sample = nvmlGpmSample_st{device, gpu_instance, ++samples_taken};
  return NVML_SUCCESS;
}

// Only from two filled samples of the same GPU (or GPU instance), the second taken later.
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t* get) {
  if (get == nullptr || get->version != FAKE_NVML_GPM_METRICS_GET_VERSION)
    return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  if (get->numMetrics > NVML_GPM_METRIC_MAX || get->sample1 == nullptr || get->sample2 == nullptr ||
      get->sample1->taken == 0 || get->sample2->taken <= get->sample1->taken ||
      get->sample1->device != get->sample2->device ||
      get->sample1->gpu_instance != get->sample2->gpu_instance)
    return NVML_ERROR_INVALID_ARGUMENT;
  static char kNoName[] = "";
  for (unsigned i = 0; i < get->numMetrics; ++i) {
    nvmlGpmMetric_t& m = get->metrics[i];
    m.metricInfo.shortName = m.metricInfo.longName = m.metricInfo.unit = kNoName;
    m.nvmlReturn = gpm_value(m.metricId, get->sample1->gpu_instance, m.value)
                       ? NVML_SUCCESS
                       : NVML_ERROR_NOT_SUPPORTED;
  }
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int* current,
                                  unsigned int* pending) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *current = *pending = mig() ? FAKE_NVML_DEVICE_MIG_ENABLE : FAKE_NVML_DEVICE_MIG_DISABLE;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int* count) {
  if (!full(device)) return NVML_ERROR_NOT_SUPPORTED;
  *count = 7;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                 nvmlDevice_t* mig_device) {
  if (!full(device) || !mig()) return NVML_ERROR_NOT_SUPPORTED;
  if (index >= 3) return NVML_ERROR_NOT_FOUND;
  *mig_device = &mig_devices[index];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int* id) {
  if (device < &mig_devices[0] || device > &mig_devices[2]) return NVML_ERROR_INVALID_ARGUMENT;
  *id = device->gpu_instance;
  return NVML_SUCCESS;
}

}  // extern "C"
