#include "support/test_certs.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace test_support {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificates: ") + what + " failed");
}

Key new_key() {
  Key key(EVP_EC_gen("P-256"));
  require(key != nullptr, "EVP_EC_gen");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  require(ext != nullptr, "X509V3_EXT_conf_nid");
  require(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

enum class Kind { kCa, kServer, kClient };

// issuer == nullptr: self-signed with `key`.
Cert make_cert(const char* common_name, EVP_PKEY* key, Kind kind, X509* issuer,
               EVP_PKEY* issuer_key, long serial) {
  Cert cert(X509_new());
  require(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("telemetryd tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  switch (kind) {
    case Kind::kCa:
      add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
      add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case Kind::kServer:
      add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid");
      add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
      add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
      add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
      add_extension(cert.get(), signer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
      break;
    case Kind::kClient:
      add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid");
      add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
      add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
      add_extension(cert.get(), signer, NID_ext_key_usage, "clientAuth");
      break;
  }
  require(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0,
          "X509_sign");
  return cert;
}

struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};

std::unique_ptr<FILE, FileClose> open_for_write(const std::string& path) {
  std::unique_ptr<FILE, FileClose> f(std::fopen(path.c_str(), "w"));
  require(f != nullptr, "fopen");
  return f;
}

void write_cert(const std::string& path, X509* cert) {
  auto f = open_for_write(path);
  require(PEM_write_X509(f.get(), cert) == 1, "PEM_write_X509");
}

void write_key(const std::string& path, EVP_PKEY* key, const char* passphrase = nullptr) {
  auto f = open_for_write(path);
  const EVP_CIPHER* cipher = passphrase != nullptr ? EVP_aes_256_cbc() : nullptr;
  require(PEM_write_PrivateKey(f.get(), key, cipher, nullptr, 0, nullptr,
                               const_cast<char*>(passphrase)) == 1,
          "PEM_write_PrivateKey");
}

}  // namespace

TestCerts::TestCerts() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "telemetryd-certs-XXXXXX").string();
  require(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  dir = pattern;
  ca_cert = dir + "/ca.pem";
  server_cert = dir + "/server.pem";
  server_key = dir + "/server.key";
  server_key_encrypted = dir + "/server-encrypted.key";
  client_cert = dir + "/client.pem";
  client_key = dir + "/client.key";
  other_ca_cert = dir + "/other-ca.pem";
  other_client_cert = dir + "/other-client.pem";
  other_client_key = dir + "/other-client.key";

  const Key ca_key = new_key();
  const Cert ca = make_cert("telemetryd test CA", ca_key.get(), Kind::kCa, nullptr, nullptr, 1);
  const Key srv_key = new_key();
  const Cert srv = make_cert("localhost", srv_key.get(), Kind::kServer, ca.get(), ca_key.get(), 2);
  const Key cli_key = new_key();
  const Cert cli =
      make_cert("test client", cli_key.get(), Kind::kClient, ca.get(), ca_key.get(), 3);
  const Key other_ca_key = new_key();
  const Cert other_ca =
      make_cert("unrelated CA", other_ca_key.get(), Kind::kCa, nullptr, nullptr, 4);
  const Key other_key = new_key();
  const Cert other = make_cert("test client", other_key.get(), Kind::kClient, other_ca.get(),
                               other_ca_key.get(), 5);

  write_cert(ca_cert, ca.get());
  write_cert(server_cert, srv.get());
  write_key(server_key, srv_key.get());
  write_key(server_key_encrypted, srv_key.get(), "secret");
  write_cert(client_cert, cli.get());
  write_key(client_key, cli_key.get());
  write_cert(other_ca_cert, other_ca.get());
  write_cert(other_client_cert, other.get());
  write_key(other_client_key, other_key.get());
}

TestCerts::~TestCerts() {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace test_support
