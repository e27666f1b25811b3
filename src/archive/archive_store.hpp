#pragma once
// Where sealed archive objects go: an S3-compatible bucket or a local directory. Both give the
// same guarantee the batcher builds on: a put either stores the whole object under its key or
// nothing (a reader never sees half an object), and a put of an existing key replaces it, so
// retrying an upload can never duplicate data.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "telemetryd/result.hpp"

namespace telemetryd::archive {

struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
};

struct ListPage {
  std::vector<ObjectInfo> objects;  // in key order
  /// Pass back to list() for the next page; empty when this was the last page.
  std::string next_token;
};

class ArchiveStore {
 public:
  virtual ~ArchiveStore() = default;
  /// Stores `bytes` under `key`, replacing any object there. Blocking.
  virtual Result<bool> put(const std::string& key, std::string_view bytes) = 0;
  /// Keys starting with `prefix`, at most `max_keys` per page, from `token` on (empty = start).
  virtual Result<ListPage> list(const std::string& prefix, const std::string& token,
                                int max_keys = 1000) = 0;
  /// The whole object; a missing key is a permanent error naming NoSuchKey.
  virtual Result<std::string> get(const std::string& key) = 0;
  /// For logs: where objects go, never credentials.
  virtual std::string describe() const = 0;
};

/// Every key under `prefix`, following continuation tokens.
Result<std::vector<ObjectInfo>> list_all(ArchiveStore& store, const std::string& prefix,
                                         int page_size = 1000);

/// A key is relative, non-empty, made of non-empty segments other than "." and "..", without
/// NUL or control characters, so it maps to a file path as safely as to an S3 key.
bool valid_key(std::string_view key);

}  // namespace telemetryd::archive
