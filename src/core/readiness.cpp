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

bool Readiness::all_ready() const {
  const std::lock_guard lock(mutex_);
  return std::all_of(checks_.begin(), checks_.end(), [](const Check& c) { return c.ready; });
}

std::vector<Readiness::Check> Readiness::snapshot() const {
  const std::lock_guard lock(mutex_);
  return checks_;
}

}  // namespace telemetryd
