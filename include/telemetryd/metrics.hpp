#pragma once
// A small Prometheus metrics registry (prometheus-cpp is not packaged in Debian): counters,
// gauges and histograms with labels, exposed in text format 0.0.4. Children are created once and
// then updated lock-free, so hot paths keep a reference and never touch the registry's mutex.

#include <atomic>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::metrics {

class Counter {
 public:
  void inc(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  /// Only for totals mirrored from a monotonic source outside the process (e.g. /proc CPU time).
  void set_total(double total) { value_.store(total, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  void dec(double amount = 1.0) { value_.fetch_sub(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  /// `upper_bounds` ascending, without +Inf (always added).
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative_counts;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // non-cumulative, last is +Inf
  std::atomic<double> sum_{0.0};
  std::atomic<std::uint64_t> count_{0};
};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
std::vector<double> default_latency_buckets();

enum class Type { kCounter, kGauge, kHistogram };

template <typename Metric>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Metric>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}

  /// The child for these label values, in the order of the family's label names. The reference
  /// stays valid for the registry's lifetime.
  Metric& with(std::initializer_list<std::string_view> values) {
    return with(std::vector<std::string>(values.begin(), values.end()));
  }
  Metric& with(std::vector<std::string> values);
  /// Drops the child with these label values from the exposition; true when there was one. Only
  /// for series whose subject is gone (a process that exited): whoever called with() for them
  /// must drop its reference first, as it dangles afterwards. Families are shared by name within
  /// a registry, so one owner per set of label values: two users of with() for the same values
  /// (e.g. two metrics::GpuExporter on one registry seeing the same GPU) share the child, and one
  /// removing it leaves the other's reference dangling. Hence one GPU exporter per registry.
  bool remove(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  template <typename Visit>
  void for_each(Visit&& visit) const {
    const std::lock_guard lock(mutex_);
    for (const auto& [labels, metric] : children_) visit(labels, *metric);
  }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Metric>()> make_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

class Registry {
 public:
  Registry();
  /// Registering an existing name again returns the same family when type and labels match,
  /// and throws std::logic_error otherwise.
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names = {},
                               std::vector<double> upper_bounds = default_latency_buckets());

  /// Runs before every exposition, e.g. to refresh process gauges from /proc.
  void on_collect(std::function<void()> hook);

  /// Prometheus text format 0.0.4, families sorted by name.
  std::string expose() const;

 private:
  struct Entry {
    Type type;
    std::vector<std::string> label_names;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry& entry(const std::string& name, Type type, const std::vector<std::string>& label_names);

  mutable std::mutex mutex_;
  std::map<std::string, Entry> families_;
  std::vector<std::function<void()>> hooks_;
};

/// Adds process_* metrics (CPU, memory, file descriptors, start time) refreshed from /proc on
/// each scrape, and telemetryd_build_info.
void register_process_metrics(Registry& registry, std::string_view version);

/// Escapes a label value for the text format (backslash, quote, newline).
std::string escape_label_value(std::string_view value);
/// Formats a sample value as Prometheus expects (+Inf, -Inf, NaN, shortest round-trip).
std::string format_value(double value);

}  // namespace telemetryd::metrics
