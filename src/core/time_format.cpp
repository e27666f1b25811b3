#include "telemetryd/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace telemetryd {

std::string rfc3339_utc(std::chrono::system_clock::time_point time) {
  // floor, not to_time_t: before 1970 truncating toward zero would name the next second
  // (-0.5 s is 1969-12-31T23:59:59.500Z, not 1970-01-01T00:00:00.500Z).
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(time.time_since_epoch());
  const auto whole = std::chrono::floor<std::chrono::seconds>(ms);
  const auto secs = static_cast<std::time_t>(whole.count());
  const auto millis = (ms - whole).count();
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

}  // namespace telemetryd
