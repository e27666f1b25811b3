#pragma once
#include <chrono>
#include <string>

namespace telemetryd {

/// RFC 3339 UTC with milliseconds, e.g. 2026-11-22T12:00:05.123Z (logs and event times).
std::string rfc3339_utc(std::chrono::system_clock::time_point time);

}  // namespace telemetryd
