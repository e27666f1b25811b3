#include "app/systemd_notify.hpp"

#include <systemd/sd-daemon.h>

#include <time.h>

#include <string>

#include "telemetryd/log.hpp"

namespace telemetryd::app {

SystemdNotifier::SystemdNotifier(boost::asio::io_context& io) : timer_(io) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    // Ping at half the interval, as sd_watchdog_enabled(3) recommends.
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
  }
}

void SystemdNotifier::ready(std::string_view status) {
  const std::string message = "READY=1\nSTATUS=" + std::string(status);
  sd_notify(0, message.c_str());
  if (watchdog_enabled()) {
    log::info("daemon", "systemd watchdog enabled",
              {{"ping_interval_ms", watchdog_interval_.count() / 1000}});
    schedule_watchdog();
  }
}

void SystemdNotifier::stopping() {
  stopping_ = true;
  timer_.cancel();
  sd_notify(0, "STOPPING=1\nSTATUS=draining");
}

void SystemdNotifier::reloading() {
  stopping_ = true;
  timer_.cancel();
  // MONOTONIC_USEC lets systemd >= 253 match this RELOADING=1 to the reload it requested.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
                    static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  const std::string message =
      "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" + std::to_string(usec);
  sd_notify(0, message.c_str());
}

void SystemdNotifier::schedule_watchdog() {
  timer_.expires_after(watchdog_interval_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    sd_notify(0, "WATCHDOG=1");
    schedule_watchdog();
  });
}

}  // namespace telemetryd::app
