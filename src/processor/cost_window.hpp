#pragma once
// Cost per token over a rolling window, per model (or deployment):
//   cost_per_token = (sum of price_per_hour of the GPUs serving it) x W/3600 / tokens_in_W
// The GPUs serving a key are those named in its usage events inside the window; a GPU's price
// comes from the catalog through the GPU model its metrics reported. No tokens in the window, or
// no priced GPU: the cost is null, never infinity.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace telemetryd::processor {

/// Prices per GPU profile, and which profile each GPU UUID is (learned from gpu.metrics.v1).
class GpuCatalog {
 public:
  struct Entry {
    std::string name;        // profile name, e.g. "H100 80GB"
    std::string model_name;  // as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    double price_per_hour_usd = 0;
  };
  void add(Entry entry);
  /// Overrides a price by profile name; false when no such profile.
  bool set_price(const std::string& name, double price_per_hour_usd);
  /// Records the model a GPU reported (from its metrics events), and the host it is on.
  void observe_gpu(const std::string& gpu_uuid, const std::string& model_name,
                   const std::string& host = {});
  /// The GPUs whose metrics named `host`, sorted: usage that names only its host (a model
  /// server's OTLP spans or scrape target) is attributed to them. Empty when none was seen.
  const std::vector<std::string>& gpus_on_host(const std::string& host) const;
  /// The profile of a GPU, when its metrics were seen and its model is in the catalog.
  const Entry* entry_for_gpu(const std::string& gpu_uuid) const;
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::string> gpu_models_;  // uuid -> model_name
  std::unordered_map<std::string, std::string> gpu_hosts_;   // uuid -> host
  std::unordered_map<std::string, std::vector<std::string>> host_gpus_;
};

enum class CostBasis { kOutput, kInputOutput };

struct CostSettings {
  std::chrono::milliseconds window{60000};
  CostBasis basis = CostBasis::kOutput;
};

struct Cost {
  std::optional<double> cost_per_token;  // null: no tokens or no priced GPU in the window
  std::optional<double> amount_usd;      // cost_per_token x this event's tokens
  double price_per_hour_usd = 0;         // sum over the GPUs serving the key
  double window_s = 0;
  std::int64_t tokens_in_window = 0;  // this event included
  std::string gpu_model;              // profile names of those GPUs, sorted, '+'-joined
  std::string basis;                  // "output" or "input+output"
};

class CostWindow {
 public:
  CostWindow(CostSettings settings, const GpuCatalog& catalog);
  /// Adds one usage event to its key's window (dropping entries older than time - W, by event
  /// time) and returns the cost fields for it.
  Cost add(const std::string& key, std::chrono::system_clock::time_point time,
           std::int64_t input_tokens, std::int64_t output_tokens,
           const std::vector<std::string>& gpu_uuids);
  /// The latest cost per token of each key, for the processor_cost_per_token_usd gauge.
  const std::map<std::string, std::optional<double>>& latest() const { return latest_; }

 private:
  struct Entry {
    std::chrono::system_clock::time_point time;
    std::int64_t tokens;
    std::vector<std::string> gpu_uuids;
  };
  // Running totals are kept beside the entries so that add() costs O(GPUs in the window), not
  // O(events in the window).
  struct Window {
    std::deque<Entry> entries;  // sorted by time
    std::int64_t tokens = 0;
    std::unordered_map<std::string, int> gpu_refs;  // uuid -> entries naming it
  };
  CostSettings settings_;
  const GpuCatalog& catalog_;
  std::unordered_map<std::string, Window> windows_;
  std::map<std::string, std::optional<double>> latest_;
};

}  // namespace telemetryd::processor
