#pragma once
// Certificate files from scripts/gen-test-certs.sh (the same ones the test services use), for tests
// of TLS settings.

#include <string>

namespace test_support {

/// A folder of freshly generated test certificates (ca.pem, server.pem/.key, client.pem/.key,
/// client-combined.pem, wrong-ca.pem, ...), made once per test process and removed at exit.
std::string generated_certs_dir();

}  // namespace test_support
