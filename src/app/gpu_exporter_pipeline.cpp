// The `gpu_exporter` component of the gpu-exporter role: a source (nvml by default) sampled on a
// thread of its own at its interval, feeding only the per-GPU series on /metrics. No Kafka, no
// database: a node agent in the place of dcgm-exporter. A host without NVML (yet) keeps the
// process up and /ready at 503 with the reason, retrying, rather than restart-looping.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "metrics/gpu_exporter.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/source.hpp"

namespace telemetryd::app {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kCheck = "gpu_exporter";

class GpuExporterPipeline final : public Component {
 public:
  explicit GpuExporterPipeline(ComponentContext& ctx)
      : config_(ctx.config),
        metrics_(ctx.metrics),
        readiness_(ctx.readiness),
        source_name_(ctx.config.str("gpu_exporter.source")),
        retry_interval_(ctx.config.integer("gpu_exporter.retry_interval_ms")),
        samples_(ctx.metrics
                     .counter("gpu_exporter_samples_total",
                              "Ticks in which the source read at least one GPU.", {"source"})
                     .with({source_name_})),
        errors_(ctx.metrics
                    .counter("gpu_exporter_source_errors_total",
                             "Ticks in which the source reported a problem (or could not start).",
                             {"source"})
                    .with({source_name_})),
        duration_(ctx.metrics
                      .histogram("gpu_exporter_sample_duration_seconds",
                                 "Time one tick of the source took (every GPU read once).",
                                 {"source"})
                      .with({source_name_})) {
    readiness_.declare(kCheck, "waiting for the first GPU sample");
  }

  ~GpuExporterPipeline() override {
    stop();
    if (thread_.joinable()) thread_.join();
  }

  void start() override {
    log::info("gpu_exporter", "starting", {{"source", source_name_}});
    thread_ = std::thread([this] { run(); });
  }

  void stop() override {
    {
      const std::lock_guard lock(wake_mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
  }

 private:
  // Sleeps until `until` or stop(); false when stopping.
  bool sleep_until(Clock::time_point until) {
    std::unique_lock lock(wake_mutex_);
    return !wake_.wait_until(lock, until, [this] { return stopping_.load(); });
  }

  void not_ready(const std::string& reason) {
    if (ready_ || reason != last_reason_) {
      log::warn("gpu_exporter", "not ready", {{"source", source_name_}, {"reason", reason}});
      readiness_.set(kCheck, false, reason);
      ready_ = false;
      last_reason_ = reason;
    }
  }

  // The source is built on this thread, so a missing driver is a readiness problem that may
  // resolve itself (driver installed later), not a failed start.
  bool ensure_source() {
    if (source_) return true;
    try {
      source_ = SourceRegistry::instance().find(source_name_)->create(config_, Topics{});
      // Exporting is this role's whole job: gpu_metrics.enabled does not apply here.
      exporter_ =
          std::make_unique<metrics::GpuExporter>(metrics_, metrics::gpu_exporter_settings(config_));
      source_->observe_gpu_samples(
          [raw = exporter_.get()](const events::GpuSample& sample) { raw->update(sample); });
      return true;
    } catch (const StartupError& e) {
      errors_.Increment();
      not_ready(e.what());
      return false;
    }
  }

  void run() {
    std::vector<Event> events;
    auto next = Clock::now();
    while (!stopping_) {
      if (!ensure_source()) {
        if (!sleep_until(Clock::now() + retry_interval_)) break;
        continue;
      }
      if (!sleep_until(next)) break;
      const auto interval = source_->interval();
      next += interval;
      // Behind by more than a tick (a slow NVML call, a stopped VM): skip, never burst.
      if (const auto now = Clock::now(); next < now) next = now + interval;

      events.clear();
      std::string error;
      const auto started = Clock::now();
      const bool ok = source_->sample(events, error);
      duration_.Observe(std::chrono::duration<double>(Clock::now() - started).count());
      if (!error.empty()) errors_.Increment();
      if (!ok) {
        not_ready(error.empty() ? "the source read no GPU" : error);
        continue;
      }
      samples_.Increment();
      if (!ready_) {
        ready_ = true;
        last_reason_.clear();
        readiness_.set(kCheck, true,
                       "sampling " + std::to_string(events.size()) + " GPU(s) every " +
                           std::to_string(interval.count()) + " ms");
        log::info("gpu_exporter", "ready",
                  {{"source", source_name_}, {"events", events.size()}, {"error", error}});
      } else if (!error.empty() && errors_.Value() <= 10) {
        log::warn("gpu_exporter", "source problem", {{"source", source_name_}, {"error", error}});
      }
    }
    log::info("gpu_exporter", "stopped", {{"samples", samples_.Value()}});
  }

  const Config& config_;
  metrics::Registry& metrics_;
  Readiness& readiness_;
  std::string source_name_;
  std::chrono::milliseconds retry_interval_;
  metrics::Counter& samples_;
  metrics::Counter& errors_;
  metrics::Histogram& duration_;
  // Only touched on the sampling thread once it runs.
  std::unique_ptr<Source> source_;
  std::unique_ptr<metrics::GpuExporter> exporter_;
  bool ready_ = false;
  std::string last_reason_;
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

std::optional<std::string> check_source(std::string_view name) {
  return SourceRegistry::check_name(name);
}

const ComponentRegistration kRegistration{
    {"gpu_exporter",
     {"gpu_exporter",
      "The gpu-exporter role: samples GPUs at the source's interval and serves them only as "
      "per-GPU series on /metrics (no Kafka, no database).",
      {
          {.name = "source",
           .description = "Where GPU samples come from: nvml (this host's GPUs, through the "
                          "driver's libnvidia-ml) or synthetic (a simulated fleet, for tests).",
           .default_value = "nvml",
           .check = check_source},
          {.name = "retry_interval_ms",
           .type = ValueType::kInt,
           .description = "While the source cannot start (no driver, no GPU), /ready answers "
                          "503 with the reason and the source is tried again after this long.",
           .default_value = "10000",
           .min = 100,
           .max = 3600000},
      }},
     [](ComponentContext& ctx) { return std::make_unique<GpuExporterPipeline>(ctx); },
     [] {
       auto sections = SourceRegistry::instance().sections();
       sections.push_back(&metrics::gpu_metrics_section());
       return sections;
     }}};

}  // namespace
}  // namespace telemetryd::app
