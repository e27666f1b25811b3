#pragma once
// Usage rollups: what /v1/usage reads so that a range costs O(hours + minutes at its ends), not
// O(requests). A store keeps one row per (minute, model, tenant, deployment) with the sums the
// answer needs, one per (hour, ...) summed from those, and a mark per minute that has changed
// since it was last rolled up (a request stored, a cost written). Rolling a minute up
// recomputes its rows from the stored requests, then its hour's rows from its minutes, so a
// redelivered request (stored once) can never count twice. An answer reads whole hours with no
// marked minute from the hour rows, the other whole minutes from the minute rows, and the
// requests themselves for the rest: the partial minutes at its ends and the marked minutes
// (docs/architecture.md, "Usage rollups").

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "query/answer_rows.hpp"

namespace telemetryd::query {

inline constexpr std::int64_t kRollupMinuteMs = 60000;
inline constexpr std::int64_t kRollupHourMs = 3600000;

/// The start of the minute (hour) holding `ms` (floor, also before the epoch).
std::int64_t minute_of(std::int64_t ms);
std::int64_t hour_of(std::int64_t ms);

/// The sums of one (minute or hour, model, tenant, deployment): what /v1/usage answers.
struct UsageRollupRow {
  std::int64_t start_ms = 0;  // the minute's (or hour's) start
  std::string model;
  std::string tenant_id;
  std::string deployment;  // "" when the requests name none
  std::int64_t requests = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double cost_usd = 0;  // sum of cost.amortized_usd
  double cost_utilization_usd = 0;
  double cost_energy_usd = 0;
  double gpu_seconds = 0;
  double energy_j = 0;
  std::int64_t priced_requests = 0;  // requests whose amortized cost is a number

  bool operator==(const UsageRollupRow&) const = default;
};

/// Adds the nine sums of `part` (a UsageRow or a UsageRollupRow) to `total`'s, keys untouched.
template <typename Total, typename Part>
void add_sums(Total& total, const Part& part) {
  total.requests += part.requests;
  total.input_tokens += part.input_tokens;
  total.output_tokens += part.output_tokens;
  total.cost_usd += part.cost_usd;
  total.cost_utilization_usd += part.cost_utilization_usd;
  total.cost_energy_usd += part.cost_energy_usd;
  total.gpu_seconds += part.gpu_seconds;
  total.energy_j += part.energy_j;
  total.priced_requests += part.priced_requests;
}

/// How one /v1/usage range [from, to) splits: whole minutes [rolled_from, rolled_to) that
/// rollups may answer, and at most two partial edges read from the requests. An unbounded side
/// is the extreme int64.
struct UsagePlan {
  std::int64_t from_ms = 0;
  std::int64_t to_ms = 0;
  std::int64_t rolled_from_ms = 0;
  std::int64_t rolled_to_ms = 0;  // == rolled_from_ms when no whole minute lies inside
  std::vector<std::pair<std::int64_t, std::int64_t>> edges;  // [from, to) ranges, non-empty
};

UsagePlan plan_usage(std::optional<std::int64_t> from_ms, std::optional<std::int64_t> to_ms);

using TimeRange = std::pair<std::int64_t, std::int64_t>;  // [first, second)

/// Where each part of a range is read from: disjoint, ascending, adjacent ranges joined.
struct UsageReads {
  std::vector<TimeRange> hours;     // hour rows: whole hours without a marked minute
  std::vector<TimeRange> minutes;   // minute rows: the other whole minutes not marked
  std::vector<TimeRange> requests;  // the requests: partial minutes at the ends, marked minutes
};

/// `marked_minutes`: the marked minutes (any order; those outside the range are ignored).
UsageReads plan_usage_reads(std::optional<std::int64_t> from_ms, std::optional<std::int64_t> to_ms,
                            std::vector<std::int64_t> marked_minutes);

/// Adds the parts' sums per group and writes /v1/usage's array, by group key.
class UsageTotals {
 public:
  void add(std::string_view key, const UsageRow& sums) { add_sums(group(key), sums); }
  void add_row(std::string_view key, const UsageRollupRow& row) { add_sums(group(key), row); }
  std::string json() const;

 private:
  UsageRow& group(std::string_view key);
  std::map<std::string, UsageRow, std::less<>> groups_;
};

}  // namespace telemetryd::query
