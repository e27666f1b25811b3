#pragma once
// sd_notify for Type=notify units: READY once every component started, STOPPING on drain,
// RELOADING on a SIGHUP drain (READY from the re-executed process ends the reload), and
// WATCHDOG pings from the io thread itself, so a wedged event loop gets the process restarted.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <string_view>

namespace telemetryd::app {

class SystemdNotifier {
 public:
  explicit SystemdNotifier(boost::asio::io_context& io);
  void ready(std::string_view status);
  void stopping();
  void reloading();
  bool watchdog_enabled() const { return watchdog_interval_.count() > 0; }

 private:
  void schedule_watchdog();
  boost::asio::steady_timer timer_;
  std::chrono::microseconds watchdog_interval_{0};
  bool stopping_ = false;
};

}  // namespace telemetryd::app
