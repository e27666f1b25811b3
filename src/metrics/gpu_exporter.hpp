#pragma once
// Per-GPU series on /metrics, fed from every GpuSample a source takes (Source::observe_gpu_samples)
// in the producer, all and gpu-exporter roles. Names follow Prometheus conventions under
// telemetryd_gpu_ (docs/gpu-metrics.md), or dcgm-exporter's DCGM_FI_* names and units with
// gpu_metrics.naming: dcgm, so existing dashboards keep working.

#include <cstddef>
#include <memory>

#include "telemetryd/config.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd {
class Source;
namespace events {
struct GpuSample;
}
}  // namespace telemetryd

namespace telemetryd::metrics {

enum class GpuNaming { kTelemetryd, kDcgm };

struct GpuExporterSettings {
  GpuNaming naming = GpuNaming::kTelemetryd;
  /// GPUs beyond this many (by UUID) are not exported: a synthetic fleet of thousands must not
  /// blow up a scrape.
  std::size_t max_gpus = 256;
  /// Per-process series per GPU; further processes of a sample are left out.
  std::size_t max_processes_per_gpu = 32;
};

/// The `gpu_metrics:` section, a subsection of every component that samples GPUs.
const SectionSpec& gpu_metrics_section();
GpuExporterSettings gpu_exporter_settings(const Config& config);

class GpuExporter {
 public:
  /// One exporter per registry: it keeps pointers to the children it created and removes series
  /// whose subject is gone (an exited process, a destroyed MIG instance, a missing reason mask),
  /// and a second exporter on the same registry seeing the same GPU would share those children.
  GpuExporter(Registry& registry, GpuExporterSettings settings);
  ~GpuExporter();
  GpuExporter(const GpuExporter&) = delete;
  GpuExporter& operator=(const GpuExporter&) = delete;

  /// Sets every series the sample has a value for. Label lookups happen once per GPU (and per
  /// process); afterwards an update is a hash lookup and relaxed atomic stores. Thread-safe.
  void update(const events::GpuSample& sample);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Connects a new exporter to `source` when gpu_metrics.enabled is true; nullptr otherwise. The
/// exporter must outlive the source's sampling.
std::unique_ptr<GpuExporter> export_gpu_samples(Source& source, const Config& config,
                                                Registry& registry);

}  // namespace telemetryd::metrics
