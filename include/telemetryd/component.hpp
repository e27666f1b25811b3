#pragma once
// A component is one pluggable piece of a role (the HTTP listener, a Kafka client, later sources,
// transforms and sinks). It owns its config section and registers itself in its own .cpp file,
// so adding one touches that file and one line of meson.build.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "telemetryd/config.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/readiness.hpp"

// Declared, not included: a component that runs work includes Asio itself, and this interface
// stays free of Boost (components that only register keys or routes never compile Asio for it).
namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace telemetryd {

namespace http {
class Router;
}
class EventInletSlot;

/// What a component gets from the daemon. The io_context runs on one thread; blocking client
/// calls (librdkafka metadata, libmongoc commands) go to `blocking` and post results back.
struct ComponentContext {
  boost::asio::io_context& io;
  boost::asio::thread_pool& blocking;
  const Config& config;
  metrics::Registry& metrics;
  Readiness& readiness;
  /// Routes of the role's API, served on http.listen (over TLS when it is configured).
  http::Router& router;
  /// Operator routes (/health, /ready, /metrics and the like): served on http.admin_listen
  /// (plain HTTP) when it is set, else on http.listen after `router` (which wins a clash).
  http::Router& admin_router;
  /// Starts the same drain as SIGTERM, then exits with `exit_code`. Thread-safe.
  std::function<void(int exit_code)> request_shutdown;
  /// The pipeline's way in for receivers (see event_inlet.hpp).
  EventInletSlot& inlet;
};

class Component {
 public:
  virtual ~Component() = default;
  /// Opens sockets and starts work; throws StartupError when that is impossible.
  virtual void start() = 0;
  /// Stops taking new work and lets in-flight work finish; must not block the io thread.
  virtual void stop() = 0;
};

/// What a factory returns when the component's section turns it off (otlp.enabled: false):
/// no port, no thread, nothing to stop.
class DisabledComponent final : public Component {
 public:
  void start() override {}
  void stop() override {}
};

struct ComponentInfo {
  std::string name;
  SectionSpec section;  // section.name is the role-file key
  std::function<std::unique_ptr<Component>(ComponentContext&)> create;
  /// Sections of the stages this component builds (e.g. every source), validated with the role.
  std::function<std::vector<const SectionSpec*>()> subsections;
  /// Checks across keys and sections (e.g. a key required only when another has some value),
  /// run after every key is valid; each problem names the key path to fix.
  std::function<std::vector<ConfigProblem>(const Config&)> check;
};

class ComponentRegistry {
 public:
  static ComponentRegistry& instance();
  void add(ComponentInfo info);
  const ComponentInfo* find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<ComponentInfo> components_;
};

/// Declared at namespace scope in a component's .cpp file to register it at start-up.
struct ComponentRegistration {
  explicit ComponentRegistration(ComponentInfo info) {
    ComponentRegistry::instance().add(std::move(info));
  }
};

}  // namespace telemetryd
