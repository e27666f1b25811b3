#pragma once
// A source produces events. The producer pipeline calls sample() once per tick: at the source's
// own interval in real-time mode, or as fast as producer.rate demands in rate mode. Sources are
// registered like components: one .cpp file each, with its own config section.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "telemetryd/config.hpp"
#include "telemetryd/event.hpp"

namespace telemetryd {

namespace events {
struct GpuSample;
}

/// Where a source sends each kind of event.
struct Topics {
  std::string gpu_metrics = kGpuMetricsTopic;
  std::string token_usage = kTokenUsageTopic;
};

class Source {
 public:
  virtual ~Source() = default;
  /// Appends one tick's events (every GPU once, plus the token usage of that tick).
  /// Hot path: reports failures by returning false and setting `error`, never by throwing.
  virtual bool sample(std::vector<Event>& out, std::string& error) = 0;
  /// Time one tick stands for.
  virtual std::chrono::milliseconds interval() const = 0;

  using GpuSampleObserver = std::function<void(const events::GpuSample&)>;
  /// Called with every GPU sample the source takes, on the sampling thread, before it is
  /// encoded: the per-GPU series on /metrics are fed from here, not by decoding events again.
  void observe_gpu_samples(GpuSampleObserver observer) { gpu_observer_ = std::move(observer); }

 protected:
  void notify_gpu_sample(const events::GpuSample& sample) const {
    if (gpu_observer_) gpu_observer_(sample);
  }

 private:
  GpuSampleObserver gpu_observer_;
};

struct SourceInfo {
  std::string name;
  SectionSpec section;
  /// Throws StartupError when the source cannot work on this host (e.g. no NVML).
  std::function<std::unique_ptr<Source>(const Config&, const Topics&)> create;
};

class SourceRegistry {
 public:
  static SourceRegistry& instance();
  void add(SourceInfo info);
  const SourceInfo* find(std::string_view name) const;
  std::vector<std::string> names() const;
  /// Every source's config section, for components that build a source.
  std::vector<const SectionSpec*> sections() const;
  /// Config check for a key naming a source.
  static std::optional<std::string> check_name(std::string_view name);

 private:
  std::vector<SourceInfo> sources_;
};

struct SourceRegistration {
  explicit SourceRegistration(SourceInfo info) { SourceRegistry::instance().add(std::move(info)); }
};

}  // namespace telemetryd
