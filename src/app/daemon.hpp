#pragma once
#include "telemetryd/config.hpp"

namespace telemetryd::app {

struct DaemonOutcome {
  int exit_code = 0;
  /// SIGHUP brought a valid configuration: the caller re-executes the binary (see reload.hpp).
  bool reexec = false;
};

/// Runs a validated role until SIGTERM or SIGINT, then drains within daemon.shutdown_timeout_ms.
/// SIGHUP re-validates `reload` (the same file, --role and --set); a valid file drains the same
/// way and returns reexec = true, an invalid one is logged and the role keeps running.
/// Throws StartupError when a component cannot start.
DaemonOutcome run_daemon(const Config& config, const LoadOptions& reload);

}  // namespace telemetryd::app
