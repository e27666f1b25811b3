#include "app/daemon.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

#include "app/reload.hpp"
#include "app/roles.hpp"
#include "app/standard_routes.hpp"
#include "app/systemd_notify.hpp"
#include "http/router.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd_build_config.hpp"

namespace telemetryd::app {

namespace asio = boost::asio;

namespace {

// Bounds the drain: if the io loop has not emptied by the deadline, stop it from outside.
class DrainDeadline {
 public:
  explicit DrainDeadline(asio::io_context& io) : io_(io) {}
  ~DrainDeadline() { disarm(); }

  void arm(std::chrono::milliseconds timeout) {
    thread_ = std::thread([this, timeout] {
      std::unique_lock lock(mutex_);
      if (!cv_.wait_for(lock, timeout, [this] { return done_; })) {
        log::warn("daemon", "drain deadline exceeded, stopping with work in flight",
                  {{"shutdown_timeout_ms", timeout.count()}});
        io_.stop();
      }
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
  add_standard_routes(router, readiness, registry, config.role());

  int exit_code = 0;
  std::function<void(std::string_view)> begin_drain;
  const auto request_shutdown = [&io, &exit_code, &begin_drain](int code) {
    asio::post(io, [&exit_code, &begin_drain, code] {
      exit_code = std::max(exit_code, code);
      begin_drain("requested by a component");
    });
  };
  ComponentContext context{io, blocking, config, registry, readiness, router, request_shutdown};
  std::vector<std::unique_ptr<Component>> components;
  for (const auto& name : components_for_role(config.role())) {
    components.push_back(ComponentRegistry::instance().find(name)->create(context));
  }

  SystemdNotifier notifier(io);
  DrainDeadline deadline(io);
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
  deadline.disarm();
  blocking.join();
  // Component threads (e.g. the producer's final flush) finish here, bounded by their own
  // timeouts, while the log and metrics they use still exist.
  components.clear();
  log::info("daemon", "stopped",
            {{"drain_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - drain_started)
                              .count()},
             {"exit_code", exit_code},
             {"reload", reexec}});
  return {.exit_code = exit_code, .reexec = reexec && exit_code == 0};
}

}  // namespace telemetryd::app
