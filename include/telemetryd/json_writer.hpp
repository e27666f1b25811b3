#pragma once
// A small streaming JSON writer: logs, HTTP bodies and error documents share it so that escaping
// is done in exactly one place.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd {

/// Appends `text` to `out` as a JSON string literal (with quotes), escaping per RFC 8259.
void append_json_string(std::string& out, std::string_view text);

/// Builds one JSON value. Keys and values are written in call order; commas are inserted.
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(bool flag);
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  /// Non-finite numbers have no JSON form and are written as null.
  JsonWriter& value(double number);
  JsonWriter& null();
  /// Inserts an already-serialised JSON value verbatim.
  JsonWriter& raw(std::string_view json);

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void separate();
  std::string out_;
  // One entry per open container: true once it holds a member, so the next needs a comma.
  std::vector<bool> has_member_;
  bool after_key_ = false;
};

}  // namespace telemetryd
