// Registers the HTTP listener as the `http` component with its `http:` config section.

#include "http/server.hpp"
#include "telemetryd/component.hpp"

namespace telemetryd::http {
namespace {

class HttpComponent final : public Component {
 public:
  explicit HttpComponent(ComponentContext& ctx)
      : server_(ctx.io, options_from(ctx.config), ctx.router, ctx.metrics) {}
  void start() override { server_.start(); }
  void stop() override { server_.stop(); }

 private:
  static ServerOptions options_from(const Config& config) {
    ServerOptions options;
    options.listen = config.str("http.listen");
    options.read_timeout = std::chrono::milliseconds(config.integer("http.read_timeout_ms"));
    options.write_timeout = std::chrono::milliseconds(config.integer("http.write_timeout_ms"));
    options.body_limit = static_cast<std::size_t>(config.integer("http.body_limit_bytes"));
    options.max_connections = static_cast<std::size_t>(config.integer("http.max_connections"));
    return options;
  }
  Server server_;
};

const ComponentRegistration kRegistration{
    {"http",
     {"http",
      "HTTP listener for /health, /ready, /metrics and the role's API.",
      {
          {.name = "listen",
           .description = "Address and port to listen on.",
           .default_value = "0.0.0.0:8000",
           .check = check_host_port,
           .hint = "host:port, e.g. 127.0.0.1:8000"},
          {.name = "read_timeout_ms",
           .type = ValueType::kInt,
           .description = "Time allowed for a whole request to arrive, idle keep-alive included.",
           .default_value = "10000",
           .min = 100,
           .max = 600000},
          {.name = "write_timeout_ms",
           .type = ValueType::kInt,
           .description = "Time allowed to write a response.",
           .default_value = "10000",
           .min = 100,
           .max = 600000},
          {.name = "body_limit_bytes",
           .type = ValueType::kInt,
           .description = "Largest request body accepted; larger ones get 413.",
           .default_value = "1048576",
           .min = 0,
           .max = 268435456},
          {.name = "max_connections",
           .type = ValueType::kInt,
           .description = "Connections open at once; more are closed on accept.",
           .default_value = "1024",
           .min = 1,
           .max = 100000},
      }},
     [](ComponentContext& ctx) { return std::make_unique<HttpComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::http
