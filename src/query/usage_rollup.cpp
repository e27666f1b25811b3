#include "query/usage_rollup.hpp"

#include <limits>

namespace telemetryd::query {

std::int64_t minute_of(std::int64_t ms) {
  const std::int64_t r = ms % kRollupMinuteMs;
  return r < 0 ? ms - r - kRollupMinuteMs : ms - r;
}

UsagePlan plan_usage(std::optional<std::int64_t> from_ms, std::optional<std::int64_t> to_ms) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  UsagePlan plan;
  plan.from_ms = from_ms.value_or(kMin);
  plan.to_ms = to_ms.value_or(kMax);
  if (plan.from_ms >= plan.to_ms) {
    plan.rolled_from_ms = plan.rolled_to_ms = plan.from_ms;
    return plan;
  }
  // The first whole minute at or after `from`, and the end of the last whole minute before
  // `to`; an unbounded side takes every minute (no edge there).
  std::int64_t lo = kMin;
  if (from_ms) {
    const std::int64_t m = minute_of(*from_ms);
    lo = m == *from_ms ? m : (m > kMax - kRollupMinuteMs ? kMax : m + kRollupMinuteMs);
  }
  const std::int64_t hi = to_ms ? minute_of(*to_ms) : kMax;
  if (lo >= hi) {
    // No whole minute inside: the requests answer the whole range.
    plan.rolled_from_ms = plan.rolled_to_ms = plan.from_ms;
    plan.edges.emplace_back(plan.from_ms, plan.to_ms);
    return plan;
  }
  plan.rolled_from_ms = lo;
  plan.rolled_to_ms = hi;
  if (plan.from_ms < lo) plan.edges.emplace_back(plan.from_ms, lo);
  if (hi < plan.to_ms) plan.edges.emplace_back(hi, plan.to_ms);
  return plan;
}

}  // namespace telemetryd::query
