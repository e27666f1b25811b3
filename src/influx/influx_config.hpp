#pragma once
// The `influxdb:` section's keys and cross-checks (run when processor.sinks includes influxdb),
// and the writer and store settings built from a validated Config (secrets read from their files
// here).

#include <vector>

#include "influx/influx_store.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::influx {

std::vector<KeySpec> influx_keys();
/// Problems that single-key validation cannot see, e.g. the sink in use without influxdb.url.
std::vector<ConfigProblem> check_influx_config(const Config& config);
/// Throws StartupError when a password or token file cannot be read.
StoreSettings store_settings_from(const Config& config);

}  // namespace telemetryd::influx
