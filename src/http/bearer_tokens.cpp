#include "http/bearer_tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "telemetryd/config.hpp"

namespace telemetryd::http {
namespace {

std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  while (!line.empty()) {
    const auto end = line.find_first_of(" \t");
    fields.push_back(line.substr(0, end));
    if (end == std::string_view::npos) break;
    line = trim(line.substr(end));
  }
  return fields;
}

// `tenants=a,b` into a sorted, distinct list; `tenants=*` is every tenant (an empty list). The
// error never quotes the field: a misplaced token could be in it.
std::optional<std::string> parse_tenants(std::string_view field, std::vector<std::string>& out) {
  constexpr std::string_view kPrefix = "tenants=";
  if (!field.starts_with(kPrefix)) {
    return "expected `name token` or `name token tenants=a,b` (the token is not shown)";
  }
  field.remove_prefix(kPrefix.size());
  std::set<std::string> tenants;
  bool all = false;
  std::size_t start = 0;
  for (;;) {
    const auto comma = field.find(',', start);
    const std::string_view tenant = field.substr(start, comma - start);
    if (tenant.empty()) return "tenants= needs a comma-separated list of tenant ids, or *";
    if (tenant == "*") {
      all = true;
    } else {
      tenants.emplace(tenant);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (all && !tenants.empty()) return "tenants=* means every tenant: name no tenant beside it";
  out.assign(tenants.begin(), tenants.end());
  return std::nullopt;
}

}  // namespace

bool TokenClient::may_read(std::string_view tenant) const {
  return all_tenants() || std::binary_search(tenants.begin(), tenants.end(), tenant);
}

BearerTokens BearerTokens::from_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  BearerTokens tokens;
  for (const auto& [name, token] : pairs) tokens.entries_.push_back({{name, {}}, sha256(token)});
  return tokens;
}

BearerTokens BearerTokens::load(const std::string& path, const std::string& key) {
  std::vector<ConfigProblem> problems;
  const auto problem = [&](int line, std::string message) {
    problems.push_back({path, line, 0, key, std::move(message), ""});
  };
  std::ifstream in(path);
  if (!in) {
    problems.push_back({"", 0, 0, key, "cannot read tokens file " + path, ""});
    throw ConfigError(std::move(problems));
  }
  BearerTokens tokens;
  std::set<std::string> names;
  std::set<std::array<unsigned char, 32>> digests;
  std::string raw;
  int line_number = 0;
  while (std::getline(in, raw)) {
    ++line_number;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const std::vector<std::string_view> fields = fields_of(line);
    if (fields.size() < 2 || fields.size() > 3) {
      problem(line_number,
              "expected `name token` or `name token tenants=a,b` (the token is not shown)");
      continue;
    }
    TokenClient client{std::string(fields[0]), {}};
    const std::string_view token = fields[1];
    if (token.size() < kMinTokenLength) {
      // No name in these messages: with the columns swapped, the "name" is the token.
      problem(line_number,
              "the token is shorter than " + std::to_string(kMinTokenLength) + " characters");
    } else if (std::optional<std::string> bad =
                   fields.size() == 3 ? parse_tenants(fields[2], client.tenants) : std::nullopt) {
      problem(line_number, std::move(*bad));
    } else if (!names.insert(client.name).second) {
      problem(line_number, "the client name appears on an earlier line too");
    } else if (!digests.insert(sha256(token)).second) {
      problem(line_number, "the token is also another client's token");
    } else {
      tokens.entries_.push_back({std::move(client), sha256(token)});
    }
  }
  if (problems.empty() && tokens.entries_.empty()) problem(0, "the tokens file holds no token");
  if (!problems.empty()) throw ConfigError(std::move(problems));
  return tokens;
}

std::optional<TokenClient> BearerTokens::authenticate(std::string_view authorization) const {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i])
      return std::nullopt;
  }
  const auto digest = sha256(trim(authorization.substr(kScheme.size())));
  const Entry* match = nullptr;
  // Every entry is compared, match or not, so timing does not tell which one matched.
  for (const Entry& entry : entries_) {
    if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0) match = &entry;
  }
  if (match == nullptr) return std::nullopt;
  return match->client;
}

Response bearer_refusal(const Request& request) {
  namespace beast_http = boost::beast::http;
  const bool missing = request[beast_http::field::authorization].empty();
  Response res =
      json_error(beast_http::status::unauthorized, missing ? "missing_token" : "invalid_token",
                 missing ? "an Authorization: Bearer <token> header is required"
                         : "the bearer token is not valid",
                 "Authorization");
  res.set(beast_http::field::www_authenticate, "Bearer realm=\"telemetryd\"");
  return res;
}

bool is_loopback_listen(std::string_view listen) {
  return listen.starts_with("127.") || listen.starts_with("[::1]") ||
         listen.starts_with("localhost:");
}

}  // namespace telemetryd::http
