#pragma once
// What /ready reports: each dependency a role needs declares a named check, and the role is
// ready only while every check passes.

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd {

class Readiness {
 public:
  struct Check {
    std::string name;
    bool ready = false;
    std::string reason;  // why not ready, or a short description when ready
  };

  /// A new check starts not ready with `reason`.
  void declare(std::string_view name, std::string_view reason);
  void set(std::string_view name, bool ready, std::string_view reason);
  bool all_ready() const;
  std::vector<Check> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Check> checks_;
};

}  // namespace telemetryd
