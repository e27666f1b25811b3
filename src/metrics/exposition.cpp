// Prometheus text exposition format 0.0.4; `promtool check metrics` runs over this output in the
// test suite.

#include <charconv>
#include <cmath>

#include "telemetryd/metrics.hpp"

namespace telemetryd::metrics {
namespace {

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

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out.push_back(',');
    first = false;
    out += names[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    if (!first) out.push_back(',');
    out += std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
  }
  out.push_back('}');
}

void append_header(std::string& out, const std::string& name, const std::string& help,
                   std::string_view type) {
  out += "# HELP " + name + " " + escape_help(help) + "\n";
  out += "# TYPE " + name + " " + std::string(type) + "\n";
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  for (const char ch : value) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '"') {
      out += "\\\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc{} ? std::string(buf, end) : std::string("NaN");
}

std::string Registry::expose() const {
  std::vector<std::function<void()>> hooks;
  {
    const std::lock_guard lock(mutex_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();

  std::string out;
  const std::lock_guard lock(mutex_);
  // Named references, not a structured binding: clang 14 cannot capture bindings in lambdas.
  for (const auto& family : families_) {
    const std::string& name = family.first;
    const Entry& e = family.second;
    switch (e.type) {
      case Type::kCounter:
        append_header(out, name, e.counter->help(), "counter");
        e.counter->for_each([&](const std::vector<std::string>& labels, const Counter& c) {
          out += name;
          append_labels(out, e.label_names, labels);
          out += " " + format_value(c.value()) + "\n";
        });
        break;
      case Type::kGauge:
        append_header(out, name, e.gauge->help(), "gauge");
        e.gauge->for_each([&](const std::vector<std::string>& labels, const Gauge& g) {
          out += name;
          append_labels(out, e.label_names, labels);
          out += " " + format_value(g.value()) + "\n";
        });
        break;
      case Type::kHistogram:
        append_header(out, name, e.histogram->help(), "histogram");
        e.histogram->for_each([&](const std::vector<std::string>& labels, const Histogram& h) {
          const auto snap = h.snapshot();
          for (std::size_t i = 0; i <= snap.upper_bounds.size(); ++i) {
            const std::string le =
                i < snap.upper_bounds.size() ? format_value(snap.upper_bounds[i]) : "+Inf";
            out += name + "_bucket";
            append_labels(out, e.label_names, labels, "le", le);
            out += " " + std::to_string(snap.cumulative_counts[i]) + "\n";
          }
          out += name + "_sum";
          append_labels(out, e.label_names, labels);
          out += " " + format_value(snap.sum) + "\n";
          out += name + "_count";
          append_labels(out, e.label_names, labels);
          out += " " + std::to_string(snap.count) + "\n";
        });
        break;
    }
  }
  return out;
}

}  // namespace telemetryd::metrics
