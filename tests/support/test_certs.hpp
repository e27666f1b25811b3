#pragma once
// Test PKI made with OpenSSL's APIs into a fresh temporary directory: a CA, a server certificate
// for 127.0.0.1 and localhost, a client certificate, and an unrelated CA with a client of its
// own, so TLS tests need no committed keys and no openssl binary. Keys are P-256 (fast to make).

#include <string>

namespace test_support {

class TestCerts {
 public:
  /// Generates everything; throws std::runtime_error when OpenSSL fails.
  TestCerts();
  /// Removes the directory.
  ~TestCerts();
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  std::string dir;
  std::string ca_cert;
  std::string server_cert;  // SAN IP:127.0.0.1, DNS:localhost; signed by ca_cert
  std::string server_key;
  std::string server_key_encrypted;  // server_key under AES-256 with passphrase "secret"
  std::string client_cert;           // signed by ca_cert
  std::string client_key;
  std::string other_ca_cert;      // an unrelated CA
  std::string other_client_cert;  // signed by other_ca_cert
  std::string other_client_key;
};

}  // namespace test_support
