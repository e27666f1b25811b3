#pragma once
// Validates a Kafka value against the event contract (docs/events.md, schemas/*.json) with
// simdjson and extracts what the processor needs. Everything the JSON Schemas reject is rejected
// here too, with a short reason (a bounded metrics label) and a detail naming the field.

#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace telemetryd::events {

enum class EventKind { kGpuMetrics, kTokenUsage, kGpuMetadata };

struct DecodedEvent {
  EventKind kind = EventKind::kGpuMetrics;
  std::string id;
  std::string source;
  std::string subject;  // empty when absent
  std::string type;
  std::chrono::system_clock::time_point time;
  std::string data_json;  // the `data` object, minified, as received
  // gpu.metrics.v1 and gpu.metadata.v1 (host also of token.usage.v1, empty when absent)
  std::string gpu_uuid;
  std::string host;
  std::string model_name;
  // token.usage.v1
  std::string model;
  std::string deployment;  // empty when absent
  std::string tenant_id;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::vector<std::string> gpu_uuids;
};

struct DecodeError {
  // One of: invalid_json, bad_envelope, unknown_type, missing_field, wrong_type, out_of_range.
  std::string reason;
  std::string detail;  // e.g. "data.gpu_uuid is required"
};

using DecodeResult = std::variant<DecodedEvent, DecodeError>;

/// Decodes one CloudEvent. Never throws; `parser` is reused across calls for speed.
DecodeResult decode_event(std::string_view bytes, simdjson::dom::parser& parser);

/// The contract's id: a lowercase RFC 9562 version-7 UUID.
bool is_uuid_v7(std::string_view id);

/// Parses RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; false when malformed.
bool parse_rfc3339(std::string_view text, std::chrono::system_clock::time_point& out);

}  // namespace telemetryd::events
