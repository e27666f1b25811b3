#include "telemetryd/readiness.hpp"

#include <algorithm>

namespace telemetryd {

void Readiness::declare(std::string_view name, std::string_view reason) {
  set(name, false, reason);
}

void Readiness::set(std::string_view name, bool ready, std::string_view reason) {
  const std::lock_guard lock(mutex_);
  const auto it =
      std::find_if(checks_.begin(), checks_.end(), [&](const Check& c) { return c.name == name; });
  if (it == checks_.end()) {
    checks_.push_back({std::string(name), ready, std::string(reason)});
  } else {
    it->ready = ready;
    it->reason = reason;
  }
}

void Readiness::guard(std::string_view name, Guard condition) {
  const std::lock_guard lock(mutex_);
  std::erase_if(guards_, [&](const auto& g) { return g.first == name; });
  if (condition) guards_.emplace_back(std::string(name), std::move(condition));
}

bool Readiness::all_ready() const {
  const auto checks = snapshot();
  return std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.ready; });
}

std::vector<Readiness::Check> Readiness::snapshot() const {
  const std::lock_guard lock(mutex_);
  std::vector<Check> checks = checks_;
  for (const auto& [name, condition] : guards_) {
    const std::optional<std::string> reason = condition();
    if (!reason) continue;
    for (Check& c : checks) {
      if (c.name != name || !c.ready) continue;
      c.ready = false;
      c.reason = *reason;
    }
  }
  return checks;
}

}  // namespace telemetryd
