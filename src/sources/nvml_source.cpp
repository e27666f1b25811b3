// The `nvml` source: one gpu.metrics.v1 event per NVIDIA GPU per tick, read through NVML from the
// driver's own libnvidia-ml, with its `nvml:` config section.

#include <unistd.h>

#include <climits>
#include <memory>

#include "events/cloudevent.hpp"
#include "events/gpu_metrics.hpp"
#include "sources/nvml_api.hpp"
#include "sources/nvml_device.hpp"
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
        interval_(config.integer("nvml.sample_interval_ms")) {}

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
  std::optional<events::GpuSample> read(unsigned index, std::string& problem) const {
    const NvmlFunctions& f = api_.functions();
    nvmlDevice_t device = nullptr;
    if (const nvmlReturn_t rc = f.device_get_handle_by_index(index, &device); rc != NVML_SUCCESS) {
      problem = "GPU " + std::to_string(index) +
                ": nvmlDeviceGetHandleByIndex failed: " + error_text(f, rc);
      return std::nullopt;
    }
    auto sample = sample_device(f, device, index, problem);
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

  NvmlApi api_;
  std::string topic_;
  std::string host_;
  std::string source_uri_;
  std::chrono::milliseconds interval_;
  events::UuidV7Generator ids_;
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
      }},
     [](const Config& config, const Topics& topics) -> std::unique_ptr<Source> {
       return std::make_unique<NvmlSource>(config, topics);
     }}};

}  // namespace
}  // namespace telemetryd::nvml
