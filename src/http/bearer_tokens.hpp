#pragma once
// Bearer tokens for the ingest, OTLP and query APIs, read once from a file of
// `name token [tenants=a,b]` lines. Only SHA-256 digests are kept, and a presented token is
// compared against every digest with CRYPTO_memcmp, so neither the comparison nor the number of
// tokens checked leaks how much of a token matched. Here in http/ rather than ingest/ so that
// processor/ (the query API) can use it without including ingest/, which includes processor/.

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/router.hpp"

namespace telemetryd::http {

/// Who a token belongs to and which tenants' data it may read (the query API; ingest and OTLP
/// use the name only).
struct TokenClient {
  std::string name;
  /// Empty: every tenant (`name token` or `tenants=*`); else only these, sorted and distinct.
  std::vector<std::string> tenants;

  bool all_tenants() const { return tenants.empty(); }
  bool may_read(std::string_view tenant) const;
};

class BearerTokens {
 public:
  static constexpr std::size_t kMinTokenLength = 16;

  /// Reads `path`; throws ConfigError naming `key` (and the line, never the token) when the file
  /// cannot be read, a line is malformed, a token is too short, a name or token repeats, or a
  /// tenants= list is empty or mixes `*` with names.
  static BearerTokens load(const std::string& path, const std::string& key);
  /// For tests and embedding: (name, token) pairs for every tenant.
  static BearerTokens from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs);

  /// The client for an `Authorization` header value (`Bearer <token>`), or nullopt.
  std::optional<TokenClient> authenticate(std::string_view authorization) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    TokenClient client;
    std::array<unsigned char, 32> digest;
  };
  std::vector<Entry> entries_;
};

/// The 401 for a request whose Authorization header is missing (`missing_token`) or holds no
/// valid token (`invalid_token`), with `WWW-Authenticate: Bearer`.
Response bearer_refusal(const Request& request);

/// True when a `host:port` listens on loopback only, the one place where an API without tokens
/// (auth: none) is reachable by this machine's users alone.
bool is_loopback_listen(std::string_view listen);

}  // namespace telemetryd::http
