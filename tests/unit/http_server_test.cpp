#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "http/router.hpp"
#include "http/server.hpp"
#include "support/http_client.hpp"

using namespace telemetryd;
namespace bhttp = boost::beast::http;

namespace {

// A real server on 127.0.0.1 with an ephemeral port, its io loop on a thread of its own.
struct RunningServer {
  boost::asio::io_context io;
  http::Router router;
  metrics::Registry registry;
  std::unique_ptr<http::Server> server;
  std::thread thread;
  int port = 0;

  explicit RunningServer(http::ServerOptions options) {
    router.add(bhttp::verb::get, "/hello",
               [](const http::RequestContext& ctx) -> boost::asio::awaitable<http::Response> {
                 const auto name = ctx.query.find("name");
                 co_return http::json_response(
                     bhttp::status::ok,
                     "{\"hello\":\"" +
                         (name == ctx.query.end() ? std::string("world") : name->second) + "\"}");
               });
    router.add(bhttp::verb::post, "/echo",
               [](const http::RequestContext& ctx) -> boost::asio::awaitable<http::Response> {
                 co_return http::json_response(bhttp::status::ok, ctx.request.body());
               });
    router.add(bhttp::verb::get, "/items/{id}/parts",
               [](const http::RequestContext& ctx) -> boost::asio::awaitable<http::Response> {
                 co_return http::json_response(bhttp::status::ok,
                                               "{\"id\":\"" + ctx.params.at("id") + "\"}");
               });
    router.add(bhttp::verb::get, "/items/special/parts",
               [](const http::RequestContext&) -> boost::asio::awaitable<http::Response> {
                 co_return http::json_response(bhttp::status::ok, "{\"exact\":true}");
               });
    server = std::make_unique<http::Server>(io, std::move(options), router, registry);
    server->start();
    port = server->local_endpoint().port();
    thread = std::thread([this] { io.run(); });
  }
  ~RunningServer() {
    boost::asio::post(io, [this] { server->stop(); });
    thread.join();
  }
};

http::ServerOptions test_options() {
  http::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.body_limit = 64;
  options.read_timeout = std::chrono::milliseconds(300);
  return options;
}

}  // namespace

TEST_CASE("routes answer with JSON and decode the query", "[http]") {
  RunningServer s(test_options());
  const auto res = test_support::http_get(s.port, "/hello?name=a%20b");
  CHECK(res.status == 200);
  CHECK(res.content_type == "application/json");
  CHECK(res.body == "{\"hello\":\"a b\"}\n");
}

TEST_CASE("unknown routes get a JSON 404", "[http]") {
  RunningServer s(test_options());
  const auto res = test_support::http_get(s.port, "/nope");
  CHECK(res.status == 404);
  CHECK(res.body == "{\"error\":{\"code\":\"not_found\",\"message\":\"no route for /nope\"}}\n");
}

TEST_CASE("a wrong method gets a JSON 405", "[http]") {
  RunningServer s(test_options());
  const auto res = test_support::http_request("127.0.0.1", s.port, "DELETE", "/hello");
  CHECK(res.status == 405);
  CHECK(res.body.find("\"code\":\"method_not_allowed\"") != std::string::npos);
}

TEST_CASE("a body over the limit gets a JSON 413", "[http]") {
  RunningServer s(test_options());
  const auto small = test_support::http_request("127.0.0.1", s.port, "POST", "/echo", "{\"a\":1}",
                                                "application/json");
  CHECK(small.status == 200);
  CHECK(small.body == "{\"a\":1}\n");
  const auto big = test_support::http_request("127.0.0.1", s.port, "POST", "/echo",
                                              std::string(65, 'x'), "application/json");
  CHECK(big.status == 413);
  CHECK(big.body.find("\"code\":\"payload_too_large\"") != std::string::npos);
}

TEST_CASE("a malformed request gets a JSON 400", "[http]") {
  RunningServer s(test_options());
  const std::string reply = test_support::raw_exchange(s.port, "NOT HTTP AT ALL\r\n\r\n", 5000);
  CHECK(reply.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(reply.find("\"code\":\"bad_request\"") != std::string::npos);
}

TEST_CASE("a silent client is disconnected when the read timeout passes", "[http]") {
  RunningServer s(test_options());
  const auto started = std::chrono::steady_clock::now();
  // The client waits up to 5 s; the server's 300 ms read timeout must close the socket first.
  const std::string reply = test_support::raw_exchange(s.port, "", 5000);
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK(reply.empty());
  CHECK(waited < std::chrono::milliseconds(4500));
}

TEST_CASE("requests are counted by route, method and code", "[http]") {
  RunningServer s(test_options());
  test_support::http_get(s.port, "/hello");
  test_support::http_get(s.port, "/hello");
  test_support::http_get(s.port, "/elsewhere");
  const std::string text = s.registry.expose();
  CHECK(text.find("http_requests_total{route=\"/hello\",method=\"GET\",code=\"200\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("unknown methods share one metrics label", "[http]") {
  RunningServer s(test_options());
  // Beast accepts any token as a method: each must not become a series of its own.
  for (const std::string method : {"FROBNICATE", "XYZZY"}) {
    const std::string reply = test_support::raw_exchange(
        s.port, method + " /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2000);
    CHECK(reply.rfind("HTTP/1.1 405", 0) == 0);
  }
  const std::string text = s.registry.expose();
  CHECK(text.find("http_requests_total{route=\"/hello\",method=\"other\",code=\"405\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("FROBNICATE") == std::string::npos);
}

TEST_CASE("pattern routes match one segment per parameter, decoded", "[http]") {
  RunningServer s(test_options());
  const auto res = test_support::http_get(s.port, "/items/GPU-a%2Fb+c/parts?x=1");
  CHECK(res.status == 200);
  CHECK(res.body == "{\"id\":\"GPU-a/b+c\"}\n");  // '+' stays itself in a path
  CHECK(test_support::http_get(s.port, "/items/special/parts").body == "{\"exact\":true}\n");
  CHECK(test_support::http_get(s.port, "/items//parts").status == 404);        // empty segment
  CHECK(test_support::http_get(s.port, "/items/a/b/parts").status == 404);     // two segments
  CHECK(test_support::http_get(s.port, "/items/a/parts/more").status == 404);  // longer
  CHECK(test_support::http_get(s.port, "/items/a").status == 404);             // shorter
  const auto wrong = test_support::http_request("127.0.0.1", s.port, "DELETE", "/items/a/parts");
  CHECK(wrong.status == 405);
  // The pattern, not the path, is the metrics label: one series however many ids are asked.
  test_support::http_get(s.port, "/items/b/parts");
  const std::string text = s.registry.expose();
  CHECK(text.find("http_requests_total{route=\"/items/{id}/parts\",method=\"GET\",code=\"200\"} "
                  "2\n") != std::string::npos);
  CHECK(text.find("route=\"/items/a/parts\"") == std::string::npos);
}

TEST_CASE("parse_query decodes pairs", "[http]") {
  const auto q = http::parse_query("a=1&b=x+y&c=%41&flag");
  CHECK(q.at("a") == "1");
  CHECK(q.at("b") == "x y");
  CHECK(q.at("c") == "A");
  CHECK(q.at("flag").empty());
}
