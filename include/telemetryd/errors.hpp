#pragma once
#include <stdexcept>

namespace telemetryd {

/// A component could not start (port in use, bad client settings). Caught once in main; the
/// process exits 1 so systemd may retry, unlike ConfigError (exit 78) which it must not.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// sysexits.h EX_CONFIG: systemd's RestartPreventExitStatus=78 stops a restart loop on bad config.
inline constexpr int kExitConfig = 78;
inline constexpr int kExitStartup = 1;

}  // namespace telemetryd
