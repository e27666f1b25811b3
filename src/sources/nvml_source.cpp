// The `nvml` source: one gpu.metrics.v1 event per NVIDIA GPU per tick, read through NVML from the
// driver's own libnvidia-ml, with its `nvml:` config section.

#include <unistd.h>

#include <climits>
#include <memory>
#include <vector>

#include "events/cloudevent.hpp"
#include "events/gpu_metrics.hpp"
#include "sources/nvml_api.hpp"
#include "sources/nvml_cgroup.hpp"
#include "sources/nvml_device.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/source.hpp"

namespace telemetryd::nvml {
namespace {

std::string this_host() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

class NvmlSource final : public Source {
 public:
  NvmlSource(const Config& config, const Topics& topics)
      : api_(config.str("nvml.library")),
        topic_(topics.gpu_metrics),
        host_(config.str("nvml.host").empty() ? this_host() : config.str("nvml.host")),
        source_uri_(config.str("nvml.source_uri").empty() ? "//telemetryd/" + host_ + "/nvml"
                                                          : config.str("nvml.source_uri")),
        interval_(config.integer("nvml.sample_interval_ms")),
        proc_root_(config.str("nvml.proc_root")) {
    if (const auto ns = foreign_pid_namespace(proc_root_)) {
      log::warn("nvml",
                "nvml.proc_root is not the host's PID namespace: GPU processes are reported "
                "without container and pod (mount the host's /proc and set nvml.proc_root, or "
                "run with the host's PID namespace)",
                {{"proc_root", proc_root_}, {"pid_namespace", *ns}});
      read_cgroups_ = false;
    }
    // One event set for every GPU, created here so that a failure is reported once; without it
    // the samples simply carry no `xid`.
    const NvmlFunctions& f = api_.functions();
    if (f.event_set_create == nullptr || f.device_register_events == nullptr ||
        f.event_set_wait_v2 == nullptr || f.event_set_free == nullptr) {
      log::warn("nvml", "this NVML has no event API: XID errors are not counted");
    } else if (const nvmlReturn_t rc = f.event_set_create(&events_); rc != NVML_SUCCESS) {
      events_ = nullptr;
      log::warn("nvml", "nvmlEventSetCreate failed: XID errors are not counted",
                {{"error", error_text(f, rc)}});
    }
  }

  ~NvmlSource() override {
    // GPM samples and the event set go back to NVML before api_ shuts it down.
    states_.clear();
    if (events_ != nullptr) api_.functions().event_set_free(events_);
  }
  NvmlSource(const NvmlSource&) = delete;
  NvmlSource& operator=(const NvmlSource&) = delete;

  /// `error` is left empty when every GPU was read; a GPU that could not be is named there and
  /// skipped, and the tick fails only when no GPU at all was read.
  bool sample(std::vector<Event>& out, std::string& error) override {
    error.clear();
    const NvmlFunctions& f = api_.functions();
    unsigned count = 0;
    if (const nvmlReturn_t rc = f.device_get_count(&count); rc != NVML_SUCCESS) {
      error = "nvml: nvmlDeviceGetCount failed: " + error_text(f, rc);
      return false;
    }
    if (count == 0) {
      error = "nvml: no GPU visible to NVML";
      return false;
    }
    if (states_.size() < count) states_.resize(count);
    poll_xid_events();
    const auto now = std::chrono::system_clock::now();
    std::size_t sampled = 0;
    for (unsigned index = 0; index < count; ++index) {
      std::string problem;
      if (auto sample = read(index, problem)) {
        notify_gpu_sample(*sample);
        out.push_back(to_event(*sample, now));
        ++sampled;
      } else {
        if (!error.empty()) error += "; ";
        error += "nvml: " + problem;
      }
    }
    return sampled > 0;
  }

  std::chrono::milliseconds interval() const override { return interval_; }

 private:
  // The state of a GPU index lives as long as the source; the driver keeps indices stable
  // while it is loaded.
  struct GpuState {
    nvmlDevice_t device = nullptr;
    std::unique_ptr<DeviceState> state;
    /// nvmlDeviceRegisterEvents: retried on each tick until it succeeds or says NOT_SUPPORTED.
    enum class Xid { kPending, kRegistered, kUnsupported } xid = Xid::kPending;
  };

  std::optional<events::GpuSample> read(unsigned index, std::string& problem) {
    const NvmlFunctions& f = api_.functions();
    nvmlDevice_t device = nullptr;
    if (const nvmlReturn_t rc = f.device_get_handle_by_index(index, &device); rc != NVML_SUCCESS) {
      problem = "GPU " + std::to_string(index) +
                ": nvmlDeviceGetHandleByIndex failed: " + error_text(f, rc);
      return std::nullopt;
    }
    GpuState& gpu = states_[index];
    if (!gpu.state || gpu.device != device) {
      gpu.device = device;
      gpu.state = std::make_unique<DeviceState>(f, proc_root_);
      gpu.state->read_cgroups = read_cgroups_;
      gpu.xid = GpuState::Xid::kPending;
    }
    if (gpu.xid == GpuState::Xid::kPending) register_xid(gpu);
    auto sample = sample_device(f, device, index, *gpu.state, problem);
    if (sample) {
      sample->host = host_;
      sample->interval_ms = interval_.count();
    }
    return sample;
  }

  Event to_event(const events::GpuSample& sample, std::chrono::system_clock::time_point now) {
    Event event;
    event.topic = topic_;
    event.key = sample.gpu_uuid;
    event.id = ids_.next(now);
    event.payload =
        events::encode_cloudevent(event.id, source_uri_, kGpuMetricsType, now, sample.gpu_uuid,
                                  events::encode_gpu_metrics_data(sample));
    event.time = now;
    return event;
  }

  // NOT_SUPPORTED (GPUs without XID events, consumer cards on old drivers) is final: no `xid`
  // there. Any other failure (GPU_IS_LOST while the GPU is off the bus) is retried next tick;
  // UNKNOWN leaves the set undefined, and it is given up.
  void register_xid(GpuState& gpu) {
    if (events_ == nullptr) return;
    const NvmlFunctions& f = api_.functions();
    const nvmlReturn_t rc =
        f.device_register_events(gpu.device, nvmlEventTypeXidCriticalError, events_);
    if (rc == NVML_SUCCESS) {
      gpu.xid = GpuState::Xid::kRegistered;
      gpu.state->xid = events::GpuXid{};
    } else if (rc == NVML_ERROR_NOT_SUPPORTED) {
      gpu.xid = GpuState::Xid::kUnsupported;
    } else if (rc == NVML_ERROR_UNKNOWN) {
      drop_event_set("nvmlDeviceRegisterEvents", rc);
    }
  }

  // Drains the XIDs that arrived since the last tick without waiting (timeout 0); bounded, so
  // an XID storm cannot hold up the tick. TIMEOUT means none is left. Another failure
  // (GPU_IS_LOST for one GPU) does not end the drain for the healthy ones, but a few in a row do,
  // so a set that keeps failing is not spun on.
  void poll_xid_events() {
    if (events_ == nullptr) return;
    const NvmlFunctions& f = api_.functions();
    int failures_in_a_row = 0;
    for (int i = 0; i < 1024; ++i) {
      nvmlEventData_t data{};
      const nvmlReturn_t rc = f.event_set_wait_v2(events_, &data, 0);
      if (rc == NVML_ERROR_TIMEOUT) return;
      if (rc == NVML_ERROR_UNKNOWN) {
        drop_event_set("nvmlEventSetWait", rc);
        return;
      }
      if (rc != NVML_SUCCESS) {
        if (++failures_in_a_row >= kWaitFailuresInARow) return;
        continue;
      }
      failures_in_a_row = 0;
      if ((data.eventType & nvmlEventTypeXidCriticalError) == 0) continue;
      for (GpuState& gpu : states_) {
        if (gpu.device != data.device || !gpu.state || !gpu.state->xid) continue;
        ++gpu.state->xid->count;
        gpu.state->xid->last = static_cast<std::int64_t>(data.eventData);
      }
    }
  }

  // nvml.h: after NVML_ERROR_UNKNOWN "event set is in undefined state and should be freed". It
  // is, and not recreated: XIDs raised while it was broken would be missing from a new set, whose
  // count would then undercount without saying so. Samples carry no `xid` from here on (its
  // absence says XIDs are not being counted) until telemetryd restarts; the warning says why.
  void drop_event_set(const char* call, nvmlReturn_t rc) {
    const NvmlFunctions& f = api_.functions();
    log::warn("nvml", std::string(call) + " failed, event set freed: XID errors no longer counted",
              {{"error", error_text(f, rc)}});
    f.event_set_free(events_);
    events_ = nullptr;
    for (GpuState& gpu : states_) {
      if (gpu.state) gpu.state->xid.reset();
    }
  }

  static constexpr int kWaitFailuresInARow = 3;

  // Declared first so it is destroyed last: everything below hands resources back to NVML.
  NvmlApi api_;
  std::string topic_;
  std::string host_;
  std::string source_uri_;
  std::chrono::milliseconds interval_;
  std::string proc_root_;
  bool read_cgroups_ = true;
  events::UuidV7Generator ids_;
  nvmlEventSet_t events_ = nullptr;
  std::vector<GpuState> states_;
};

const SourceRegistration kRegistration{
    {"nvml",
     {"nvml",
      "NVIDIA GPUs read through NVML, from the driver's libnvidia-ml loaded at run time.",
      {
          {.name = "library",
           .description =
               "NVML shared library: a file name found by the dynamic loader, or a path.",
           .default_value = "libnvidia-ml.so.1"},
          {.name = "sample_interval_ms",
           .type = ValueType::kInt,
           .description = "Time between two readings of every GPU.",
           .default_value = "1000",
           .min = 100,
           .max = 3600000},
          {.name = "host",
           .description = "Host name put in every sample; empty means this machine's hostname.",
           .default_value = ""},
          {.name = "source_uri",
           .description =
               "CloudEvents source of every event; empty means //telemetryd/<host>/nvml.",
           .default_value = ""},
          {.name = "proc_root",
           .description =
               "Where the host's /proc is mounted: each GPU process's cgroup file there names "
               "its container and Kubernetes pod (e.g. /host/proc when telemetryd runs in a "
               "container).",
           .default_value = "/proc"},
      }},
     [](const Config& config, const Topics& topics) -> std::unique_ptr<Source> {
       return std::make_unique<NvmlSource>(config, topics);
     }}};

}  // namespace
}  // namespace telemetryd::nvml
