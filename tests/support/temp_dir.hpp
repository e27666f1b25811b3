#pragma once
// A fresh directory under the system's temp directory for one test, removed with everything in
// it when the test ends. Unique per process and per instance, so tests of one run never share
// one.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace test_support {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix) {
    static std::atomic<int> next{0};
    path = std::filesystem::temp_directory_path() /
           ("telemetryd-" + prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(next++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace test_support
