// The exposition: what prometheus::Registry and the scrape-time collectables collect, in the
// order the hand-written exposition before prometheus-cpp used (families by name, a family's
// labels in the order it declared them, its series by those values), so dashboards, tests and
// diffs of /metrics see the same text. prometheus::TextSerializer writes it.

#include <prometheus/text_serializer.h>
#include <algorithm>

#include "telemetryd/metrics.hpp"

namespace telemetryd::metrics {
namespace {

prometheus::MetricType metric_type(Type type) {
  switch (type) {
    case Type::kCounter:
      return prometheus::MetricType::Counter;
    case Type::kGauge:
      return prometheus::MetricType::Gauge;
    case Type::kHistogram:
      return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

// prometheus-cpp keeps a series' labels in a std::map, so they come sorted by name, and a
// family's series in hash order.
void order_series(prometheus::MetricFamily& family, const std::vector<std::string>& label_names) {
  if (label_names.size() > 1) {
    for (prometheus::ClientMetric& series : family.metric) {
      std::vector<prometheus::ClientMetric::Label> ordered;
      ordered.reserve(series.label.size());
      for (const std::string& name : label_names) {
        const auto it = std::find_if(series.label.begin(), series.label.end(),
                                     [&](const auto& label) { return label.name == name; });
        if (it != series.label.end()) ordered.push_back(std::move(*it));
      }
      series.label = std::move(ordered);
    }
  }
  std::sort(family.metric.begin(), family.metric.end(),
            [](const auto& a, const auto& b) { return a.label < b.label; });
}

}  // namespace

std::string Registry::expose() const {
  std::vector<prometheus::MetricFamily> collected = registry_.Collect();
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  {
    const std::lock_guard lock(mutex_);
    collectables = collectables_;
  }
  for (const auto& collectable : collectables) {
    for (auto& family : collectable->Collect()) collected.push_back(std::move(family));
  }
  std::sort(collected.begin(), collected.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });

  std::vector<prometheus::MetricFamily> out;
  out.reserve(collected.size() + families_.size());
  auto next = collected.begin();
  const std::lock_guard lock(mutex_);
  for (const auto& [name, entry] : families_) {
    // One whose registration prometheus-cpp refused (an invalid name) has none.
    if (!entry.counter && !entry.gauge && !entry.histogram) continue;
    while (next != collected.end() && next->name < name) out.push_back(std::move(*next++));
    if (next != collected.end() && next->name == name) {
      order_series(*next, entry.label_names);
      out.push_back(std::move(*next++));
    } else {
      // prometheus-cpp leaves out a family with no series yet; its HELP and TYPE stay, as
      // before, so a scrape lists every family the role registered.
      out.push_back(prometheus::MetricFamily{name, entry.help, metric_type(entry.type), {}});
    }
  }
  while (next != collected.end()) out.push_back(std::move(*next++));
  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace telemetryd::metrics
