#include "core/dependency_probe.hpp"

#include <boost/asio/post.hpp>

#include "telemetryd/log.hpp"

namespace telemetryd {

DependencyProbe::DependencyProbe(boost::asio::io_context& io, boost::asio::thread_pool& blocking,
                                 Readiness& readiness, metrics::Registry& metrics, std::string name,
                                 std::chrono::milliseconds interval,
                                 std::function<ProbeResult()> check)
    : io_(io),
      blocking_(blocking),
      readiness_(readiness),
      name_(std::move(name)),
      interval_(interval),
      check_(std::move(check)),
      timer_(io),
      up_(metrics
              .gauge("telemetryd_dependency_up", "1 while the last check of a dependency passed.",
                     {"dependency"})
              .with({name_})),
      failures_(metrics
                    .counter("telemetryd_dependency_check_failures_total",
                             "Failed checks of a dependency.", {"dependency"})
                    .with({name_})),
      duration_(metrics
                    .histogram("telemetryd_dependency_check_duration_seconds",
                               "Time one dependency check took.", {"dependency"})
                    .with({name_})) {
  readiness_.declare(name_, "not checked yet");
}

DependencyProbe::~DependencyProbe() {
  *stopped_ = true;
}

void DependencyProbe::start() {
  schedule(std::chrono::milliseconds(0));
}

void DependencyProbe::stop() {
  *stopped_ = true;
  timer_.cancel();
}

void DependencyProbe::schedule(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this, stopped = stopped_](boost::system::error_code ec) {
    if (ec || *stopped) return;
    run_check();
  });
}

void DependencyProbe::run_check() {
  boost::asio::post(blocking_, [this, stopped = stopped_] {
    const auto started = std::chrono::steady_clock::now();
    ProbeResult result = check_();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    boost::asio::post(io_, [this, stopped, result = std::move(result), seconds] {
      if (*stopped) return;
      duration_.Observe(seconds);
      record(result);
      // Check again sooner while down, so /ready turns green soon after the dependency returns.
      schedule(result.ok ? interval_ : std::min(interval_, std::chrono::milliseconds(1000)));
    });
  });
}

void DependencyProbe::record(const ProbeResult& result) {
  readiness_.set(name_, result.ok, result.detail);
  up_.Set(result.ok ? 1 : 0);
  if (!result.ok) failures_.Increment();
  // Log transitions only: a dependency down for an hour must not write a line a second.
  if (first_ || result.ok != last_ok_) {
    if (result.ok) {
      log::info(name_, "dependency reachable", {{"detail", result.detail}});
    } else {
      log::warn(name_, "dependency unreachable", {{"error", result.detail}});
    }
  }
  first_ = false;
  last_ok_ = result.ok;
}

}  // namespace telemetryd
