#pragma once
// A blocking HTTP/1.1 client for tests, with socket timeouts so a hung server fails the test
// instead of hanging it.

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace test_support {

struct HttpResult {
  int status = 0;  // 0 when no response arrived
  std::string content_type;
  std::string body;
  std::string error;
  /// Response headers, names lowercased.
  std::map<std::string, std::string> headers;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

HttpResult http_request(const std::string& host, int port, const std::string& method,
                        const std::string& target, const std::string& body = {},
                        const std::string& content_type = {}, const Headers& headers = {});
inline HttpResult http_get(int port, const std::string& target) {
  return http_request("127.0.0.1", port, "GET", target);
}

/// Sends raw bytes and returns whatever comes back before the peer closes or `timeout_ms`.
std::string raw_exchange(int port, const std::string& bytes, int timeout_ms);

}  // namespace test_support
