// Checks of keys that name files (certificates, keys, password files), run while the role file
// loads so a wrong path fails `check-config` and start-up with exit 78 and the key's line,
// instead of a TLS handshake error much later. Secrets read here are never part of a message.

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;

// Refuses every passphrase prompt: an encrypted key fails to load instead of blocking on a tty.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

X509Ptr first_certificate(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  return cert;
}

KeyPtr private_key(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  return key;
}

}  // namespace

std::optional<std::string> check_readable_file(std::string_view path) {
  if (path.empty()) return std::nullopt;
  const std::string name(path);
  std::FILE* file = std::fopen(name.c_str(), "rb");
  if (file == nullptr) return "cannot open the file (" + std::string(std::strerror(errno)) + ")";
  char byte = 0;
  const std::size_t got = std::fread(&byte, 1, 1, file);
  const int error = std::ferror(file) != 0 ? errno : 0;
  std::fclose(file);
  if (error != 0) return "cannot read the file (" + std::string(std::strerror(error)) + ")";
  if (got == 0) return "the file is empty";
  return std::nullopt;
}

std::optional<std::string> check_pem_certificate_file(std::string_view path) {
  if (auto problem = check_readable_file(path)) return problem;
  if (path.empty()) return std::nullopt;
  if (!first_certificate(std::string(path))) return "no PEM certificate in the file";
  return std::nullopt;
}

std::optional<std::string> check_pem_key_file(std::string_view path) {
  if (auto problem = check_readable_file(path)) return problem;
  if (path.empty()) return std::nullopt;
  if (!private_key(std::string(path))) {
    return "no PEM private key in the file, or it is encrypted (use an unencrypted key with "
           "permissions 0600)";
  }
  return std::nullopt;
}

std::optional<std::string> check_pem_certificate_and_key_file(std::string_view path) {
  if (auto problem = check_pem_certificate_file(path)) return problem;
  if (path.empty()) return std::nullopt;
  if (!private_key(std::string(path))) {
    return "the file has a certificate but no PEM private key, or the key is encrypted (put the "
           "certificate and its unencrypted key in one file)";
  }
  return check_key_matches_certificate(std::string(path), std::string(path));
}

std::optional<std::string> check_key_matches_certificate(const std::string& certificate_file,
                                                         const std::string& key_file) {
  const X509Ptr cert = first_certificate(certificate_file);
  const KeyPtr key = private_key(key_file);
  if (!cert || !key) return std::nullopt;  // reported by the single-file checks
  const bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) return "the private key does not belong to the certificate";
  return std::nullopt;
}

std::vector<KeySpec> secret_keys(const std::string& name, const std::string& what) {
  return {{.name = name,
           .description = what + "; prefer " + name + "_file or ${ENV}.",
           .default_value = "",
           .secret = true},
          {.name = name + "_file",
           .description = "File whose first line is the " + name + " (instead of " + name +
                          "); read at start, e.g. from $CREDENTIALS_DIRECTORY.",
           .default_value = "",
           .check = check_readable_file}};
}

std::string read_secret(const Config& config, const std::string& key) {
  const std::string file_key = key + "_file";
  const std::string& file = config.str(file_key);
  if (file.empty()) return config.str(key);
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw StartupError(file_key + ": cannot open '" + file + "' (" + std::strerror(errno) + ")");
  }
  std::string secret;
  std::getline(in, secret);
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) throw StartupError(file_key + ": the first line of '" + file + "' is empty");
  return secret;
}

}  // namespace telemetryd
