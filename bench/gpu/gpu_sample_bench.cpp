// The parts of one GPU sample, timed alone (driver by bench/gpu/run.py):
//   nvml    sample_device() over every GPU of an NVML library (the fake one without a GPU): the
//           NVML calls and their mapping, nothing else
//   export  GpuExporter::update() with 8 full synthetic samples: the per-GPU series
//   encode  encode_gpu_metrics_data(): the gpu.metrics.v1 JSON every source also writes
// Prints one JSON object: nanoseconds per GPU sample for each.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "events/gpu_metrics.hpp"
#include "metrics/gpu_exporter.hpp"
#include "sources/nvml_api.hpp"
#include "sources/nvml_device.hpp"

using namespace telemetryd;
using Clock = std::chrono::steady_clock;

namespace {

events::GpuSample synthetic(int index) {
  events::GpuSample s;
  s.gpu_uuid = "GPU-00000000-0000-0000-0000-00000000000" + std::to_string(index);
  s.host = "bench-host";
  s.model_name = "NVIDIA H100 80GB HBM3";
  s.collector = "synthetic";
  s.gpu_index = index;
  s.interval_ms = 100;
  s.utilization_gpu_percent = 50 + index;
  s.utilization_memory_percent = 30;
  s.memory_total_bytes = 80LL << 30;
  s.memory_used_bytes = 20LL << 30;
  s.memory_free_bytes = 59LL << 30;
  s.memory_reserved_bytes = 1LL << 30;
  s.power_draw_watts = 400;
  s.power_limit_watts = 700;
  s.energy_consumed_mj = 1000000;
  s.temperature_gpu_celsius = 60;
  s.temperature_memory_celsius = 66;
  s.clock_sm_mhz = 1980;
  s.clock_mem_mhz = 2619;
  s.pstate = 0;
  s.clock_event_reasons_mask = 0;
  s.clock_event_reasons = std::vector<std::string>{};
  s.pcie = {1000000, 2000000, 5, 16, 5, 16};
  s.remapped_rows = {0, 0, false, false};
  s.xid = events::GpuXid{};
  s.ecc = {true, 0, 0, 0, 0};
  s.activity = {45, 22, 25, 24, 15, 5, 0};
  s.processes = std::vector<events::GpuProcess>{{.pid = 1000 + index,
                                                 .used_memory_bytes = 19LL << 30,
                                                 .utilization_sm_percent = 50,
                                                 .utilization_memory_percent = 30}};
  return s;
}

template <typename F>
double ns_per(int iterations, int per_iteration, F&& f) {
  const auto start = Clock::now();
  for (int i = 0; i < iterations; ++i) f(i);
  const auto ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  return ns / (static_cast<double>(iterations) * per_iteration);
}

}  // namespace

int main(int argc, char** argv) {
  std::string library;
  int iterations = 20000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--nvml") == 0) library = argv[i + 1];
    if (std::strcmp(argv[i], "--iterations") == 0) iterations = std::stoi(argv[i + 1]);
  }

  double nvml_ns = -1;
  unsigned gpus = 0;
  if (!library.empty()) {
    nvml::NvmlApi api(library);
    const nvml::NvmlFunctions& f = api.functions();
    f.device_get_count(&gpus);
    std::vector<nvml::nvmlDevice_t> devices(gpus);
    for (unsigned g = 0; g < gpus; ++g) f.device_get_handle_by_index(g, &devices[g]);
    std::size_t keep = 0;
    nvml_ns = ns_per(iterations, static_cast<int>(gpus), [&](int) {
      for (unsigned g = 0; g < gpus; ++g) {
        std::string error;
        if (auto s = nvml::sample_device(f, devices[g], g, error)) keep += s->gpu_uuid.size();
      }
    });
    if (keep == 0) std::fprintf(stderr, "no GPU sampled\n");
  }

  std::vector<events::GpuSample> fleet;
  for (int g = 0; g < 8; ++g) fleet.push_back(synthetic(g));
  metrics::Registry registry;
  metrics::GpuExporter exporter(registry, {});
  const double export_ns = ns_per(iterations, 8, [&](int i) {
    for (auto& s : fleet) {
      s.energy_consumed_mj = *s.energy_consumed_mj + i;
      exporter.update(s);
    }
  });
  std::size_t bytes = 0;
  const double encode_ns = ns_per(iterations / 4 + 1, 8, [&](int) {
    for (const auto& s : fleet) bytes += events::encode_gpu_metrics_data(s).size();
  });
  const auto expose_start = Clock::now();
  const std::string text = registry.expose();
  const double expose_us =
      std::chrono::duration<double, std::micro>(Clock::now() - expose_start).count();

  std::printf(
      "{\"nvml_gpus\": %u, \"nvml_ns_per_gpu\": %.0f, \"export_ns_per_gpu\": %.0f, "
      "\"encode_ns_per_gpu\": %.0f, \"expose_us_8_gpus\": %.0f, \"exposition_bytes\": %zu, "
      "\"json_bytes_per_gpu\": %zu}\n",
      gpus, nvml_ns, export_ns, encode_ns, expose_us, text.size(),
      bytes > 0 ? events::encode_gpu_metrics_data(fleet[0]).size() : 0);
  return 0;
}
