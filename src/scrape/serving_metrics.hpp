#pragma once
// What a model server says about each model it serves, read from its /metrics exposition.
//
// Metric names, types, labels and buckets as defined by:
//  - vLLM vllm/v1/metrics/loggers.py at commit 005a810bc40faa25b8870fbc8559c3462581eee3 (V1
//    engine, 0.10 series): labels model_name and engine; counters exposed with `_total`.
//  - SGLang python/sglang/srt/metrics/collector.py at commit
//    00ae9c1590d2d0bb6c0bfff39e312c34ae3dd538: tokenizer metrics labelled model_name, scheduler
//    metrics model_name, engine_type, tp_rank, pp_rank, moe_ep_rank (and dp_rank).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scrape/exposition.hpp"

namespace telemetryd::scrape {

/// From cumulative histogram buckets, linear interpolation inside the bucket like Prometheus'
/// histogram_quantile; seconds. Quantiles are absent when nothing was observed or the histogram
/// has no +Inf bucket.
struct LatencyQuantiles {
  std::optional<double> p50, p90, p99;
  std::uint64_t count = 0;
  double sum = 0;
};

struct ModelServing {
  std::string server_kind;  // "vllm" or "sglang"
  std::string model;        // label model_name (vLLM and SGLang both use it)
  // Counters, summed over every other label (vLLM's `engine`, SGLang's tp_rank/dp_rank...):
  // totals since the server started.
  std::optional<double> prompt_tokens_total, generation_tokens_total;
  /// When the prompt counter's oldest series was created (prometheus_client's `_created`
  /// samples, Unix seconds; the oldest, so an engine's series appearing later changes nothing):
  /// a change means the server restarted even when its counters have already grown past their
  /// old values. Absent from SGLang's multiprocess mode.
  std::optional<double> counters_created;
  // vllm:prefix_cache_hits_total (tokens; before vLLM 0.9 vllm:gpu_prefix_cache_hits_total) or
  // sglang:cached_tokens_total, when present.
  std::optional<double> cached_prompt_tokens_total;
  // vllm:request_success_total summed over finished_reason / sglang:num_requests_total.
  std::optional<double> requests_total;
  // Gauges (summed for counts, averaged for ratios across engines/ranks):
  // vllm:kv_cache_usage_perc (0-1), fallback vllm:gpu_cache_usage_perc; sglang:token_usage.
  std::optional<double> kv_cache_usage_ratio;
  // vllm:num_requests_running/_waiting; sglang:num_running_reqs/num_queue_reqs.
  std::optional<double> requests_running, requests_waiting;
  // vllm:time_to_first_token_seconds; vllm:inter_token_latency_seconds (fallback
  // vllm:time_per_output_token_seconds); sglang:time_to_first_token_seconds,
  // sglang:inter_token_latency_seconds (fallback sglang:time_per_output_token_seconds).
  LatencyQuantiles ttft, itl;
};

/// Every model the exposition has token counters for, sorted by (server_kind, model). Unknown
/// metrics ignored.
std::vector<ModelServing> serving_by_model(const Exposition& exposition);

/// One cumulative bucket: observations <= upper_bound.
struct Bucket {
  double upper_bound = 0;
  double cumulative_count = 0;
};

/// Prometheus' histogram_quantile over cumulative buckets (any order; equal bounds merged):
/// NaN-free answer or nullopt when it has none (no +Inf bucket, fewer than two buckets, or no
/// observations). q in [0, 1].
std::optional<double> bucket_quantile(double q, std::vector<Bucket> buckets);

}  // namespace telemetryd::scrape
