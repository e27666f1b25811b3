// Families registered on a prometheus::Registry, remembered by name with their label order.

#include <algorithm>
#include <stdexcept>

#include "telemetryd/metrics.hpp"

namespace telemetryd::metrics {
namespace {

// prometheus-cpp 1.0.1 writes HELP as given; the text format wants backslash and newline escaped.
std::string escape_help(std::string_view help) {
  std::string out;
  for (const char ch : help) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

}  // namespace

std::vector<double> default_latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::entry(const std::string& name, const std::string& help, Type type,
                                 const std::vector<std::string>& label_names) {
  auto [it, inserted] = families_.try_emplace(name);
  Entry& e = it->second;
  if (inserted) {
    e.type = type;
    e.label_names = label_names;
    e.help = escape_help(help);
  } else if (e.type != type || e.label_names != label_names) {
    throw std::logic_error("metric " + name + " registered twice with different type or labels");
  }
  return e;
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  const std::lock_guard lock(mutex_);
  Entry& e = entry(name, help, Type::kCounter, label_names);
  if (!e.counter) {
    // prometheus-cpp throws std::invalid_argument for a name the format does not allow.
    auto& family = prometheus::BuildCounter().Name(name).Help(e.help).Register(registry_);
    e.counter = std::make_unique<Family<Counter>>(family, std::move(label_names));
  }
  return *e.counter;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names) {
  const std::lock_guard lock(mutex_);
  Entry& e = entry(name, help, Type::kGauge, label_names);
  if (!e.gauge) {
    auto& family = prometheus::BuildGauge().Name(name).Help(e.help).Register(registry_);
    e.gauge = std::make_unique<Family<Gauge>>(family, std::move(label_names));
  }
  return *e.gauge;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> upper_bounds) {
  const std::lock_guard lock(mutex_);
  Entry& e = entry(name, help, Type::kHistogram, label_names);
  if (!e.histogram) {
    // prometheus::Histogram takes any bounds; unsorted ones would give non-cumulative buckets.
    if (!std::is_sorted(upper_bounds.begin(), upper_bounds.end())) {
      throw std::logic_error("histogram " + name + ": bounds must ascend");
    }
    auto& family = prometheus::BuildHistogram().Name(name).Help(e.help).Register(registry_);
    e.histogram = std::make_unique<Family<Histogram>>(family, std::move(label_names),
                                                      std::move(upper_bounds));
  }
  return *e.histogram;
}

void Registry::add_collectable(std::shared_ptr<prometheus::Collectable> collectable) {
  const std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

}  // namespace telemetryd::metrics
