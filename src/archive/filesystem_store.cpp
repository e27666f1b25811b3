#include "archive/filesystem_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "telemetryd/errors.hpp"

namespace telemetryd::archive {
namespace fs = std::filesystem;
namespace {

// Permission and read-only errors need an operator; a full or failing disk may recover while
// the batch waits in memory.
Error errno_error(int err, const std::string& what) {
  std::string message = what + ": " + std::strerror(err);
  if (err == EACCES || err == EPERM || err == EROFS || err == ENOTDIR || err == EISDIR ||
      err == ENAMETOOLONG) {
    return Error::permanent(std::move(message));
  }
  return Error::retryable(std::move(message));
}

Error fs_error(const std::error_code& ec, const std::string& what) {
  if (ec.category() == std::generic_category() || ec.category() == std::system_category()) {
    return errno_error(ec.value(), what);
  }
  return Error::retryable(what + ": " + ec.message());
}

Result<bool> fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno_error(errno, "open " + path);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errno_error(err, "fsync " + path);
  return true;
}

std::atomic<std::uint64_t> temp_counter{0};

}  // namespace

FilesystemStore::FilesystemStore(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec || !fs::is_directory(root_, ec)) {
    throw StartupError("archive.filesystem.path: cannot create directory " + root_ + ": " +
                       ec.message());
  }
}

Result<bool> FilesystemStore::put(const std::string& key, std::string_view bytes) {
  if (!valid_key(key)) return Error::permanent("invalid archive key '" + key + "'");
  const fs::path target = fs::path(root_) / key;
  const fs::path dir = target.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fs_error(ec, "create directory " + dir.string());

  const std::string temp =
      (dir / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
              std::to_string(temp_counter.fetch_add(1))))
          .string();
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error(errno, "create " + temp);
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return errno_error(err, "write " + temp);
    }
    written += static_cast<std::size_t>(n);
  }
  // The data must be on disk before the rename makes it visible under the key.
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return errno_error(err, "fsync " + temp);
  }
  ::close(fd);
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return errno_error(err, "rename to " + target.string());
  }
  // And the rename itself must survive a crash before the caller commits offsets.
  return fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);
}

Result<ListPage> FilesystemStore::list(const std::string& prefix, const std::string& token,
                                       int max_keys) {
  // Walk only the directory the prefix names; the rest of the prefix filters file names.
  const auto slash = prefix.rfind('/');
  const std::string dir_part = slash == std::string::npos ? "" : prefix.substr(0, slash);
  const fs::path start = dir_part.empty() ? fs::path(root_) : fs::path(root_) / dir_part;
  std::vector<ObjectInfo> found;
  std::error_code ec;
  if (!fs::exists(start, ec)) return ListPage{};
  fs::recursive_directory_iterator it(start, ec);
  if (ec) return fs_error(ec, "list " + start.string());
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return fs_error(ec, "list " + start.string());
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    std::string key = it->path().lexically_relative(root_).generic_string();
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    if (!token.empty() && key <= token) continue;
    const auto size = it->file_size(ec);
    found.push_back({std::move(key), ec ? 0 : static_cast<std::uint64_t>(size)});
  }
  if (ec) return fs_error(ec, "list " + start.string());
  std::sort(found.begin(), found.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  ListPage page;
  const auto limit = static_cast<std::size_t>(std::max(1, max_keys));
  if (found.size() > limit) {
    found.resize(limit);
    page.next_token = found.back().key;
  }
  page.objects = std::move(found);
  return page;
}

Result<std::string> FilesystemStore::get(const std::string& key) {
  if (!valid_key(key)) return Error::permanent("invalid archive key '" + key + "'");
  const std::string path = (fs::path(root_) / key).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Error::permanent("NoSuchKey: " + key);
    return errno_error(errno, "open " + path);
  }
  std::string out;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return errno_error(err, "read " + path);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace telemetryd::archive
