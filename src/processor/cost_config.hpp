#pragma once
// The cost settings (window, token basis, energy price, settle time, placements, prices) that
// the processor and the embedded role both declare under `<section>.cost.*`, the price catalog
// they build from them, and the GPU catalog (/v1/gpus) seeded from the profiles.

#include <string>
#include <vector>

#include "cost/cost_model.hpp"
#include "cost/price_catalog.hpp"
#include "events/gpu_catalog.hpp"
#include "processor/cost_pricer.hpp"
#include "processor/processor_core.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::processor {

/// gpu_profiles_file and cost.* keys, for a section's schema.
std::vector<KeySpec> cost_keys();
/// Reads `<section>.cost.window_s`; topics are left at their defaults.
CoreSettings core_settings_from(const Config& config, const std::string& section);
/// Reads `<section>.cost.*` for the pricer.
PricerSettings pricer_settings_from(const Config& config, const std::string& section);
/// The built-in prices, plus the profiles' models it lacks, plus `cost.extra_gpus`, with
/// `cost.prices` applied.
cost::PriceCatalog price_catalog_from(const Config& config, const std::string& section);
/// The profiles from `<section>.gpu_profiles_file` (or built in), priced by `prices`.
events::GpuCatalog catalog_from(const Config& config, const std::string& section,
                                const cost::PriceCatalog& prices);

}  // namespace telemetryd::processor
