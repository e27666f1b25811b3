#pragma once
// The archive in an S3-compatible bucket (AWS S3, versitygw, MinIO, Ceph RGW), over HTTP/1.1
// with Beast, path-style URLs (http(s)://host:port/bucket/key, which every S3 implementation
// accepts, unlike virtual-host names) and SigV4 with a signed payload hash.
//
// Calls block the calling thread (the worker's consumer thread), bounded by the connect and
// request timeouts; each call runs a private io_context, so the store never touches the
// daemon's. Not thread-safe: one caller at a time.

#include <chrono>
#include <memory>
#include <string>

#include "archive/archive_store.hpp"
#include "archive/sigv4.hpp"

namespace telemetryd::archive {

struct S3Endpoint {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
};

/// Parses http(s)://host[:port][/]; false with the reason in `error` when malformed.
bool parse_endpoint(std::string_view text, S3Endpoint& out, std::string& error);

struct S3Settings {
  S3Endpoint endpoint;
  std::string bucket;
  SigV4Credentials credentials;  // service "s3"
  std::string ca_file;           // empty: the system's trust store
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  std::uint64_t max_object_bytes = 1ULL << 30;  // get() refuses larger bodies
};

/// Turns a non-2xx S3 answer into an Error naming the S3 code: 5xx, 429, SlowDown,
/// RequestTimeout, InternalError and friends are retryable; 4xx like AccessDenied,
/// SignatureDoesNotMatch, NoSuchBucket or InvalidArgument are permanent.
Error classify_s3_error(int status, std::string_view body, std::string_view what);

/// Parses a ListObjectsV2 answer. Permanent error when it is not one.
Result<ListPage> parse_list_objects_v2(std::string_view xml);

class S3Store final : public ArchiveStore {
 public:
  explicit S3Store(S3Settings settings);
  ~S3Store() override;

  Result<bool> put(const std::string& key, std::string_view bytes) override;
  Result<ListPage> list(const std::string& prefix, const std::string& token,
                        int max_keys = 1000) override;
  Result<std::string> get(const std::string& key) override;
  std::string describe() const override;

  struct Response {
    int status = 0;
    std::string body;
  };
  struct Impl;

 private:
  Result<Response> exchange(const std::string& method, const std::string& path,
                            std::vector<std::pair<std::string, std::string>> query,
                            std::string_view body, const std::string& what);

  S3Settings settings_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace telemetryd::archive
