#include "ingest/bearer_tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <set>
#include <sstream>

#include "telemetryd/config.hpp"

namespace telemetryd::ingest {
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

}  // namespace

BearerTokens BearerTokens::from_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  BearerTokens tokens;
  for (const auto& [name, token] : pairs) tokens.entries_.push_back({name, sha256(token)});
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
  std::vector<std::pair<std::string, std::string>> pairs;
  std::set<std::string> names;
  std::set<std::array<unsigned char, 32>> digests;
  std::string raw;
  int line_number = 0;
  while (std::getline(in, raw)) {
    ++line_number;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto space = line.find_first_of(" \t");
    if (space == std::string_view::npos) {
      problem(line_number, "expected `name token` (the token is not shown)");
      continue;
    }
    const std::string name(line.substr(0, space));
    const std::string token(trim(line.substr(space + 1)));
    if (token.find_first_of(" \t") != std::string::npos) {
      problem(line_number, "a token must not contain spaces");
    } else if (token.size() < kMinTokenLength) {
      // No name in these messages: with the columns swapped, the "name" is the token.
      problem(line_number,
              "the token is shorter than " + std::to_string(kMinTokenLength) + " characters");
    } else if (!names.insert(name).second) {
      problem(line_number, "the client name appears on an earlier line too");
    } else if (!digests.insert(sha256(token)).second) {
      problem(line_number, "the token is also another client's token");
    } else {
      pairs.emplace_back(name, token);
    }
  }
  if (problems.empty() && pairs.empty()) problem(0, "the tokens file holds no token");
  if (!problems.empty()) throw ConfigError(std::move(problems));
  return from_pairs(pairs);
}

std::optional<std::string> BearerTokens::authenticate(std::string_view authorization) const {
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
  return match->name;
}

}  // namespace telemetryd::ingest
