// Positional label values onto prometheus::Family, whose series are keyed by a label map.

#include <stdexcept>

#include "telemetryd/metrics.hpp"

namespace telemetryd::metrics {

template <typename Metric>
Family<Metric>::Family(prometheus::Family<Metric>& family, std::vector<std::string> label_names,
                       std::vector<double> upper_bounds)
    : family_(family),
      label_names_(std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)) {}

template <typename Metric>
template <typename Values>
prometheus::Labels Family<Metric>::labels(const Values& values) const {
  if (values.size() != label_names_.size()) {
    throw std::logic_error("metric " + family_.GetName() + " takes " +
                           std::to_string(label_names_.size()) + " label values");
  }
  prometheus::Labels out;
  auto value = values.begin();
  for (const std::string& name : label_names_) out.emplace(name, std::string(*value++));
  return out;
}

template <typename Metric>
Metric& Family<Metric>::add(const prometheus::Labels& labels) {
  // Add returns the existing series when there is one.
  if constexpr (std::is_same_v<Metric, Histogram>) {
    return family_.Add(labels, upper_bounds_);
  } else {
    return family_.Add(labels);
  }
}

template <typename Metric>
Metric& Family<Metric>::with(std::initializer_list<std::string_view> values) {
  return add(labels(values));
}

template <typename Metric>
Metric& Family<Metric>::with(const std::vector<std::string>& values) {
  return add(labels(values));
}

template <typename Metric>
bool Family<Metric>::remove(const std::vector<std::string>& values) {
  const prometheus::Labels l = labels(values);
  if (!family_.Has(l)) return false;
  // prometheus-cpp removes by the series' address, which Add looks up.
  family_.Remove(&add(l));
  return true;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

}  // namespace telemetryd::metrics
