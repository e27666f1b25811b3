#pragma once
#include "telemetryd/config.hpp"

namespace telemetryd::app {

/// Runs a validated role until SIGTERM or SIGINT, then drains within daemon.shutdown_timeout_ms.
/// Throws StartupError when a component cannot start. Returns the process exit code.
int run_daemon(const Config& config);

}  // namespace telemetryd::app
