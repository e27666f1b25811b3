#pragma once
// The cost model (docs/cost.md): tumbling windows of W seconds on the epoch grid, priced from
// what is stored, so the cost of a window never depends on which processor consumed which
// partition or in which order. Pure: the store reads the inputs, price_window computes, the
// store writes the result back.
//
// In one window, each usage event runs on a set of GPUs (its gpu_uuids; else the GPUs whose
// metrics name its host; else its deployment's placement). A GPU's window (W seconds at its
// price, its utilisation-weighted seconds, its energy) is shared among the events that ran on
// it by token share, so the costs of a window's events add up to the cost of its GPUs, with
// nothing counted twice when models share a node.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cost/price_catalog.hpp"

namespace telemetryd::cost {

/// The cost fields a usage document already carries (for re-pricing diffs and spend deltas).
struct StoredCost {
  bool priced = false;
  std::optional<double> amortized_usd;
  std::optional<double> utilization_usd;
  std::optional<double> energy_usd;
  std::optional<double> gpu_seconds;
  std::optional<double> energy_j;
};

struct UsageRow {
  std::string id;
  std::int64_t time_ms = 0;
  std::string model;
  std::string tenant_id;
  std::string deployment;  // empty when absent
  std::string host;        // empty when absent
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::vector<std::string> gpu_uuids;
  StoredCost stored;
};

struct GpuSampleRow {
  std::string gpu_uuid;
  std::string host;
  std::string model_name;
  std::int64_t time_ms = 0;
  std::optional<double> utilization_gpu_percent;
  std::optional<std::int64_t> energy_consumed_mj;
};

/// Which GPUs serve a deployment: learned from usage events that name both (a deployment and
/// gpu_uuids or a host), or configured. target is "gpu:<uuid>" or "host:<name>".
struct PlacementRow {
  std::string deployment;
  std::string target;
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;
};

/// What the store returns for one window [start, start + W): its usage events, the GPU samples
/// in [start - W, start + W) (the earlier ones give each GPU's energy baseline), and the
/// learned placements first seen before the window ends.
struct WindowInputs {
  std::vector<UsageRow> usage;
  std::vector<GpuSampleRow> samples;
  std::vector<PlacementRow> placements;
};

enum class TokenBasis { kOutput, kInputOutput };

struct Settings {
  std::int64_t window_ms = 60000;
  TokenBasis basis = TokenBasis::kOutput;
  double energy_price_usd_per_kwh = 0.12;
  /// A learned placement serves windows up to this long after it was last seen.
  std::int64_t placement_ttl_ms = 86400000;
  /// Configured placements (deployment -> "gpu:<uuid>" / "host:<name>"); a deployment that has
  /// any ignores what was learned for it.
  std::vector<PlacementRow> configured;
};

/// The cost block written on one usage document (`cost` in MongoDB and SQLite).
struct UsageCost {
  std::string id;
  // The usage document's own fields, for a store that keeps costs beside the documents.
  std::int64_t time_ms = 0;
  std::string model;
  std::string tenant_id;
  std::string deployment;
  std::int64_t window_start_ms = 0;
  double window_s = 0;
  std::string basis;  // "output" or "input+output"
  std::int64_t tokens = 0;
  /// Tokens of every event that ran on this event's GPUs in the window (the mean over its GPUs
  /// when they differ).
  std::int64_t tokens_in_window = 0;
  std::string placement;  // gpu_uuids, host, deployment, configured, or none
  std::vector<std::string> gpus;
  std::string gpu_model;          // short names of the priced models, sorted, '+'-joined
  double price_per_hour_usd = 0;  // summed over the GPUs
  double energy_price_usd_per_kwh = 0;
  std::optional<double> gpu_seconds;  // utilisation-weighted, this event's share
  std::optional<double> energy_j;     // this event's share
  std::optional<double> amortized_usd;
  std::optional<double> utilization_usd;
  std::optional<double> energy_usd;
  // Why a basis is null: no_placement, no_gpu_metrics, unpriced_gpu, no_utilization,
  // no_energy_counter. Empty when the basis has a value.
  std::string amortized_reason;
  std::string utilization_reason;
  std::string energy_reason;
  std::optional<double> cost_per_token() const;
};

struct WindowResult {
  std::vector<UsageCost> costs;  // one per usage row, in the rows' order
  /// Model names of GPUs that ran tokens in the window but have no price.
  std::vector<std::string> unpriced_models;
  /// GPUs (uuid, model name) behind unpriced_models.
  std::vector<std::pair<std::string, std::string>> unpriced_gpus;
};

/// Prices one window. Deterministic: the result depends on the inputs as sets, not on the
/// order of the rows.
WindowResult price_window(std::int64_t window_start_ms, const WindowInputs& inputs,
                          const Settings& settings, const PriceCatalog& catalog);

/// A random positive 63-bit number: the nonce of a window mark, the token of a claim.
std::int64_t random_token();

/// The window start that holds `time_ms` (the epoch-aligned floor).
std::int64_t window_start(std::int64_t time_ms, std::int64_t window_ms);

/// The `cost` object as JSON, with every field (nulls included) and `null_reasons`.
std::string cost_block_json(const UsageCost& cost);

/// True when a stored cost differs from a new one by more than rounding (1e-9 relative).
bool cost_changed(const StoredCost& stored, const UsageCost& priced);

}  // namespace telemetryd::cost
