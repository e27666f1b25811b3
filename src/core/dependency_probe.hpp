#pragma once
// Checks a dependency (Kafka, MongoDB) on the blocking pool at an interval and feeds /ready and
// telemetryd_dependency_up. Client calls block for up to their timeout, so they never run on
// the io thread.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "telemetryd/metrics.hpp"
#include "telemetryd/readiness.hpp"

namespace telemetryd {

class DependencyProbe {
 public:
  DependencyProbe(boost::asio::io_context& io, boost::asio::thread_pool& blocking,
                  Readiness& readiness, metrics::Registry& metrics, std::string name,
                  std::chrono::milliseconds interval, std::function<ProbeResult()> check);
  ~DependencyProbe();

  void start();
  void stop();

 private:
  void schedule(std::chrono::milliseconds delay);
  void run_check();
  void record(const ProbeResult& result);

  boost::asio::io_context& io_;
  boost::asio::thread_pool& blocking_;
  Readiness& readiness_;
  std::string name_;
  std::chrono::milliseconds interval_;
  std::function<ProbeResult()> check_;
  boost::asio::steady_timer timer_;
  // Shared with checks in flight on the pool so they can tell the probe was stopped.
  std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
  bool last_ok_ = false;
  bool first_ = true;
  metrics::Gauge& up_;
  metrics::Counter& failures_;
  metrics::Histogram& duration_;
};

}  // namespace telemetryd
