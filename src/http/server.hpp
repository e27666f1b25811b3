#pragma once
// The HTTP listener every role runs (health, readiness, metrics, later the ingest API).
// Connections are coroutines on the daemon's single io thread, which serialises them without
// explicit strands; every read has a deadline and a body limit.

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "http/router.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::http {

struct ServerOptions {
  std::string listen = "0.0.0.0:8000";
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  std::size_t body_limit = 1 << 20;
  std::size_t header_limit = 16 * 1024;
  std::size_t max_connections = 1024;
};

using RequestParser = beast_http::request_parser<beast_http::string_body>;

/// Applies the body and header limits of `options` to the parser of one request.
void limit_parser(RequestParser& parser, const ServerOptions& options);

/// The answer to a request that could not be read: 413, 431 or 400, each a JSON error; nullopt
/// when there is nobody to answer (the peer closed or the read timed out) and the connection
/// just closes. Shared by the server and fuzz/fuzz_http_request.cpp.
std::optional<Response> read_error_response(const boost::system::error_code& ec,
                                            const ServerOptions& options);

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, const Router& router,
         metrics::Registry& metrics);
  ~Server();

  /// Binds and starts accepting; throws StartupError when the address cannot be bound.
  void start();
  /// Stops accepting, closes idle connections; busy ones close after their response.
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  struct Connection;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> connection);

  boost::asio::io_context& io_;
  ServerOptions options_;
  const Router& router_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::list<std::weak_ptr<Connection>> connections_;
  bool stopping_ = false;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Histogram>& duration_;
  metrics::Gauge& open_connections_;
  metrics::Counter& rejected_connections_;
};

}  // namespace telemetryd::http
