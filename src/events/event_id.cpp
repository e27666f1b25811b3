#include "events/event_id.hpp"

#include <openssl/sha.h>

#include <algorithm>

namespace telemetryd::events {

std::string deterministic_uuid_v7(std::int64_t time_ms, std::string_view seed) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(seed.data()), seed.size(), digest);
  // Times before 1970 or past the 48-bit range (year 10889) cannot be encoded: clamp them.
  const auto ms = static_cast<std::uint64_t>(std::clamp<std::int64_t>(time_ms, 0, (1LL << 48) - 1));
  unsigned char bytes[16];
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  std::copy(digest, digest + 10, bytes + 6);
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x70);  // version 7
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 9562 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id.push_back('-');
    id.push_back(kHex[bytes[i] >> 4]);
    id.push_back(kHex[bytes[i] & 0x0f]);
  }
  return id;
}

}  // namespace telemetryd::events
