#pragma once
// POST /metadata accepts what operators' scripts naturally send (nvidia-smi style units, padded
// strings, local-time offsets) and turns it into the contract's gpu.metadata.v1 `data` object:
// strings trimmed, observed_at in UTC milliseconds, memory in bytes, mig_mode a boolean.
// Unknown fields are kept as they are: consumers ignore what they do not know.

#include <chrono>
#include <string>
#include <string_view>
#include <variant>

namespace telemetryd::ingest {

struct NormalizedMetadata {
  std::string data_json;
  std::string gpu_uuid;
  std::chrono::system_clock::time_point observed_at;
};

struct InputError {
  std::string code;  // invalid_json, missing_field, wrong_type, invalid_value
  std::string message;
  std::string field;
};

using NormalizeResult = std::variant<NormalizedMetadata, InputError>;

/// `body` is a JSON object of GPU metadata (not a CloudEvent).
NormalizeResult normalize_metadata(std::string_view body);

/// "80 GiB", "81920 MiB", "80GB", "1073741824" -> bytes; false when not a size.
bool parse_memory_size(std::string_view text, std::int64_t& bytes);

}  // namespace telemetryd::ingest
