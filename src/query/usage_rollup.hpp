#pragma once
// Per-minute usage rollups: what /v1/usage reads so that a range costs O(minutes in range), not
// O(requests). A store keeps one row per (minute, model, tenant, deployment) with the sums the
// answer needs, and a mark per minute that has changed since it was last rolled up (a request
// stored, a cost written). Rolling a minute up recomputes its rows from the stored requests, so
// a redelivered request (stored once) can never count twice. An answer reads the rows of the
// unmarked whole minutes in its range and the requests themselves for the rest: the partial
// minutes at its edges and the marked minutes (docs/architecture.md, "Usage rollups").

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace telemetryd::query {

inline constexpr std::int64_t kRollupMinuteMs = 60000;

/// The start of the minute holding `ms` (floor, also before the epoch).
std::int64_t minute_of(std::int64_t ms);

/// The rows of one (minute, model, tenant, deployment): the sums /v1/usage answers.
struct UsageMinute {
  std::int64_t minute_ms = 0;
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

  bool operator==(const UsageMinute&) const = default;
};

/// How one /v1/usage range [from, to) splits: whole minutes [rolled_from, rolled_to) answered
/// from the rollups (less the marked ones), and at most two partial edges read from the
/// requests. An unbounded side is the extreme int64.
struct UsagePlan {
  std::int64_t from_ms = 0;
  std::int64_t to_ms = 0;
  std::int64_t rolled_from_ms = 0;
  std::int64_t rolled_to_ms = 0;  // == rolled_from_ms when no whole minute lies inside
  std::vector<std::pair<std::int64_t, std::int64_t>> edges;  // [from, to) ranges, non-empty
};

UsagePlan plan_usage(std::optional<std::int64_t> from_ms, std::optional<std::int64_t> to_ms);

}  // namespace telemetryd::query
