#pragma once
// What /ready reports: each dependency a role needs declares a named check, and the role is
// ready only while every check passes.

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd {

/// One reachability check's answer (core/dependency_probe.hpp runs them).
struct ProbeResult {
  bool ok = false;
  std::string detail;  // error when not ok, short description when ok
};

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
  /// A condition read at every snapshot: while it returns a reason, the check `name` is not
  /// ready whatever set() last said (a thread stuck in a call cannot report that itself). It
  /// must be cheap and thread-safe; an empty function removes it.
  using Guard = std::function<std::optional<std::string>()>;
  void guard(std::string_view name, Guard condition);
  bool all_ready() const;
  std::vector<Check> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Check> checks_;
  std::vector<std::pair<std::string, Guard>> guards_;
};

}  // namespace telemetryd
