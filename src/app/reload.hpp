#pragma once
// SIGHUP reload: the running configuration is only given up for one that validates. A valid file
// is applied by draining and re-executing the same binary with the same argv, so the PID stays
// the one systemd tracks and every component starts from a clean state (no partial reloads).

#include "telemetryd/config.hpp"

namespace telemetryd::app {

/// Logs one JSON error line per problem (file, line, key), as at startup.
void log_config_problems(const ConfigError& error);

/// Re-reads the role file with the same --role and --set. True when it validates; otherwise logs
/// every problem plus "reload rejected, keeping the running configuration".
bool reload_config_valid(const LoadOptions& options);

/// execv("/proc/self/exe", argv). Returns only on failure, with kExitStartup after logging.
int reexec_self(char** argv);

}  // namespace telemetryd::app
