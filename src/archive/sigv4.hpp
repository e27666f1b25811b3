#pragma once
// AWS Signature Version 4 for S3 requests with the Authorization header and a signed payload
// hash. Pure functions over strings, so the published AWS examples can pin them byte for byte;
// the S3 store adds the headers and sends the request.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace telemetryd::archive {

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string region = "us-east-1";
  std::string service = "s3";
};

struct SigV4Request {
  std::string method;
  /// Unencoded absolute path, e.g. "/bucket/a b.txt"; each segment is URI-encoded, '/' kept.
  std::string path;
  /// Unencoded query parameters in any order; a parameter without value has an empty value.
  std::vector<std::pair<std::string, std::string>> query;
  /// Headers to sign (name case and order do not matter). Must include host and x-amz-date.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Hex SHA-256 of the body (or UNSIGNED-PAYLOAD); also sent as x-amz-content-sha256.
  std::string payload_hash;
};

struct SigV4Result {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;
  std::string signature;
  std::string authorization;  // the whole Authorization header value
};

/// `amz_date` is the x-amz-date value (YYYYMMDD'T'HHMMSS'Z'); its first 8 characters are the
/// credential scope's date.
SigV4Result sign_v4(const SigV4Credentials& credentials, const SigV4Request& request,
                    std::string_view amz_date);

/// x-amz-date format of a UTC time.
std::string amz_date(std::chrono::system_clock::time_point time);

std::string sha256_hex(std::string_view data);
/// Raw 32-byte HMAC-SHA256.
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string hex_lower(std::string_view bytes);
/// Raw 32-byte signing key: HMAC chain over "AWS4"+secret, date, region, service, aws4_request.
std::string signing_key(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service);
/// S3's UriEncode: every byte except A-Z a-z 0-9 - . _ ~ as %XX (upper hex); '/' kept unless
/// `encode_slash`.
std::string uri_encode(std::string_view text, bool encode_slash);
/// The canonical query string: encoded names and values, sorted by name then value.
std::string canonical_query(std::vector<std::pair<std::string, std::string>> query);

inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

}  // namespace telemetryd::archive
