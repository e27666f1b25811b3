#include <algorithm>
#include <stdexcept>

#include "telemetryd/metrics.hpp"

namespace telemetryd::metrics {

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds_.size() + 1)) {
  if (!std::is_sorted(upper_bounds_.begin(), upper_bounds_.end())) {
    throw std::logic_error("histogram bounds must ascend");
  }
}

void Histogram::observe(double value) {
  const auto it = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  buckets_[static_cast<std::size_t>(it - upper_bounds_.begin())].fetch_add(
      1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.upper_bounds = upper_bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snap.cumulative_counts.push_back(running);
  }
  snap.sum = sum_.load(std::memory_order_relaxed);
  // The count is the +Inf bucket, so a scrape racing an observe still reads a consistent series.
  snap.count = running;
  return snap;
}

std::vector<double> default_latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

template <typename Metric>
Metric& Family<Metric>::with(std::vector<std::string> values) {
  if (values.size() != label_names_.size()) {
    throw std::logic_error("metric " + name_ + " takes " + std::to_string(label_names_.size()) +
                           " label values");
  }
  const std::lock_guard lock(mutex_);
  auto& slot = children_[std::move(values)];
  if (!slot) slot = make_();
  return *slot;
}

template <typename Metric>
bool Family<Metric>::remove(const std::vector<std::string>& values) {
  const std::lock_guard lock(mutex_);
  return children_.erase(values) > 0;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Registry() = default;

Registry::Entry& Registry::entry(const std::string& name, Type type,
                                 const std::vector<std::string>& label_names) {
  auto [it, inserted] = families_.try_emplace(name);
  Entry& e = it->second;
  if (inserted) {
    e.type = type;
    e.label_names = label_names;
  } else if (e.type != type || e.label_names != label_names) {
    throw std::logic_error("metric " + name + " registered twice with different type or labels");
  }
  return e;
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  const std::lock_guard lock(mutex_);
  Entry& e = entry(name, Type::kCounter, label_names);
  if (!e.counter) {
    e.counter = std::make_unique<Family<Counter>>(name, help, std::move(label_names),
                                                  [] { return std::make_unique<Counter>(); });
  }
  return *e.counter;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names) {
  const std::lock_guard lock(mutex_);
  Entry& e = entry(name, Type::kGauge, label_names);
  if (!e.gauge) {
    e.gauge = std::make_unique<Family<Gauge>>(name, help, std::move(label_names),
                                              [] { return std::make_unique<Gauge>(); });
  }
  return *e.gauge;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> upper_bounds) {
  const std::lock_guard lock(mutex_);
  Entry& e = entry(name, Type::kHistogram, label_names);
  if (!e.histogram) {
    e.histogram = std::make_unique<Family<Histogram>>(
        name, help, std::move(label_names),
        [bounds = std::move(upper_bounds)] { return std::make_unique<Histogram>(bounds); });
  }
  return *e.histogram;
}

void Registry::on_collect(std::function<void()> hook) {
  const std::lock_guard lock(mutex_);
  hooks_.push_back(std::move(hook));
}

}  // namespace telemetryd::metrics
