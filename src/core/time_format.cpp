#include "telemetryd/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace telemetryd {

std::string rfc3339_utc(std::chrono::system_clock::time_point time) {
  const auto secs = std::chrono::system_clock::to_time_t(time);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  if (millis < 0) millis += 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

}  // namespace telemetryd
