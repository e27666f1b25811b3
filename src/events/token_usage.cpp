#include "events/token_usage.hpp"

#include "telemetryd/json_writer.hpp"

namespace telemetryd::events {
namespace {
template <typename T>
void optional_field(JsonWriter& json, const char* key, const std::optional<T>& value) {
  if (value) json.key(key).value(*value);
}

void string_array(JsonWriter& json, const char* key, const std::vector<std::string>& items) {
  if (items.empty()) return;
  json.key(key).begin_array();
  for (const auto& item : items) json.value(item);
  json.end_array();
}
}  // namespace

std::string encode_token_usage_data(const TokenUsage& u) {
  JsonWriter json;
  json.begin_object().key("model").value(u.model).key("tenant_id").value(u.tenant_id);
  json.key("usage").begin_object();
  json.key("input_tokens").value(u.input_tokens).key("output_tokens").value(u.output_tokens);
  json.key("total_tokens").value(u.input_tokens + u.output_tokens);
  optional_field(json, "cache_read_tokens", u.cache_read_tokens);
  optional_field(json, "reasoning_tokens", u.reasoning_tokens);
  optional_field(json, "cache_creation_tokens", u.cache_creation_tokens);
  json.end_object();
  optional_field(json, "request_id", u.request_id);
  optional_field(json, "deployment", u.deployment);
  optional_field(json, "provider", u.provider);
  optional_field(json, "user_id", u.user_id);
  string_array(json, "tags", u.tags);
  optional_field(json, "duration_ms", u.duration_ms);
  optional_field(json, "ttft_ms", u.ttft_ms);
  optional_field(json, "status", u.status);
  string_array(json, "gpu_uuids", u.gpu_uuids);
  optional_field(json, "host", u.host);
  optional_field(json, "provider_cost_usd", u.provider_cost_usd);
  optional_field(json, "source_kind", u.source_kind);
  if (!u.serving_json.empty()) json.key("serving").raw(u.serving_json);
  json.end_object();
  return json.take();
}

}  // namespace telemetryd::events
