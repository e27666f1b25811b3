#include "app/daemon.hpp"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "app/reload.hpp"
#include "app/roles.hpp"
#include "app/standard_routes.hpp"
#include "app/systemd_notify.hpp"
#include "http/router.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd_build_config.hpp"

namespace telemetryd::app {

namespace asio = boost::asio;

namespace {

// Bounds the whole shutdown: if the io loop has not emptied by the deadline it is stopped from
// outside; if component threads (final flushes, consumer close) still hold the process a grace
// period later, it exits at once. Offsets of unfinished work were never committed, so a forced
// exit means redelivery, not loss, and systemd never has to SIGKILL.
class DrainDeadline {
 public:
  DrainDeadline(asio::io_context& io, std::atomic<int>& exit_code)
      : io_(io), exit_code_(exit_code) {}
  ~DrainDeadline() { disarm(); }

  void arm(std::chrono::milliseconds timeout) {
    thread_ = std::thread([this, timeout] {
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, timeout, [this] { return done_; })) return;
      log::warn("daemon", "drain deadline exceeded, stopping with work in flight",
                {{"shutdown_timeout_ms", timeout.count()}});
      io_.stop();
      if (cv_.wait_for(lock, std::chrono::seconds(3), [this] { return done_; })) return;
      log::error("daemon", "shutdown still blocked after the deadline, exiting now",
                 {{"exit_code", 1}});
      std::fflush(stdout);
      std::_Exit(std::max(exit_code_.load(), 1));
    });
  }

  void disarm() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  asio::io_context& io_;
  std::atomic<int>& exit_code_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

DaemonOutcome run_daemon(const Config& config, const LoadOptions& reload) {
  log::Level level = log::Level::kInfo;
  log::parse_level(config.str("daemon.log_level"), level);
  log::set_level(level);

  // Declared first so it is destroyed last: handlers still queued may refer to components.
  asio::io_context io(1);
  asio::thread_pool blocking(2);
  metrics::Registry registry;
  metrics::register_process_metrics(registry, TELEMETRYD_VERSION);
  Readiness readiness;
  http::Router router;
  http::Router admin_router;
  add_standard_routes(admin_router, readiness, registry, config.role());

  // Atomic and raised directly: a component may ask after the io loop has already emptied
  // (e.g. a producer's final flush found undelivered events), and that code must not be lost.
  std::atomic<int> exit_code{0};
  std::function<void(std::string_view)> begin_drain;
  const auto request_shutdown = [&io, &exit_code, &begin_drain](int code) {
    int current = exit_code.load();
    while (code > current && !exit_code.compare_exchange_weak(current, code)) {
    }
    asio::post(io, [&begin_drain] { begin_drain("requested by a component"); });
  };
  EventInletSlot inlet;
  ComponentContext context{io,     blocking,     config,           registry, readiness,
                           router, admin_router, request_shutdown, inlet};
  std::vector<std::unique_ptr<Component>> components;
  for (const auto& name : components_for_role(config.role())) {
    components.push_back(ComponentRegistry::instance().find(name)->create(context));
  }

  SystemdNotifier notifier(io);
  DrainDeadline deadline(io, exit_code);
  auto drain_started = std::chrono::steady_clock::time_point{};
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  bool draining = false;
  bool reexec = false;
  begin_drain = [&](std::string_view reason) {
    if (draining) return;
    draining = true;
    drain_started = std::chrono::steady_clock::now();
    log::info("daemon", "draining", {{"reason", reason}});
    // clear() restores the default disposition, so a second SIGTERM or Ctrl-C ends the process
    // at once; cancel() drops a wait still pending when a component asked for the drain, which
    // would otherwise keep the io loop from emptying.
    signals.clear();
    signals.cancel();
    // SIGHUP's default action would kill the process mid-drain; ignored, it also stays ignored
    // across the re-exec until the new process installs its handler.
    std::signal(SIGHUP, SIG_IGN);
    if (reexec) {
      notifier.reloading();
    } else {
      notifier.stopping();
    }
    for (auto it = components.rbegin(); it != components.rend(); ++it) (*it)->stop();
    deadline.arm(std::chrono::milliseconds(config.integer("daemon.shutdown_timeout_ms")));
  };
  // Re-armed after a SIGHUP that does not drain: an async_wait handles one signal.
  std::function<void()> wait_for_signal;
  wait_for_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int signal_number) {
      if (ec) return;
      if (signal_number != SIGHUP) {
        begin_drain(signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
      } else if (reload.file.empty()) {
        log::info("daemon", "SIGHUP: nothing to reload (started without --config)");
        wait_for_signal();
      } else if (reload_config_valid(reload)) {
        reexec = true;
        begin_drain("SIGHUP reload");
      } else {
        wait_for_signal();
      }
    });
  };
  wait_for_signal();

  for (auto& component : components) component->start();
  log::info(
      "daemon", "started",
      {{"role", config.role()}, {"config", config.source()}, {"version", TELEMETRYD_VERSION}});
  notifier.ready("role " + config.role() + " running");
  io.run();
  blocking.join();
  // Component threads (e.g. the producer's final flush) finish here, while the log and metrics
  // they use still exist; the deadline, still armed, bounds them.
  components.clear();
  deadline.disarm();
  log::info("daemon", "stopped",
            {{"drain_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - drain_started)
                              .count()},
             {"exit_code", exit_code.load()},
             {"reload", reexec}});
  return {.exit_code = exit_code.load(), .reexec = reexec && exit_code.load() == 0};
}

}  // namespace telemetryd::app
