#include "app/reload.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "app/roles.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::app {

void log_config_problems(const ConfigError& error) {
  for (const auto& problem : error.problems()) {
    log::error("config", problem.to_string(),
               {{"file", problem.file}, {"line", problem.line}, {"key", problem.path}});
  }
}

bool reload_config_valid(const LoadOptions& options) {
  try {
    load_config(options, role_catalog());
    return true;
  } catch (const ConfigError& e) {
    log_config_problems(e);
    log::error("daemon", "reload rejected, keeping the running configuration",
               {{"config", options.file}, {"problems", e.problems().size()}});
    return false;
  }
}

int reexec_self(char** argv) {
  log::info("daemon", "re-executing for reload", {{"pid", static_cast<std::int64_t>(getpid())}});
  // The new image inherits stdout; anything still buffered would otherwise be lost.
  std::cout.flush();
  std::fflush(nullptr);
  // /proc/self/exe rather than argv[0]: no PATH lookup and no dependence on the working directory.
  execv("/proc/self/exe", argv);
  log::error("daemon", "re-exec failed", {{"error", std::strerror(errno)}});
  return kExitStartup;
}

}  // namespace telemetryd::app
