#include "scrape/serving_metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string_view>
#include <utility>

namespace telemetryd::scrape {

namespace {

// The names one server kind uses; a second name is the older spelling, read when the first is
// absent. vLLM names carry `_total` because prometheus_client appends it to counters; SGLang
// declares its counters with `_total`, which prometheus_client strips and appends again.
struct ServerNames {
  std::string_view kind, prefix, escaped_prefix;
  std::string_view prompt_tokens, generation_tokens;
  std::array<std::string_view, 2> cached_tokens;
  std::string_view requests;
  std::array<std::string_view, 2> kv_usage;
  std::string_view running, waiting;
  std::string_view ttft;
  std::array<std::string_view, 2> itl;
};

constexpr std::array<ServerNames, 2> kServers{{
    {"sglang",
     "sglang:",
     "sglang_",
     "sglang:prompt_tokens_total",
     "sglang:generation_tokens_total",
     {"sglang:cached_tokens_total", ""},
     "sglang:num_requests_total",
     {"sglang:token_usage", ""},
     "sglang:num_running_reqs",
     "sglang:num_queue_reqs",
     "sglang:time_to_first_token_seconds",
     {"sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"}},
    {"vllm",
     "vllm:",
     "vllm_",
     "vllm:prompt_tokens_total",
     "vllm:generation_tokens_total",
     {"vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"},
     "vllm:request_success_total",
     {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
     "vllm:num_requests_running",
     "vllm:num_requests_waiting",
     "vllm:time_to_first_token_seconds",
     {"vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"}},
}};

struct Aggregate {
  double sum = 0;
  double min = std::numeric_limits<double>::infinity();
  std::size_t samples = 0;
};

// Everything one (server kind, model) exposes, summed over its other labels.
struct ModelSamples {
  std::map<std::string, Aggregate, std::less<>> values;
  // Histogram name (without _bucket) -> le -> cumulative count summed over engines/ranks.
  std::map<std::string, std::map<double, double>, std::less<>> buckets;
};

// prometheus_client 0.26's OpenMetrics output escapes sample names with the label-name alphabet,
// so `vllm:prompt_tokens_total` arrives as `vllm_prompt_tokens_total` (its TYPE line keeps the
// colon). These names have a colon only after the prefix, so the prefix alone is restored; only
// when the exposition has no sample spelt with the colon, so one series is never read twice.
struct Classifier {
  std::array<bool, kServers.size()> colon_seen{};

  explicit Classifier(const Exposition& exposition) {
    for (const Sample& sample : exposition.samples)
      for (std::size_t i = 0; i < kServers.size(); ++i)
        if (sample.name.starts_with(kServers[i].prefix)) colon_seen[i] = true;
  }

  // The server the sample is from (kServers.size() when none) and its name with the colon.
  std::size_t classify(std::string_view name, std::string& canonical) const {
    for (std::size_t i = 0; i < kServers.size(); ++i) {
      if (name.starts_with(kServers[i].prefix)) {
        canonical = name;
        return i;
      }
      if (!colon_seen[i] && name.starts_with(kServers[i].escaped_prefix)) {
        canonical = std::string(kServers[i].prefix);
        canonical.append(name.substr(kServers[i].prefix.size()));
        return i;
      }
    }
    return kServers.size();
  }
};

bool parse_le(std::string_view text, double& out) {
  if (text == "+Inf" || text == "Inf" || text == "+inf" || text == "inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && !std::isnan(out);
}

bool is_histogram_of_interest(const ServerNames& names, std::string_view base) {
  return base == names.ttft || base == names.itl[0] || base == names.itl[1];
}

std::optional<double> total(const ModelSamples& model, std::string_view name) {
  if (name.empty()) return std::nullopt;
  const auto it = model.values.find(name);
  if (it == model.values.end()) return std::nullopt;
  return it->second.sum;
}

std::optional<double> minimum(const ModelSamples& model, std::string_view name) {
  const auto it = model.values.find(name);
  if (it == model.values.end() || it->second.samples == 0) return std::nullopt;
  return it->second.min;
}

std::optional<double> average(const ModelSamples& model, std::string_view name) {
  if (name.empty()) return std::nullopt;
  const auto it = model.values.find(name);
  if (it == model.values.end() || it->second.samples == 0) return std::nullopt;
  return it->second.sum / static_cast<double>(it->second.samples);
}

template <typename Read>
std::optional<double> first_of(const ModelSamples& model,
                               const std::array<std::string_view, 2>& names, Read read) {
  if (auto value = read(model, names[0])) return value;
  return read(model, names[1]);
}

std::uint64_t to_count(double value) {
  if (!(value >= 0) || !(value < 1.8e19)) return 0;
  return static_cast<std::uint64_t>(std::llround(std::min(value, 9.2e18)));
}

bool has_histogram(const ModelSamples& model, std::string_view base) {
  return !base.empty() && model.buckets.count(base) > 0;
}

LatencyQuantiles quantiles(const ModelSamples& model, std::string_view base) {
  LatencyQuantiles out;
  const auto it = model.buckets.find(base);
  if (it == model.buckets.end()) return out;
  std::vector<Bucket> buckets;
  buckets.reserve(it->second.size());
  for (const auto& [le, count] : it->second) buckets.push_back({le, count});
  const std::string name(base);
  if (const auto count = total(model, name + "_count")) {
    out.count = to_count(*count);
  } else if (!buckets.empty() && std::isinf(buckets.back().upper_bound)) {
    out.count = to_count(buckets.back().cumulative_count);
  }
  out.sum = total(model, name + "_sum").value_or(0);
  out.p50 = bucket_quantile(0.5, buckets);
  out.p90 = bucket_quantile(0.9, buckets);
  out.p99 = bucket_quantile(0.99, buckets);
  return out;
}

}  // namespace

std::optional<double> bucket_quantile(double q, std::vector<Bucket> buckets) {
  if (!(q >= 0 && q <= 1)) return std::nullopt;
  std::erase_if(buckets, [](const Bucket& b) {
    return std::isnan(b.upper_bound) || std::isnan(b.cumulative_count);
  });
  std::sort(buckets.begin(), buckets.end(),
            [](const Bucket& a, const Bucket& b) { return a.upper_bound < b.upper_bound; });
  // Equal bounds (the same bucket from two series) count together, as Prometheus coalesces them.
  std::vector<Bucket> merged;
  for (const Bucket& b : buckets) {
    if (!merged.empty() && merged.back().upper_bound == b.upper_bound) {
      merged.back().cumulative_count += b.cumulative_count;
    } else {
      merged.push_back(b);
    }
  }
  if (merged.size() < 2 || merged.back().upper_bound != std::numeric_limits<double>::infinity())
    return std::nullopt;
  // Scrapes can catch buckets mid-update; like Prometheus, a count below an earlier one is raised.
  for (std::size_t i = 1; i < merged.size(); ++i)
    merged[i].cumulative_count =
        std::max(merged[i].cumulative_count, merged[i - 1].cumulative_count);
  const double observations = merged.back().cumulative_count;
  if (!(observations > 0) || !std::isfinite(observations)) return std::nullopt;

  double rank = q * observations;
  std::size_t b = 0;
  while (b < merged.size() - 1 && merged[b].cumulative_count < rank) ++b;
  // In the +Inf bucket: the highest finite bound is the best answer there is.
  if (b == merged.size() - 1) return merged[b - 1].upper_bound;
  if (b == 0 && merged[0].upper_bound <= 0) return merged[0].upper_bound;
  double start = 0;
  double in_bucket = merged[b].cumulative_count;
  if (b > 0) {
    start = merged[b - 1].upper_bound;
    in_bucket -= merged[b - 1].cumulative_count;
    rank -= merged[b - 1].cumulative_count;
  }
  // Only q = 0 with an empty first bucket gets here with nothing in the bucket.
  if (!(in_bucket > 0)) return start;
  const double result = start + (merged[b].upper_bound - start) * (rank / in_bucket);
  if (std::isnan(result)) return std::nullopt;
  return result;
}

std::vector<ModelServing> serving_by_model(const Exposition& exposition) {
  // (index into kServers, model) -> samples; kServers is sorted by kind, so is this map.
  std::map<std::pair<std::size_t, std::string_view>, ModelSamples> models;
  const Classifier classifier(exposition);
  std::string canonical;
  for (const Sample& sample : exposition.samples) {
    const std::size_t server = classifier.classify(sample.name, canonical);
    if (server == kServers.size()) continue;
    const std::string_view name = canonical;
    const std::string* model_name = find_label(sample, "model_name");
    if (model_name == nullptr) continue;  // e.g. vllm:cache_config_info: not per model
    ModelSamples& model = models[{server, *model_name}];
    if (name.ends_with("_bucket")) {
      const std::string_view base = name.substr(0, name.size() - 7);
      if (!is_histogram_of_interest(kServers[server], base)) continue;
      const std::string* le_text = find_label(sample, "le");
      double le = 0;
      if (le_text == nullptr || !parse_le(*le_text, le)) continue;
      model.buckets[std::string(base)][le] += sample.value;
      continue;
    }
    Aggregate& aggregate = model.values[canonical];
    aggregate.sum += sample.value;
    aggregate.min = std::min(aggregate.min, sample.value);
    ++aggregate.samples;
  }

  std::vector<ModelServing> out;
  for (const auto& [key, model] : models) {
    const ServerNames& names = kServers[key.first];
    ModelServing serving;
    serving.prompt_tokens_total = total(model, names.prompt_tokens);
    serving.generation_tokens_total = total(model, names.generation_tokens);
    if (!serving.prompt_tokens_total && !serving.generation_tokens_total) continue;
    serving.server_kind = std::string(names.kind);
    serving.model = std::string(key.second);
    serving.cached_prompt_tokens_total = first_of(model, names.cached_tokens, total);
    if (const std::string_view prompt = names.prompt_tokens; prompt.ends_with("_total")) {
      serving.counters_created =
          minimum(model, std::string(prompt.substr(0, prompt.size() - 6)) + "_created");
    }
    serving.requests_total = total(model, names.requests);
    serving.kv_cache_usage_ratio = first_of(model, names.kv_usage, average);
    serving.requests_running = total(model, names.running);
    serving.requests_waiting = total(model, names.waiting);
    serving.ttft = quantiles(model, names.ttft);
    serving.itl =
        quantiles(model, has_histogram(model, names.itl[0]) ? names.itl[0] : names.itl[1]);
    out.push_back(std::move(serving));
  }
  return out;
}

}  // namespace telemetryd::scrape
