#include "http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>

#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Server::Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool busy = false;  // between a complete request and the end of its response
};

void limit_parser(RequestParser& parser, const ServerOptions& options) {
  parser.body_limit(options.body_limit);
  parser.header_limit(static_cast<std::uint32_t>(options.header_limit));
}

std::optional<Response> read_error_response(const boost::system::error_code& ec,
                                            const ServerOptions& options) {
  if (ec == beast_http::error::body_limit) {
    return json_error(beast_http::status::payload_too_large, "payload_too_large",
                      "request body is over " + std::to_string(options.body_limit) + " bytes");
  }
  if (ec == beast_http::error::header_limit) {
    return json_error(
        beast_http::status::request_header_fields_too_large, "headers_too_large",
        "request headers are over " + std::to_string(options.header_limit) + " bytes");
  }
  // Closed by the peer, timed out, or garbage before a full header: a 400 only when the client
  // sent something that failed to parse, otherwise just close.
  const bool garbage =
      ec.category() == beast_http::make_error_code(beast_http::error::end_of_stream).category() &&
      ec != beast_http::error::end_of_stream && ec != beast_http::error::partial_message;
  if (!garbage) return std::nullopt;
  return json_error(beast_http::status::bad_request, "bad_request",
                    "malformed HTTP request: " + ec.message());
}

Server::Server(asio::io_context& io, ServerOptions options, const Router& router,
               metrics::Registry& metrics)
    : io_(io),
      options_(std::move(options)),
      router_(router),
      acceptor_(io),
      requests_(metrics.counter("http_requests_total", "HTTP requests answered.",
                                {"route", "method", "code"})),
      duration_(metrics.histogram("http_request_duration_seconds",
                                  "Time from a complete request to its response being written.",
                                  {"route"})),
      open_connections_(
          metrics.gauge("http_open_connections", "HTTP connections currently open.").with({})),
      rejected_connections_(metrics
                                .counter("http_rejected_connections_total",
                                         "Connections closed at once because max_connections "
                                         "were open.")
                                .with({})) {}

Server::~Server() = default;

void Server::start() {
  const auto colon = options_.listen.rfind(':');
  std::string host = options_.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const auto port = static_cast<unsigned short>(std::stoul(options_.listen.substr(colon + 1)));
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw StartupError("http.listen: '" + host + "' is not an IP address: " + ec.message());
  const tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw StartupError("http.listen: cannot listen on " + options_.listen + ": " + ec.message());
  }
  const auto bound = acceptor_.local_endpoint();
  log::info("http", "listening",
            {{"address", bound.address().to_string()}, {"port", bound.port()}});
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void Server::stop() {
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (const auto& weak : connections_) {
    if (auto connection = weak.lock(); connection && !connection->busy) {
      connection->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      connection->stream.close();
    }
  }
}

tcp::endpoint Server::local_endpoint() const {
  return acceptor_.local_endpoint();
}

asio::awaitable<void> Server::accept_loop() {
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) break;
      // Running out of descriptors must not end the listener: log, pause briefly, go on.
      log::warn("http", "accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(kTuple);
      continue;
    }
    connections_.remove_if([](const auto& weak) { return weak.expired(); });
    if (connections_.size() >= options_.max_connections) {
      rejected_connections_.inc();
      socket.close(ec);
      continue;
    }
    auto connection = std::make_shared<Connection>(std::move(socket));
    connections_.push_back(connection);
    asio::co_spawn(io_, serve(std::move(connection)), asio::detached);
  }
}

asio::awaitable<void> Server::serve(std::shared_ptr<Connection> connection) {
  open_connections_.inc();
  beast::flat_buffer buffer;
  auto& stream = connection->stream;
  while (!stopping_) {
    RequestParser parser;
    limit_parser(parser, options_);
    stream.expires_after(options_.read_timeout);
    auto [read_ec, bytes] = co_await beast_http::async_read(stream, buffer, parser, kTuple);
    (void)bytes;
    Response response;
    std::string route = "unmatched";
    const auto started = std::chrono::steady_clock::now();
    bool keep_alive = false;
    if (read_ec) {
      auto error_response = read_error_response(read_ec, options_);
      if (!error_response) break;
      response = std::move(*error_response);
    } else {
      connection->busy = true;
      const Request& request = parser.get();
      keep_alive = request.keep_alive();
      response = co_await router_.dispatch(request, route);
    }
    const unsigned code = response.result_int();
    response.keep_alive(keep_alive && !stopping_);
    response.prepare_payload();
    // Counted before the write so a client that has its response also sees it counted.
    // Beast accepts any token as a method; an unknown one is "other", so a client cannot add
    // label values (metric series) without bound.
    const std::string method = read_ec ? std::string("unknown")
                               : parser.get().method() == beast_http::verb::unknown
                                   ? std::string("other")
                                   : std::string(beast_http::to_string(parser.get().method()));
    requests_.with({route, method, std::to_string(code)}).inc();
    stream.expires_after(options_.write_timeout);
    auto [write_ec, written] = co_await beast_http::async_write(stream, response, kTuple);
    (void)written;
    connection->busy = false;
    duration_.with({route}).observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (write_ec || !keep_alive || read_ec) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
  open_connections_.dec();
}

}  // namespace telemetryd::http
