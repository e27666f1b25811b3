#pragma once
// A role file written to a temporary path for one test, and the problems load_config finds in a
// role, as the strings the CLI prints (file:line:col: key: message (hint)).

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "telemetryd/config.hpp"

namespace test_support {

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/telemetryd-role-XXXXXX";
    const int fd = mkstemp(name);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { unlink(path.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

inline std::vector<std::string> problems_of(const telemetryd::LoadOptions& options) {
  std::vector<std::string> out;
  try {
    telemetryd::load_config(options, telemetryd::app::role_catalog());
  } catch (const telemetryd::ConfigError& e) {
    for (const auto& p : e.problems()) out.push_back(p.to_string());
  }
  return out;
}

}  // namespace test_support
