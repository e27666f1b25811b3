// Fuzzes HTTP request handling as a connection of src/http/server.cpp sees it: the input is the
// byte stream a client sends, read request after request (keep-alive) with Beast's parser and
// the server's limits (limit_parser), answered by read_error_response or by the router with the
// routes of the `all` role (/health, /ready, /metrics, /gpu/info, /v1/gpus, /v1/usage) over a real
// in-memory SQLite store holding a few events. The limits are lowered (body 256 bytes, headers
// 1 KiB) so that inputs of a few KiB reach 413 and 431.
// Invariants (docs/fuzzing.md):
//  - every response serialises to a well-formed HTTP/1.1 response that Beast's response parser
//    reads back with the same status, Content-Length and body;
//  - its status is one the route can give (404 for unknown paths, 405 with Allow for a wrong
//    method, 400/413/431 for unreadable requests, 200/400/404 from the handlers); a 503 means a
//    request made a healthy store fail, a bug;
//  - every status >= 400 has Content-Type application/json and a body that parses (simdjson,
//    which also checks UTF-8) as {"error":{"code":string,"message":string[,"field":string]}};
//  - JSON 200 bodies parse too.
#include <simdjson.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>

#include "app/standard_routes.hpp"
#include "events/event_decoder.hpp"
#include "fuzz_invariants.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "processor/query_routes.hpp"
#include "sqlite/sqlite_store.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/readiness.hpp"

namespace {

using fuzz::expect;
using fuzz::violated;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
using telemetryd::http::Request;
using telemetryd::http::RequestParser;
using telemetryd::http::Response;

// A SyncReadStream over the input, delivering it in reads of at most kChunk bytes the way a
// socket would; then end of stream. beast_http::read runs the same parse loop as async_read.
class InputStream {
 public:
  explicit InputStream(std::string_view data) : data_(data) {}

  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    if (data_.empty()) {
      ec = asio::error::eof;
      return 0;
    }
    ec = {};
    const std::size_t n = asio::buffer_copy(
        buffers, asio::buffer(data_.data(), std::min<std::size_t>(data_.size(), kChunk)));
    data_.remove_prefix(n);
    return n;
  }
  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  static constexpr std::size_t kChunk = 700;
  std::string_view data_;
};

constexpr const char* kEvents[] = {
    R"({"specversion":"1.0","id":"01a20320-b603-7f9b-a050-b23a91d93080","source":"//telemetryd/gpu-node-01/synthetic","type":"io.telemetryd.gpu.metrics.v1","time":"2026-11-22T12:00:05.123Z","data":{"gpu_uuid":"GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60","host":"gpu-node-01","model_name":"NVIDIA H100 80GB HBM3","collector":"synthetic"}})",
    R"({"specversion":"1.0","id":"01a20320-c1a2-7d10-8f00-0a1b2c3d4e5f","source":"//gateway/eu-1","type":"io.telemetryd.token.usage.v1","time":"2026-11-22T12:00:08Z","data":{"model":"llama-3-70b","tenant_id":"acme","usage":{"input_tokens":120,"output_tokens":380},"gpu_uuids":["GPU-5f3c9a2e-8b1d-4c6e-9f0a-1b2c3d4e5f60"]}})",
};

struct World {
  asio::io_context io;
  asio::thread_pool blocking{1};
  telemetryd::metrics::Registry registry;
  telemetryd::Readiness readiness;
  telemetryd::sqlite::SqliteStore store{":memory:"};
  telemetryd::events::GpuCatalog catalog;
  telemetryd::http::Router router;
  telemetryd::http::ServerOptions options;

  World() {
    options.body_limit = 256;
    options.header_limit = 1024;
    readiness.declare("embedded", "starting");
    readiness.set("embedded", true, "fuzz store");
    catalog.add({"H100 80GB", "NVIDIA H100 80GB HBM3", 4.5});
    expect(static_cast<bool>(store.prepare(catalog)), "cannot prepare the SQLite store");
    simdjson::dom::parser parser;
    std::vector<telemetryd::events::DecodedEvent> events;
    for (const char* line : kEvents) {
      auto decoded = telemetryd::events::decode_event(line, parser);
      expect(std::holds_alternative<telemetryd::events::DecodedEvent>(decoded),
             "a built-in event does not decode", line);
      events.push_back(std::get<telemetryd::events::DecodedEvent>(std::move(decoded)));
    }
    std::vector<telemetryd::StoredEvent> batch;
    for (const auto& event : events) batch.push_back({&event});
    expect(static_cast<bool>(store.write(batch)), "cannot store the built-in events");
    telemetryd::app::add_standard_routes(router, readiness, registry, "all");
    telemetryd::processor::add_query_routes(router, blocking, store, std::nullopt, registry);
  }
};

World& world() {
  static World* w = new World();  // never destroyed: the pool thread outlives fuzzing
  return *w;
}

Response dispatch(const Request& request, std::string& route) {
  World& w = world();
  std::optional<Response> response;
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(w.io, w.router.dispatch(request, route), [&](std::exception_ptr e, Response r) {
    failure = e;
    response = std::move(r);
    done = true;
  });
  // The query routes hop to the blocking pool and back: while the coroutine waits there the
  // io_context has no handler of its own, so a work guard keeps run_one waiting for it.
  auto guard = asio::make_work_guard(w.io);
  w.io.restart();
  while (!done) w.io.run_one();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      violated("a route handler threw", e.what());
    }
  }
  expect(response.has_value(), "the router did not complete");
  return std::move(*response);
}

void check_error_body(const Response& res, const std::string& text) {
  expect(res[beast_http::field::content_type] == "application/json",
         "error response is not application/json", text);
  static simdjson::dom::parser parser;
  simdjson::dom::element root;
  expect(parser.parse(res.body()).get(root) == simdjson::SUCCESS, "error body is not JSON", text);
  simdjson::dom::object top, error;
  expect(root.get(top) == simdjson::SUCCESS && top.size() == 1 &&
             top["error"].get(error) == simdjson::SUCCESS,
         "error body is not {\"error\":{...}}", text);
  std::string_view code, message, field;
  expect(error["code"].get(code) == simdjson::SUCCESS && !code.empty(),
         "error without a string code", text);
  expect(error["message"].get(message) == simdjson::SUCCESS && !message.empty(),
         "error without a string message", text);
  for (auto member : error)
    expect(member.key == "code" || member.key == "message" ||
               (member.key == "field" && member.value.get(field) == simdjson::SUCCESS),
           "error has an unexpected member", text);
}

// The statuses each route may answer with; empty route: the request could not be read.
bool expected_status(std::string_view route, unsigned status) {
  if (status == 405) return route != "unmatched" && !route.empty();
  if (route.empty()) return status == 400 || status == 413 || status == 431;
  if (route == "unmatched") return status == 404;
  if (route == "/gpu/info") return status == 200 || status == 404;
  if (route == "/v1/usage") return status == 200 || status == 400;
  return status == 200;  // /health, /ready (its one check is ready), /metrics, /v1/gpus
}

void check_response(Response& res, std::string_view route) {
  std::ostringstream wire_stream;
  wire_stream << res;
  const std::string wire = wire_stream.str();
  const unsigned status = res.result_int();
  expect(expected_status(route, status), "unexpected status", std::string(route) + ": " + wire);

  beast_http::response_parser<beast_http::string_body> parser;
  parser.eager(true);
  boost::system::error_code ec;
  const std::size_t used = parser.put(asio::buffer(wire), ec);
  expect(!ec && parser.is_done() && used == wire.size(),
         "response does not parse back as one HTTP response", wire);
  const auto& back = parser.get();
  expect(back.result_int() == status && back.version() == 11, "status line differs", wire);
  expect(back.body() == res.body(), "body differs after parsing back", wire);
  expect(back[beast_http::field::content_length] == std::to_string(res.body().size()),
         "Content-Length is not the body size", wire);
  if (status == 405) expect(!back[beast_http::field::allow].empty(), "405 without Allow", wire);

  if (status >= 400) {
    check_error_body(res, wire);
  } else if (route != "/metrics") {
    static simdjson::dom::parser json;
    simdjson::dom::element root;
    expect(json.parse(res.body()).get(root) == simdjson::SUCCESS, "200 body is not JSON", wire);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = world();
  InputStream stream(std::string_view(reinterpret_cast<const char*>(data), size));
  beast::flat_buffer buffer;
  // The server's loop: one parser per request, until an error or a request without keep-alive.
  for (int requests = 0; requests < 32; ++requests) {
    RequestParser parser;
    telemetryd::http::limit_parser(parser, w.options);
    boost::system::error_code read_ec;
    beast_http::read(stream, buffer, parser, read_ec);
    std::string route;
    Response response;
    bool keep_alive = false;
    if (read_ec) {
      auto error_response = telemetryd::http::read_error_response(read_ec, w.options);
      if (!error_response) break;
      response = std::move(*error_response);
    } else {
      keep_alive = parser.get().keep_alive();
      response = dispatch(parser.get(), route);
      expect(!route.empty(), "the router named no route");
    }
    response.keep_alive(keep_alive);
    response.prepare_payload();
    check_response(response, route);
    if (!keep_alive || read_ec) break;
  }
  return 0;
}
