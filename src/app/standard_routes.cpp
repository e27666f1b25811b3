#include "app/standard_routes.hpp"

#include "telemetryd/json_writer.hpp"
#include "telemetryd_build_config.hpp"

namespace telemetryd::app {

namespace beast_http = boost::beast::http;

void add_standard_routes(http::Router& router, const Readiness& readiness,
                         const metrics::Registry& registry, std::string role) {
  const auto started = std::chrono::steady_clock::now();
  router.add(
      beast_http::verb::get, "/health",
      [role, started](const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
        JsonWriter json;
        json.begin_object()
            .key("status")
            .value("alive")
            .key("role")
            .value(role)
            .key("version")
            .value(TELEMETRYD_VERSION)
            .key("uptime_s")
            .value(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count())
            .end_object();
        co_return http::json_response(beast_http::status::ok, json.take());
      });
  router.add(beast_http::verb::get, "/ready",
             [&readiness](const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
               const auto checks = readiness.snapshot();
               bool ready = true;
               JsonWriter json;
               json.begin_object().key("checks").begin_array();
               for (const auto& check : checks) {
                 ready = ready && check.ready;
                 json.begin_object()
                     .key("name")
                     .value(check.name)
                     .key("ready")
                     .value(check.ready)
                     .key(check.ready ? "detail" : "reason")
                     .value(check.reason)
                     .end_object();
               }
               json.end_array().key("status").value(ready ? "ready" : "not_ready").end_object();
               co_return http::json_response(
                   ready ? beast_http::status::ok : beast_http::status::service_unavailable,
                   json.take());
             });
  router.add(beast_http::verb::get, "/metrics",
             [&registry](const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
               http::Response res{beast_http::status::ok, 11};
               res.set(beast_http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
               res.body() = registry.expose();
               co_return res;
             });
}

}  // namespace telemetryd::app
