#include "archive/sigv4.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <stdexcept>

namespace telemetryd::archive {
namespace {

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// SigV4 trims header values and folds runs of spaces into one, so that proxies that reflow
// whitespace do not break the signature.
std::string trim_fold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

bool unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~';
}

}  // namespace

std::string hex_lower(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return hex_lower(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest,
           &length) == nullptr) {
    // Only on allocation failure inside OpenSSL; there is no meaningful signature to return.
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service) {
  std::string key = "AWS4";
  key.append(secret);
  std::string k = hmac_sha256(key, date);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  return hmac_sha256(k, "aws4_request");
}

std::string uri_encode(std::string_view text, bool encode_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (unreserved(b) || (c == '/' && !encode_slash)) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kDigits[b >> 4]);
      out.push_back(kDigits[b & 0x0f]);
    }
  }
  return out;
}

std::string canonical_query(std::vector<std::pair<std::string, std::string>> query) {
  for (auto& entry : query) {
    entry.first = uri_encode(entry.first, true);
    entry.second = uri_encode(entry.second, true);
  }
  std::sort(query.begin(), query.end());
  std::string out;
  for (const auto& entry : query) {
    if (!out.empty()) out.push_back('&');
    out += entry.first;
    out.push_back('=');
    out += entry.second;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[17];
  std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &tm);
  return buffer;
}

SigV4Result sign_v4(const SigV4Credentials& credentials, const SigV4Request& request,
                    std::string_view amz_date_value) {
  // Same-named headers are joined with commas, in the order given.
  std::map<std::string, std::string> headers;
  for (const auto& entry : request.headers) {
    std::string name = to_lower(entry.first);
    std::string value = trim_fold(entry.second);
    auto it = headers.find(name);
    if (it == headers.end()) {
      headers.emplace(std::move(name), std::move(value));
    } else {
      it->second += "," + value;
    }
  }
  SigV4Result result;
  std::string canonical_headers;
  for (const auto& entry : headers) {
    canonical_headers += entry.first + ":" + entry.second + "\n";
    if (!result.signed_headers.empty()) result.signed_headers.push_back(';');
    result.signed_headers += entry.first;
  }
  const std::string path = request.path.empty() ? "/" : request.path;
  result.canonical_request = request.method + "\n" + uri_encode(path, false) + "\n" +
                             canonical_query(request.query) + "\n" + canonical_headers + "\n" +
                             result.signed_headers + "\n" + request.payload_hash;

  const std::string_view date = amz_date_value.substr(0, 8);
  const std::string scope =
      std::string(date) + "/" + credentials.region + "/" + credentials.service + "/aws4_request";
  result.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(amz_date_value) + "\n" + scope + "\n" +
                          sha256_hex(result.canonical_request);
  const std::string key =
      signing_key(credentials.secret_access_key, date, credentials.region, credentials.service);
  result.signature = hex_lower(hmac_sha256(key, result.string_to_sign));
  result.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                         ", SignedHeaders=" + result.signed_headers +
                         ", Signature=" + result.signature;
  return result;
}

}  // namespace telemetryd::archive
