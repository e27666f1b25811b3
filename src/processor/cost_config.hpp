#pragma once
// The cost settings (window, basis, key, price overrides) that the processor and the embedded
// role both declare under `<section>.cost.*`, and the GPU catalog they seed from the profiles.

#include <string>
#include <vector>

#include "processor/processor_core.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::processor {

/// gpu_profiles_file and cost.* keys, for a section's schema.
std::vector<KeySpec> cost_keys();
/// Reads `<section>.cost.*`; topics are left at their defaults.
CoreSettings core_settings_from(const Config& config, const std::string& section);
/// Profiles from `<section>.gpu_profiles_file` (or built in) with `<section>.cost.prices`
/// applied; throws StartupError for a price naming no profile.
GpuCatalog catalog_from(const Config& config, const std::string& section);

}  // namespace telemetryd::processor
