#include "query/usage_rollup.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include "telemetryd/json_writer.hpp"

namespace telemetryd::query {

namespace {

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

std::int64_t floor_to(std::int64_t ms, std::int64_t unit) {
  const std::int64_t r = ms % unit;
  return r < 0 ? ms - r - unit : ms - r;
}

// The first multiple of `unit` at or after `ms` (kMax past the last one).
std::int64_t ceil_to(std::int64_t ms, std::int64_t unit) {
  const std::int64_t f = floor_to(ms, unit);
  if (f == ms) return f;
  return f > kMax - unit ? kMax : f + unit;
}

// `ranges` (ascending, disjoint) less `holes` (ascending, disjoint).
std::vector<TimeRange> subtract(const std::vector<TimeRange>& ranges,
                                const std::vector<TimeRange>& holes) {
  std::vector<TimeRange> out;
  for (const auto& [from, to] : ranges) {
    std::int64_t cursor = from;
    for (const auto& [hole_from, hole_to] : holes) {
      if (hole_to <= cursor || hole_from >= to) continue;
      if (hole_from > cursor) out.emplace_back(cursor, hole_from);
      cursor = std::max(cursor, hole_to);
    }
    if (cursor < to) out.emplace_back(cursor, to);
  }
  return out;
}

// Sorted, with touching or overlapping ranges joined and empty ones dropped.
std::vector<TimeRange> joined(std::vector<TimeRange> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<TimeRange> out;
  for (const auto& r : ranges) {
    if (r.first >= r.second) continue;
    if (!out.empty() && r.first <= out.back().second) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

std::int64_t minute_of(std::int64_t ms) {
  return floor_to(ms, kRollupMinuteMs);
}

std::int64_t hour_of(std::int64_t ms) {
  return floor_to(ms, kRollupHourMs);
}

UsagePlan plan_usage(std::optional<std::int64_t> from_ms, std::optional<std::int64_t> to_ms) {
  UsagePlan plan;
  plan.from_ms = from_ms.value_or(kMin);
  plan.to_ms = to_ms.value_or(kMax);
  if (plan.from_ms >= plan.to_ms) {
    plan.rolled_from_ms = plan.rolled_to_ms = plan.from_ms;
    return plan;
  }
  // The first whole minute at or after `from`, and the end of the last whole minute before
  // `to`; an unbounded side takes every minute (no edge there).
  const std::int64_t lo = from_ms ? ceil_to(*from_ms, kRollupMinuteMs) : kMin;
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

UsageReads plan_usage_reads(std::optional<std::int64_t> from_ms, std::optional<std::int64_t> to_ms,
                            std::vector<std::int64_t> marked_minutes) {
  const UsagePlan plan = plan_usage(from_ms, to_ms);
  const std::int64_t lo = plan.rolled_from_ms, hi = plan.rolled_to_ms;
  UsageReads reads;
  std::vector<TimeRange> requests(plan.edges.begin(), plan.edges.end());
  std::vector<TimeRange> marked;  // the marked whole minutes inside
  std::sort(marked_minutes.begin(), marked_minutes.end());
  for (const std::int64_t m : marked_minutes) {
    if (m >= lo && m < hi && (marked.empty() || marked.back().first != m)) {
      marked.emplace_back(m, m + kRollupMinuteMs);
    }
  }
  requests.insert(requests.end(), marked.begin(), marked.end());
  reads.requests = joined(std::move(requests));
  if (lo >= hi) return reads;

  // Whole hours inside [lo, hi); an unbounded side takes every hour.
  const std::int64_t first_hour = lo == kMin ? kMin : ceil_to(lo, kRollupHourMs);
  const std::int64_t end_hour = hi == kMax ? kMax : hour_of(hi);
  std::vector<TimeRange> minute_spans;
  if (first_hour >= end_hour) {
    minute_spans.emplace_back(lo, hi);
  } else {
    std::set<std::int64_t> dirty;  // hours with a marked minute: their minutes answer
    for (const auto& [m, end] : marked) {
      const std::int64_t h = hour_of(m);
      if (h >= first_hour && h < end_hour) dirty.insert(h);
    }
    std::vector<TimeRange> dirty_spans;
    for (const std::int64_t h : dirty) dirty_spans.emplace_back(h, h + kRollupHourMs);
    reads.hours = joined(subtract({{first_hour, end_hour}}, dirty_spans));
    minute_spans = {{lo, first_hour}, {end_hour, hi}};
    minute_spans.insert(minute_spans.end(), dirty_spans.begin(), dirty_spans.end());
  }
  reads.minutes = joined(subtract(joined(std::move(minute_spans)), marked));
  return reads;
}

UsageRow& UsageTotals::group(std::string_view key) {
  auto it = groups_.find(key);
  if (it == groups_.end()) it = groups_.emplace(std::string(key), UsageRow{}).first;
  return it->second;
}

std::string UsageTotals::json() const {
  JsonWriter json;
  json.begin_array();
  for (const auto& [key, sums] : groups_) {
    UsageRow row = sums;
    row.key = key;
    write_usage_row(json, row);
  }
  json.end_array();
  return json.take();
}

}  // namespace telemetryd::query
