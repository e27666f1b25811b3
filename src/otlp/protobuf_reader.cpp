#include "otlp/protobuf_reader.hpp"

namespace telemetryd::otlp::pb {

bool read_varint(const char*& pos, const char* end, std::uint64_t& out) {
  std::uint64_t result = 0;
  const char* p = pos;
  for (int shift = 0; shift < 70; shift += 7) {
    if (p == end) return false;
    const auto byte = static_cast<std::uint8_t>(*p++);
    // The tenth byte holds bit 63 only: more is over 64 bits (Go's protowire rejects it too).
    if (shift == 63 && byte > 1) return false;
    result |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      pos = p;
      out = result;
      return true;
    }
  }
  return false;  // an eleventh byte would follow
}

void append_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void append_len_field(std::string& out, std::uint32_t number, std::string_view bytes) {
  append_tag(out, number, WireType::kLen);
  append_varint(out, bytes.size());
  out.append(bytes);
}

bool Reader::fail(std::string what, std::uint32_t number) {
  error_ = std::move(what);
  if (number != 0) error_ += " " + std::to_string(number);
  pos_ = end_;
  return false;
}

bool Reader::next(Field& field) {
  if (pos_ == end_ || failed()) return false;
  std::uint64_t tag = 0;
  if (!read_varint(pos_, end_, tag)) return fail("malformed field tag", 0);
  // Field numbers are 1 .. 2^29-1; the tag is (number << 3) | wire type.
  if (tag > 0xffffffffu || (tag >> 3) == 0) return fail("invalid field number in tag", 0);
  field.number = static_cast<std::uint32_t>(tag >> 3);
  const auto wire = static_cast<std::uint8_t>(tag & 7);
  field.type = static_cast<WireType>(wire);
  field.value = 0;
  field.bytes = {};
  switch (wire) {
    case 0:
      if (!read_varint(pos_, end_, field.value))
        return fail("malformed varint field", field.number);
      return true;
    case 1:
      if (end_ - pos_ < 8) return fail("truncated fixed64 field", field.number);
      std::memcpy(&field.value, pos_, 8);  // little-endian on the wire and on our targets
      pos_ += 8;
      return true;
    case 5: {
      if (end_ - pos_ < 4) return fail("truncated fixed32 field", field.number);
      std::uint32_t v;
      std::memcpy(&v, pos_, 4);
      field.value = v;
      pos_ += 4;
      return true;
    }
    case 2: {
      std::uint64_t length = 0;
      if (!read_varint(pos_, end_, length) || length > static_cast<std::uint64_t>(end_ - pos_))
        return fail("truncated length-delimited field", field.number);
      field.bytes = std::string_view(pos_, static_cast<std::size_t>(length));
      pos_ += length;
      return true;
    }
    case 3:
      return skip_group(field.number, field);
    case 4:
      return fail("end-group without a start-group in field", field.number);
    default:
      return fail("invalid wire type " + std::to_string(wire) + " in field", field.number);
  }
}

// A deprecated group runs to the end-group tag with its own number; groups nest, so the open
// ones' numbers are kept (up to kMaxGroupDepth) to match each end-group to its start.
bool Reader::skip_group(std::uint32_t number, Field& field) {
  std::uint32_t open[kMaxGroupDepth];
  int depth = 0;
  open[depth++] = number;
  const char* const start = pos_;
  while (true) {
    const char* const tag_start = pos_;
    std::uint64_t tag = 0;
    if (!read_varint(pos_, end_, tag)) return fail("truncated group", number);
    if (tag > 0xffffffffu || (tag >> 3) == 0) return fail("invalid field number in group", number);
    const auto inner = static_cast<std::uint32_t>(tag >> 3);
    std::uint64_t ignored = 0;
    switch (tag & 7) {
      case 0:
        if (!read_varint(pos_, end_, ignored)) return fail("truncated group", number);
        break;
      case 1:
        if (end_ - pos_ < 8) return fail("truncated group", number);
        pos_ += 8;
        break;
      case 5:
        if (end_ - pos_ < 4) return fail("truncated group", number);
        pos_ += 4;
        break;
      case 2:
        if (!read_varint(pos_, end_, ignored) || ignored > static_cast<std::uint64_t>(end_ - pos_))
          return fail("truncated group", number);
        pos_ += ignored;
        break;
      case 3:
        if (depth == kMaxGroupDepth) return fail("groups nested too deeply in field", number);
        open[depth++] = inner;
        break;
      case 4:
        if (open[depth - 1] != inner) return fail("mismatched end-group in field", number);
        if (--depth == 0) {
          field.bytes = std::string_view(start, static_cast<std::size_t>(tag_start - start));
          return true;
        }
        break;
      default:
        return fail("invalid wire type in group", number);
    }
  }
}

std::size_t count_fields(std::string_view message, std::uint32_t number, WireType type) {
  Reader reader(message);
  Field field;
  std::size_t n = 0;
  while (reader.next(field))
    if (field.number == number && field.type == type) ++n;
  return n;
}

}  // namespace telemetryd::otlp::pb
