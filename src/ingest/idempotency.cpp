#include "ingest/idempotency.hpp"

#include <openssl/sha.h>

namespace telemetryd::ingest {

std::string event_id_for_key(std::string_view client, std::string_view key) {
  std::string material(client);
  material.push_back('\0');
  material.append(key);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x70);  // version 7
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);  // RFC 9562 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id.push_back('-');
    id.push_back(kHex[digest[i] >> 4]);
    id.push_back(kHex[digest[i] & 0x0f]);
  }
  return id;
}

std::optional<std::string> check_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return "Idempotency-Key must be 1 to 255 characters";
  for (const char c : key) {
    if (c < 0x21 || c > 0x7e) return "Idempotency-Key must be visible ASCII characters";
  }
  return std::nullopt;
}

}  // namespace telemetryd::ingest
