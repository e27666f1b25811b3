#pragma once
// A minimal protobuf wire-format reader (https://protobuf.dev/programming-guides/encoding/) for
// the OTLP decoders: it walks one message's fields in order, bounds-checks every length, and
// hands each field's raw value back, so callers pick the field numbers they know and everything
// else (unknown fields of any wire type, groups included) is skipped by simply not looking at it.
// Nothing is copied: length-delimited values are views into the input.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace telemetryd::otlp::pb {

enum class WireType : std::uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLen = 2,
  kStartGroup = 3,  // deprecated groups: skipped whole, `bytes` is their content
  kEndGroup = 4,
  kFixed32 = 5,
};

/// Deepest nesting of (deprecated) groups skipped inside one message.
inline constexpr int kMaxGroupDepth = 32;

struct Field {
  std::uint32_t number = 0;
  WireType type = WireType::kVarint;
  std::uint64_t value = 0;  // kVarint, kFixed64, kFixed32 (zero-extended)
  std::string_view bytes;   // kLen, kStartGroup

  /// The fixed64 bits as a double (`double` fields), or as a two's-complement int64 (`sfixed64`).
  double as_double() const {
    double d;
    std::memcpy(&d, &value, sizeof d);
    return d;
  }
  std::int64_t as_int64() const { return static_cast<std::int64_t>(value); }
};

/// Decodes a base-128 varint at `pos`, advancing it. False when truncated, longer than 10 bytes
/// or over 64 bits.
bool read_varint(const char*& pos, const char* end, std::uint64_t& out);

/// Appends `value` as a varint (for the response encoders and the tests).
void append_varint(std::string& out, std::uint64_t value);
/// Appends a field tag.
inline void append_tag(std::string& out, std::uint32_t number, WireType type) {
  append_varint(out, (static_cast<std::uint64_t>(number) << 3) | static_cast<std::uint8_t>(type));
}
/// Appends a length-delimited field.
void append_len_field(std::string& out, std::uint32_t number, std::string_view bytes);

class Reader {
 public:
  explicit Reader(std::string_view message)
      : pos_(message.data()), end_(message.data() + message.size()) {}

  /// Reads the next field into `field`. False at the end of the message and on malformed input;
  /// failed() tells them apart, error() then says what is wrong ("truncated length-delimited
  /// field 1").
  bool next(Field& field);
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  bool fail(std::string what, std::uint32_t number);
  bool skip_group(std::uint32_t number, Field& field);
  const char* pos_;
  const char* end_;
  std::string error_;
};

/// How many fields numbered `number` with wire type `type` `message` holds (to reserve vectors
/// before decoding). Malformed input just ends the count; decoding then reports it.
std::size_t count_fields(std::string_view message, std::uint32_t number, WireType type);

}  // namespace telemetryd::otlp::pb
