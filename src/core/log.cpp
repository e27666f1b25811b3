#include "telemetryd/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_write_mutex;

constexpr std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void set_level(Level level) {
  g_level.store(level, std::memory_order_relaxed);
}
Level level() {
  return g_level.load(std::memory_order_relaxed);
}

bool parse_level(std::string_view text, Level& out) {
  for (const Level candidate : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == level_name(candidate)) {
      out = candidate;
      return true;
    }
  }
  return false;
}

std::string format_line(Level level, std::string_view stage, std::string_view msg,
                        std::initializer_list<Field> fields) {
  JsonWriter json;
  json.begin_object()
      .key("ts")
      .value(rfc3339_utc(std::chrono::system_clock::now()))
      .key("level")
      .value(level_name(level))
      .key("stage")
      .value(stage)
      .key("msg")
      .value(msg);
  for (const Field& field : fields) {
    json.key(field.key);
    std::visit([&json](const auto& v) { json.value(v); }, field.value);
  }
  json.end_object();
  return json.take();
}

void write(Level lvl, std::string_view stage, std::string_view msg,
           std::initializer_list<Field> fields) {
  if (lvl < level()) return;
  std::string line = format_line(lvl, stage, msg, fields);
  line.push_back('\n');
  // One fwrite per line under a lock keeps lines whole when several threads log at once.
  const std::lock_guard lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace telemetryd::log
