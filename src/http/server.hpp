#pragma once
// The HTTP listener every role runs (health, readiness, metrics, the role's API), optionally over
// TLS. Connections are coroutines on the daemon's single io thread, which serialises them without
// explicit strands; every read has a deadline and a body limit. Plain and TLS connections share
// one request loop, templated on the stream type, so limits and errors cannot drift apart.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/router.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::http {

/// PEM files; see make_tls_context for the protocol settings.
struct TlsOptions {
  std::string cert_file;       // server certificate, optionally followed by its intermediates
  std::string key_file;        // unencrypted private key
  std::string client_ca_file;  // non-empty: clients must present a certificate signed by it
};

struct ServerOptions {
  /// Names the listener in logs ("main", "admin") and the key blamed in bind errors.
  std::string name = "main";
  std::string listen_key = "http.listen";
  std::string listen = "0.0.0.0:8000";
  std::chrono::milliseconds read_timeout{10000};  // also bounds the TLS handshake
  std::chrono::milliseconds write_timeout{10000};
  std::size_t body_limit = 1 << 20;
  std::size_t header_limit = 16 * 1024;
  std::size_t max_connections = 1024;
  std::optional<TlsOptions> tls;
};

/// TLS 1.2+ server context: ECDHE with AEAD ciphers for 1.2, no renegotiation, no compression.
/// Throws StartupError naming the file when a certificate or key cannot be used (an encrypted
/// key included: there is nobody to type its passphrase).
std::unique_ptr<boost::asio::ssl::context> make_tls_context(const TlsOptions& tls);
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
  /// `routers` are asked in order: the first that knows the request's path answers it; when none
  /// does, the first one answers (a JSON 404). Routers must outlive the server.
  Server(boost::asio::io_context& io, ServerOptions options, std::vector<const Router*> routers,
         metrics::Registry& metrics);
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
  template <typename Stream>
  struct StreamConnection;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve_plain(std::shared_ptr<Connection> connection);
  boost::asio::awaitable<void> serve_tls(std::shared_ptr<Connection> connection);
  /// The request loop. Returns true when the server ended the connection after a response
  /// (Connection: close, or stopping), i.e. the stream is still fit for a clean TLS shutdown.
  template <typename Stream>
  boost::asio::awaitable<bool> serve_requests(Stream& stream, Connection& connection);
  const Router& router_for(const Request& request) const;

  boost::asio::io_context& io_;
  ServerOptions options_;
  std::vector<const Router*> routers_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::list<std::weak_ptr<Connection>> connections_;
  bool stopping_ = false;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Histogram>& duration_;
  metrics::Gauge& open_connections_;
  metrics::Counter& rejected_connections_;
  metrics::Counter& handshake_failures_;
};

}  // namespace telemetryd::http
