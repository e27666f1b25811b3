#pragma once
// What a GPU costs per hour, by the model name NVML reports (`nvmlDeviceGetName`, e.g.
// "NVIDIA H200"). Separate from the synthetic fleet's profiles: a real fleet's GPUs are priced
// whether or not the simulator knows them. The built-in prices are list on-demand prices of
// one GPU in a cloud instance, rounded (docs/cost.md names them); every one can be overridden.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::cost {

struct GpuPrice {
  std::string name;        // short name, e.g. "H200"
  std::string model_name;  // exactly as NVML reports it
  double price_per_hour_usd = 0;
};

class PriceCatalog {
 public:
  /// The built-in catalog.
  static PriceCatalog builtin();

  void add(GpuPrice price);
  /// Sets the price of the entry whose name or model_name is `name`; false when none is.
  bool set_price(std::string_view name, double price_per_hour_usd);
  /// set_price, or else adds `name` as a model of its own; true when it added one.
  bool set_or_add(std::string_view name, double price_per_hour_usd);
  /// The price of a GPU by the model name its metrics report (or a short name); nullopt when
  /// the catalog does not know the model.
  std::optional<double> price_for(std::string_view model_name) const;
  /// The entry for a model name or short name, or nullptr.
  const GpuPrice* find(std::string_view name) const;
  const std::vector<GpuPrice>& entries() const { return entries_; }

 private:
  std::vector<GpuPrice> entries_;
};

/// One "GPU=USD per hour" item, split at its last '='.
struct PriceItem {
  std::string name;
  double price = 0;
};
/// Parses an item; the problem as text, or nullopt when `out` holds it.
std::optional<std::string> parse_price_item(std::string_view item, PriceItem& out);

/// Checks one `cost.prices` item, "GPU=USD per hour" where GPU is a model or short name of the
/// built-in catalog; the problem as text, or nullopt when it is fine.
std::optional<std::string> check_price_override(std::string_view item);
/// Checks one `cost.extra_gpus` item, "NVML model name=USD per hour".
std::optional<std::string> check_extra_gpu(std::string_view item);

/// The built-in catalog with `extra_gpus` added, then `prices` applied (items already checked);
/// throws StartupError for an item that does not parse or names no GPU.
PriceCatalog catalog_with(const std::vector<std::string>& extra_gpus,
                          const std::vector<std::string>& prices);

}  // namespace telemetryd::cost
