#pragma once
// JSON-lines logging to stdout: one object per line with ts, level, stage, msg and any extra
// fields, so journald, Promtail and Loki can parse it without a regex.

#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace telemetryd::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

/// A field value: strings, integers, floats and booleans keep their JSON type.
using FieldValue = std::variant<std::string_view, std::int64_t, double, bool>;
struct Field {
  std::string_view key;
  FieldValue value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  template <typename Int>
  requires std::is_integral_v<Int> Field(std::string_view k, Int v)
      : key(k), value(static_cast<std::int64_t>(v)) {}
};

/// Lines below this level are dropped. Thread-safe.
void set_level(Level level);
Level level();
/// Parses "debug", "info", "warn" or "error".
bool parse_level(std::string_view text, Level& out);

void write(Level level, std::string_view stage, std::string_view msg,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view stage, std::string_view msg,
                  std::initializer_list<Field> fields = {}) {
  write(Level::kDebug, stage, msg, fields);
}
inline void info(std::string_view stage, std::string_view msg,
                 std::initializer_list<Field> fields = {}) {
  write(Level::kInfo, stage, msg, fields);
}
inline void warn(std::string_view stage, std::string_view msg,
                 std::initializer_list<Field> fields = {}) {
  write(Level::kWarn, stage, msg, fields);
}
inline void error(std::string_view stage, std::string_view msg,
                  std::initializer_list<Field> fields = {}) {
  write(Level::kError, stage, msg, fields);
}

/// Formats one line without writing it (the unit tests check the shape).
std::string format_line(Level level, std::string_view stage, std::string_view msg,
                        std::initializer_list<Field> fields);

}  // namespace telemetryd::log
