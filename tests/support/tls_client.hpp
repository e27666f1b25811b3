#pragma once
// A blocking HTTPS client for tests, with socket timeouts, that reports how far it got: the
// handshake, then the response. A refused client certificate under TLS 1.3 shows up after the
// client's handshake has completed, so "refused" means no HTTP response either way.

#include <string>
#include <utility>
#include <vector>

namespace test_support {

struct TlsClientOptions {
  std::string ca_file;  // verifies the server (and its 127.0.0.1 SAN); empty: no verification
  std::string cert_file;
  std::string key_file;
  int min_version = 0;  // e.g. TLS1_1_VERSION; 0: OpenSSL's default
  int max_version = 0;
  std::string ciphers;  // TLS 1.2 cipher list; empty: OpenSSL's default
  int timeout_ms = 5000;
};

struct TlsResult {
  bool handshake_ok = false;
  int status = 0;  // 0 when no response arrived
  std::string body;
  std::string error;
};

TlsResult https_get(int port, const std::string& target, const TlsClientOptions& options = {});
TlsResult https_request(int port, const std::string& method, const std::string& target,
                        const std::string& body, const std::string& content_type,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        const TlsClientOptions& options);

}  // namespace test_support
