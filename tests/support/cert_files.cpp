#include "support/cert_files.hpp"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "support/child_process.hpp"

namespace test_support {
namespace {

struct GeneratedCerts {
  std::string dir;
  GeneratedCerts() : dir("/tmp/telemetryd-test-certs-" + std::to_string(getpid())) {
    const auto result = run_command({source_root() + "/scripts/gen-test-certs.sh", dir});
    if (result.status != 0) {
      throw std::runtime_error("scripts/gen-test-certs.sh failed: " + result.output);
    }
  }
  ~GeneratedCerts() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

std::string generated_certs_dir() {
  static const GeneratedCerts certs;
  return certs.dir;
}

}  // namespace test_support
