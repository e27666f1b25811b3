#pragma once
// The `influxdb:` section: keys, cross-checks that depend on processor.store, and the writer and
// store settings built from a validated Config (secrets read from their files here).

#include <vector>

#include "influx/influx_store.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::influx {

std::vector<KeySpec> influx_keys();
/// True when the role's processor.store writes to InfluxDB (influxdb or both).
bool influx_in_use(const Config& config);
/// Problems that single-key validation cannot see, e.g. store=influxdb without influxdb.url.
std::vector<ConfigProblem> check_influx_config(const Config& config);
/// Throws StartupError when a password or token file cannot be read.
StoreSettings store_settings_from(const Config& config);

}  // namespace telemetryd::influx
