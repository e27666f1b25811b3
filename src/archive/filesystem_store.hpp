#pragma once
// The archive in a local directory, for hosts without object storage (and for tests). A key
// "a/b/c.gz" is the file <root>/a/b/c.gz. Put writes a hidden temp file in the same directory,
// fsyncs it, renames it over the key and fsyncs the directory: after a crash the key holds
// either the old object or the new one, never a prefix of it, and never a stray temp name
// (temp files start with '.', which list() skips and valid keys never produce).

#include <string>

#include "archive/archive_store.hpp"

namespace telemetryd::archive {

class FilesystemStore final : public ArchiveStore {
 public:
  /// Creates `root` (and parents) when missing; throws StartupError when it cannot.
  explicit FilesystemStore(std::string root);

  Result<bool> put(const std::string& key, std::string_view bytes) override;
  Result<ListPage> list(const std::string& prefix, const std::string& token,
                        int max_keys = 1000) override;
  Result<std::string> get(const std::string& key) override;
  std::string describe() const override { return "file://" + root_; }

 private:
  std::string root_;
};

}  // namespace telemetryd::archive
