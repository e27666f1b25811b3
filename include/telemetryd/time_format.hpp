#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace telemetryd {

/// RFC 3339 UTC with milliseconds, e.g. 2026-11-22T12:00:05.123Z (logs and event times).
std::string rfc3339_utc(std::chrono::system_clock::time_point time);

/// Milliseconds since the Unix epoch (truncated toward zero), the stores' and windows' unit.
inline std::int64_t unix_ms(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

}  // namespace telemetryd
