#pragma once
// A small blocking HTTP(S) client for InfluxDB's write and query endpoints, over Boost.Beast:
// one keep-alive connection reused across requests, a timeout on every step (resolve, connect,
// TLS handshake, write, read), optional gzip request bodies, TLS verified against a CA file (or
// the system store) with the host name checked. Not thread-safe: one owner thread.
//
// v1: POST /write?db=&precision=[&u=&p=]   (username/password sent as HTTP Basic)
// v2: POST /api/v2/write?org=&bucket=&precision=  with `Authorization: Token <token>`
// Credentials live only in request headers: never in logs, error messages or metrics.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "influx/line_protocol.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::influx {

enum class Api { kV1, kV2 };

struct WriterSettings {
  std::string url = "http://127.0.0.1:8086";  // scheme://host[:port][/base path]
  Api api = Api::kV1;
  std::string database = "telemetry";  // v1
  std::string retention_policy;        // v1, empty: the database's default
  std::string username;                // v1, empty: no authentication
  std::string password;                // v1 (secret)
  std::string org;                     // v2
  std::string bucket;                  // v2
  std::string token;                   // v2 (secret)
  Precision precision = Precision::kNanoseconds;
  bool gzip = false;
  std::chrono::milliseconds timeout{5000};
  std::string ca_file;  // https only; empty: the system's CA store
};

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string base_path;  // without a trailing slash, may be empty
};
/// Parses an InfluxDB base URL; nullopt with `error` set when it is not http(s)://host[:port][/p].
std::optional<ParsedUrl> parse_url(std::string_view url, std::string& error);

/// An HTTP answer (any status). Transport failures are a retryable Error instead.
struct Reply {
  unsigned status = 0;
  std::string body;
  std::string content_type;
};

/// The server's error text from a JSON error body ({"error":...} in v1, {"message":...} in v2),
/// or the body itself, shortened, when it is not JSON.
std::string server_message(std::string_view body);

/// How a write answer is treated. Retryable: nothing is wrong with the points (no answer, 5xx,
/// 429, and 401/403/404: credentials, permissions or a missing database are fixed by an
/// operator, and dead-lettering every event meanwhile would be worse than pausing). Permanent:
/// the server refused these points (400, 413, 422 and other 4xx).
enum class WriteVerdict { kOk, kRetryable, kPartial, kPermanent };
WriteVerdict classify_write(unsigned status, std::string_view message);

/// What a "partial write" message says was dropped: fields of a measurement whose type clashes
/// with the stored type (every point of that measurement carrying the field was dropped), and
/// the text of lines that did not parse. `dropped` is InfluxDB's count, -1 when absent.
struct PartialWrite {
  std::vector<std::pair<std::string, std::string>> type_conflicts;  // measurement, field
  std::vector<std::string> unparsable_lines;
  long dropped = -1;
  bool other = false;  // a reason that names no point (e.g. beyond retention policy)
};
PartialWrite parse_partial_write(std::string_view message);

/// gzip-compresses `data` (RFC 1952), for Content-Encoding: gzip.
std::string gzip_compress(std::string_view data);

class InfluxWriter {
 public:
  /// Throws StartupError for an unusable URL or CA file.
  explicit InfluxWriter(WriterSettings settings);
  ~InfluxWriter();
  InfluxWriter(const InfluxWriter&) = delete;
  InfluxWriter& operator=(const InfluxWriter&) = delete;

  /// POSTs line protocol to the write endpoint of the configured API.
  Result<Reply> write(std::string_view lines);
  /// An InfluxQL statement through /query (v1 auth), e.g. CREATE DATABASE; `db` may be empty.
  Result<Reply> query(std::string_view statement, std::string_view db = {});
  /// GET of any path (with auth), e.g. /ping or /api/v2/buckets?name=...
  Result<Reply> get(std::string_view path_and_query);

  const WriterSettings& settings() const { return settings_; }

 private:
  class Connection;
  Result<Reply> send(std::string_view method, const std::string& target, std::string body,
                     std::string_view content_type);
  std::string auth_header() const;

  WriterSettings settings_;
  ParsedUrl url_;
  std::unique_ptr<Connection> connection_;
};

/// Percent-encodes a query parameter value.
std::string url_encode(std::string_view text);

}  // namespace telemetryd::influx
