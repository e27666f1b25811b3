#include "otlp/genai_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <vector>

namespace telemetryd::otlp {
namespace {

constexpr std::string_view kTokenUsage = "gen_ai.client.token.usage";
// Providers are a short list (openai, anthropic, vllm, ...); past it, a label is "other".
constexpr std::size_t kMaxProviders = 64;

std::string_view string_attribute(const std::vector<KeyValue>& attrs,
                                  std::initializer_list<std::string_view> keys) {
  for (const std::string_view key : keys) {
    for (const KeyValue& kv : attrs) {
      if (kv.key == key && kv.value.kind == Value::Kind::kString && !kv.value.text.empty()) {
        return kv.value.text;
      }
    }
  }
  return {};
}

// The series' identity: its resource and point attributes, sorted, so that a cumulative point
// is compared with the previous point of the very same series.
std::string series_key(const std::vector<KeyValue>& resource, const NumberPoint& point) {
  std::vector<std::pair<std::string_view, std::string>> parts;
  const auto add = [&parts](const std::vector<KeyValue>& attrs, char scope) {
    for (const KeyValue& kv : attrs) {
      std::string value(1, scope);
      switch (kv.value.kind) {
        case Value::Kind::kString:
        case Value::Kind::kBytes:
          value.append(kv.value.text);
          break;
        case Value::Kind::kInt:
          value += std::to_string(kv.value.integer);
          break;
        case Value::Kind::kDouble:
          value += std::to_string(kv.value.number);
          break;
        case Value::Kind::kBool:
          value += kv.value.boolean ? "true" : "false";
          break;
        default:
          break;
      }
      parts.emplace_back(kv.key, std::move(value));
    }
  };
  add(resource, 'r');
  add(point.attributes, 'p');
  std::sort(parts.begin(), parts.end());
  std::string key;
  for (const auto& [name, value] : parts) {
    key.append(name);
    key.push_back('\x1f');
    key.append(value);
    key.push_back('\x1e');
  }
  return key;
}

}  // namespace

TokenUsageMetrics::TokenUsageMetrics(metrics::Registry& registry, std::size_t max_series)
    : tokens_(registry.counter("otlp_genai_client_tokens_total",
                               "Tokens reported by gen_ai.client.token.usage metric points, by "
                               "model, provider and token type (not billed: no request identity).",
                               {"model", "provider", "token_type"})),
      max_series_(max_series) {}

MetricsOutcome TokenUsageMetrics::observe(const MetricsRequest& request) {
  MetricsOutcome out;
  out.points = request.data_point_count;
  for (const ResourceMetrics& resource : request.resources) {
    for (const Metric& metric : resource.metrics) {
      if (metric.name != kTokenUsage) continue;
      if (metric.kind != Metric::Kind::kHistogram &&
          metric.kind != Metric::Kind::kExponentialHistogram && metric.kind != Metric::Kind::kSum) {
        continue;
      }
      for (const NumberPoint& point : metric.points) {
        if (!point.has_value || !std::isfinite(point.value) || point.value < 0) {
          ++out.rejected;
          if (out.rejected <= 3) {
            if (!out.rejection_message.empty()) out.rejection_message += "; ";
            out.rejection_message +=
                std::string(kTokenUsage) + ": a data point without a finite, non-negative sum";
          }
          continue;
        }
        double increase = point.value;
        if (metric.temporality == 2) {  // cumulative
          std::string key = series_key(resource.resource, point);
          auto it = cumulative_.find(key);
          if (it != cumulative_.end() &&
              it->second.start_time_unix_nano == point.start_time_unix_nano &&
              point.value >= it->second.sum) {
            increase = point.value - it->second.sum;
          }
          if (it != cumulative_.end()) {
            it->second = {point.start_time_unix_nano, point.value};
          } else if (cumulative_.size() < max_series_) {
            cumulative_.emplace(std::move(key),
                                Cumulative{point.start_time_unix_nano, point.value});
          } else {
            // Untracked, its every export would add its whole running sum again.
            ++out.untracked;
            continue;
          }
        }
        std::string model(
            string_attribute(point.attributes, {"gen_ai.response.model", "gen_ai.request.model"}));
        if (model.empty()) model = "unknown";
        if (!models_.contains(model)) {
          if (models_.size() >= max_series_) {
            model = "other";
          } else {
            models_.emplace(model, true);
          }
        }
        std::string provider(
            string_attribute(point.attributes, {"gen_ai.provider.name", "gen_ai.system"}));
        if (!providers_.contains(provider)) {
          if (providers_.size() >= kMaxProviders) {
            provider = "other";
          } else {
            providers_.emplace(provider, true);
          }
        }
        std::string type(string_attribute(point.attributes, {"gen_ai.token.type"}));
        if (type != "input" && type != "output") type = "other";
        ++out.counted;
        if (increase > 0) tokens_.with({model, provider, type}).Increment(increase);
      }
    }
  }
  return out;
}

}  // namespace telemetryd::otlp
