#pragma once
// One completed LLM request as the token.usage.v1 `data` object.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace telemetryd::events {

struct TokenUsage {
  std::string model;
  std::string tenant_id;
  std::int64_t input_tokens = 0;   // includes cached tokens
  std::int64_t output_tokens = 0;  // includes reasoning tokens
  std::optional<std::int64_t> cache_read_tokens;
  std::optional<std::int64_t> reasoning_tokens;
  std::optional<std::int64_t> cache_creation_tokens;  // part of input_tokens, like cache reads
  std::optional<std::string> request_id;
  std::optional<std::string> deployment;
  std::optional<std::string> provider;
  std::optional<std::string> user_id;
  std::vector<std::string> tags;
  std::optional<double> duration_ms;
  std::optional<double> ttft_ms;
  std::optional<std::string> status;
  std::vector<std::string> gpu_uuids;
  std::optional<std::string> host;
  /// What the emitter says the request cost (LiteLLM, gateways), kept beside our own cost.
  std::optional<double> provider_cost_usd;
  std::optional<std::string> source_kind;  // synthetic, ingest, otlp or scrape
  /// The `serving` object of scrape-sourced events, already encoded (JSON object), or empty.
  std::string serving_json;
};

std::string encode_token_usage_data(const TokenUsage& usage);

}  // namespace telemetryd::events
