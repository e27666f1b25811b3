#pragma once
// Prometheus metrics on prometheus-cpp's core library (Debian's prometheus-cpp-dev): its Registry
// owns every family and series, its Counter, Gauge and Histogram are what callers update, and its
// TextSerializer writes the exposition our own HTTP listener serves on /metrics.
//
// What this header adds is the interface callers had before the library: a family is registered
// once with its label names, and a series is then picked by label values in that order (`with`),
// rather than by building a prometheus::Labels map at every call site. Series are updated
// lock-free (counters and gauges) or under the series' own mutex (histograms), so hot paths keep
// the reference `with` returns and never touch a registry lock.

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::metrics {

using Counter = prometheus::Counter;
using Gauge = prometheus::Gauge;
using Histogram = prometheus::Histogram;

/// Latency buckets in seconds, from 0.5 ms to 10 s.
std::vector<double> default_latency_buckets();

enum class Type { kCounter, kGauge, kHistogram };

/// One prometheus::Family, its series addressed by label values in the order of `label_names`.
template <typename Metric>
class Family {
 public:
  /// `upper_bounds`: the buckets of every series, for histograms only.
  Family(prometheus::Family<Metric>& family, std::vector<std::string> label_names,
         std::vector<double> upper_bounds = {});

  /// The series for these label values, in the order of the family's label names, created on
  /// first use. The reference stays valid until remove() drops that series (or the registry
  /// goes). Each call looks the series up: keep the reference where a series is updated often.
  Metric& with(std::initializer_list<std::string_view> values);
  Metric& with(const std::vector<std::string>& values);
  /// Drops the series with these label values from the exposition; true when there was one. Only
  /// for series whose subject is gone (a process that exited, a partition revoked): whoever
  /// called with() for them must drop its reference first, as it dangles afterwards. Families are
  /// shared by name within a registry, so one owner per set of label values: two users of with()
  /// for the same values (e.g. two metrics::GpuExporter on one registry seeing the same GPU)
  /// share the series, and one removing it leaves the other's reference dangling. Hence one GPU
  /// exporter per registry.
  bool remove(const std::vector<std::string>& values);

  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  template <typename Values>
  prometheus::Labels labels(const Values& values) const;
  Metric& add(const prometheus::Labels& labels);

  prometheus::Family<Metric>& family_;
  std::vector<std::string> label_names_;
  std::vector<double> upper_bounds_;
};

/// The series of a one-label family by label value, remembered, for a caller on one thread that
/// picks the series per event (the topic of each message): a std::map find, where with() builds a
/// label map and prometheus::Family::Add allocates a series even when it has one. Not
/// thread-safe; nothing may remove the family's series while this is in use.
template <typename Metric>
class SeriesByValue {
 public:
  explicit SeriesByValue(Family<Metric>& family) : family_(family) {}
  Metric& operator()(std::string_view value) {
    auto it = series_.find(value);
    if (it == series_.end()) it = series_.emplace(value, &family_.with({value})).first;
    return *it->second;
  }

 private:
  Family<Metric>& family_;
  std::map<std::string, Metric*, std::less<>> series_;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Registering an existing name again returns the same family when type and labels match,
  /// and throws std::logic_error otherwise.
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names = {},
                               std::vector<double> upper_bounds = default_latency_buckets());

  /// Families computed at scrape time (e.g. process metrics read from /proc), exposed after
  /// collecting them on every expose(). Their names must not clash with registered families.
  void add_collectable(std::shared_ptr<prometheus::Collectable> collectable);

  /// Prometheus text format 0.0.4 (prometheus::TextSerializer), families sorted by name.
  std::string expose() const;

 private:
  struct Entry {
    Type type;
    std::vector<std::string> label_names;
    std::string help;  // escaped for the text format
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry& entry(const std::string& name, const std::string& help, Type type,
               const std::vector<std::string>& label_names);

  prometheus::Registry registry_;
  mutable std::mutex mutex_;
  // By name: the label order of each family (prometheus-cpp keeps labels as a sorted map), and
  // its HELP and TYPE for the exposition while it has no series yet.
  std::map<std::string, Entry> families_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
};

/// Adds process_* metrics (CPU, memory, file descriptors, start time) read from /proc on each
/// scrape, and telemetryd_build_info.
void register_process_metrics(Registry& registry, std::string_view version);

}  // namespace telemetryd::metrics
