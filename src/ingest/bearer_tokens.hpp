#pragma once
// Bearer tokens for the ingest API, read once from a file of `name token` lines. Only SHA-256
// digests are kept, and a presented token is compared against every digest with CRYPTO_memcmp,
// so neither the comparison nor the number of tokens checked leaks how much of a token matched.

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::ingest {

class BearerTokens {
 public:
  static constexpr std::size_t kMinTokenLength = 16;

  /// Reads `path`; throws ConfigError naming `key` (and the line, never the token) when the file
  /// cannot be read, a line is malformed, a token is too short, or a name or token repeats.
  static BearerTokens load(const std::string& path, const std::string& key);
  /// For tests and embedding: (name, token) pairs, validated like the file.
  static BearerTokens from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs);

  /// The client name for an `Authorization` header value (`Bearer <token>`), or nullopt.
  std::optional<std::string> authenticate(std::string_view authorization) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    std::array<unsigned char, 32> digest;
  };
  std::vector<Entry> entries_;
};

}  // namespace telemetryd::ingest
