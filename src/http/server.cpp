#include "http/server.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <stdexcept>

#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The request loop only needs the stream; stop() only needs the TCP layer under it.
struct Server::Connection {
  virtual ~Connection() = default;
  virtual beast::tcp_stream& tcp() = 0;
  bool busy = false;  // between a complete request and the end of its response
};

template <typename Stream>
struct Server::StreamConnection final : Server::Connection {
  template <typename... Args>
  explicit StreamConnection(Args&&... args) : stream(std::forward<Args>(args)...) {}
  beast::tcp_stream& tcp() override { return beast::get_lowest_layer(stream); }
  Stream stream;
};

namespace {

// Mozilla's "intermediate" TLS 1.2 list without the DHE suites: forward secrecy and AEAD only.
// TLS 1.3 suites are OpenSSL's defaults, all AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  std::string out;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    out += (out.empty() ? "" : "; ") + std::string(text);
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

// Called by OpenSSL when the key needs a passphrase: note it and refuse, so the daemon never
// waits on a terminal prompt.
int refuse_passphrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

void load_private_key(SSL_CTX* native, const std::string& file) {
  const std::unique_ptr<BIO, BioDeleter> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) throw StartupError("http.tls_key_file: cannot open " + file + ": " + openssl_error());
  bool asked = false;
  const std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, &asked));
  if (!key) {
    if (asked) {
      ERR_clear_error();
      throw StartupError("http.tls_key_file: " + file +
                         " is encrypted; passphrase-protected keys are not supported (decrypt "
                         "it with `openssl pkey -in KEY -out PLAIN_KEY` and restrict the file's "
                         "permissions instead)");
    }
    throw StartupError("http.tls_key_file: " + file +
                       " holds no PEM private key: " + openssl_error());
  }
  if (X509* cert = SSL_CTX_get0_certificate(native);
      cert != nullptr && X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    throw StartupError("http.tls_key_file: " + file +
                       " does not match the certificate in http.tls_cert_file");
  }
  if (SSL_CTX_use_PrivateKey(native, key.get()) != 1) {
    throw StartupError("http.tls_key_file: " + file + " cannot be used: " + openssl_error());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw StartupError("http.tls_key_file: " + file +
                       " does not match the certificate in http.tls_cert_file: " + openssl_error());
  }
}

}  // namespace

std::unique_ptr<asio::ssl::context> make_tls_context(const TlsOptions& tls) {
  ERR_clear_error();
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    throw StartupError("http: cannot require TLS 1.2: " + openssl_error());
  }
  // Renegotiation and compression are attack surface (CRIME, renegotiation DoS) with no use
  // for a telemetry API; the server's cipher order wins so weak client preferences do not.
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    throw StartupError("http: cipher list rejected by OpenSSL: " + openssl_error());
  }
  if (SSL_CTX_use_certificate_chain_file(native, tls.cert_file.c_str()) != 1) {
    throw StartupError("http.tls_cert_file: " + tls.cert_file +
                       " holds no usable PEM certificate: " + openssl_error());
  }
  load_private_key(native, tls.key_file);
  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(native, tls.client_ca_file.c_str(), nullptr) != 1) {
      throw StartupError("http.tls_client_ca_file: " + tls.client_ca_file +
                         " holds no usable PEM CA certificate: " + openssl_error());
    }
    // Tells clients which CAs are accepted, so one with several certificates picks the right one.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(native, names);
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // Resumed sessions must carry a context id when peers are verified, or OpenSSL fails them.
  static constexpr unsigned char kSessionContext[] = "telemetryd-http";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  return context;
}

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
    : Server(io, std::move(options), std::vector<const Router*>{&router}, metrics) {}

Server::Server(asio::io_context& io, ServerOptions options, std::vector<const Router*> routers,
               metrics::Registry& metrics)
    : io_(io),
      options_(std::move(options)),
      routers_(std::move(routers)),
      tls_(options_.tls ? make_tls_context(*options_.tls) : nullptr),
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
                                .with({})),
      handshake_failures_(metrics
                              .counter("http_tls_handshake_failures_total",
                                       "TLS handshakes that failed or timed out (plaintext on "
                                       "the TLS port, refused client certificates, old "
                                       "protocol versions).")
                              .with({})) {
  if (routers_.empty()) throw std::logic_error("http::Server needs at least one router");
}

Server::~Server() = default;

void Server::start() {
  const auto colon = options_.listen.rfind(':');
  std::string host = options_.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const auto port = static_cast<unsigned short>(std::stoul(options_.listen.substr(colon + 1)));
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec)
    throw StartupError(options_.listen_key + ": '" + host +
                       "' is not an IP address: " + ec.message());
  const tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw StartupError(options_.listen_key + ": cannot listen on " + options_.listen + ": " +
                       ec.message());
  }
  const auto bound = acceptor_.local_endpoint();
  log::info("http", "listening",
            {{"address", bound.address().to_string()},
             {"port", bound.port()},
             {"listener", options_.name},
             {"tls", tls_ != nullptr},
             {"client_certificates", options_.tls && !options_.tls->client_ca_file.empty()}});
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void Server::stop() {
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (const auto& weak : connections_) {
    if (auto connection = weak.lock(); connection && !connection->busy) {
      connection->tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
      connection->tcp().close();
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
      rejected_connections_.Increment();
      socket.close(ec);
      continue;
    }
    if (tls_) {
      std::shared_ptr<Connection> connection =
          std::make_shared<StreamConnection<TlsStream>>(std::move(socket), *tls_);
      connections_.push_back(connection);
      asio::co_spawn(io_, serve_tls(std::move(connection)), asio::detached);
    } else {
      std::shared_ptr<Connection> connection =
          std::make_shared<StreamConnection<beast::tcp_stream>>(std::move(socket));
      connections_.push_back(connection);
      asio::co_spawn(io_, serve_plain(std::move(connection)), asio::detached);
    }
  }
}

const Router& Server::router_for(const Request& request) const {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  for (const Router* router : routers_) {
    if (router->has_path(path)) return *router;
  }
  return *routers_.front();
}

asio::awaitable<void> Server::serve_plain(std::shared_ptr<Connection> connection) {
  open_connections_.Increment();
  auto& stream = static_cast<StreamConnection<beast::tcp_stream>&>(*connection).stream;
  co_await serve_requests(stream, *connection);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
  open_connections_.Decrement();
}

asio::awaitable<void> Server::serve_tls(std::shared_ptr<Connection> connection) {
  open_connections_.Increment();
  auto& stream = static_cast<StreamConnection<TlsStream>&>(*connection).stream;
  // A client that connects and sends nothing (or plaintext, or trickles a ClientHello) holds a
  // connection slot; the read deadline bounds that like an idle keep-alive.
  connection->tcp().expires_after(options_.read_timeout);
  auto [handshake_ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (handshake_ec) {
    handshake_failures_.Increment();
    boost::system::error_code peer_ec;
    const auto peer = connection->tcp().socket().remote_endpoint(peer_ec);
    const std::string peer_text = peer_ec ? std::string("unknown") : peer.address().to_string();
    const std::string reason = handshake_ec.message();
    log::debug("http", "TLS handshake failed",
               {{"listener", options_.name}, {"peer", peer_text}, {"error", reason}});
  } else {
    const bool clean = co_await serve_requests(stream, *connection);
    if (clean) {
      // close_notify tells the client the response was complete, not truncated.
      connection->tcp().expires_after(options_.write_timeout);
      auto [shutdown_ec] = co_await stream.async_shutdown(kTuple);
      (void)shutdown_ec;  // the peer closing without its own close_notify is normal
    }
  }
  boost::system::error_code ignored;
  connection->tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  connection->tcp().close();
  open_connections_.Decrement();
}

template <typename Stream>
asio::awaitable<bool> Server::serve_requests(Stream& stream, Connection& connection) {
  beast::flat_buffer buffer;
  auto& tcp_layer = beast::get_lowest_layer(stream);
  bool clean = true;
  while (!stopping_) {
    RequestParser parser;
    limit_parser(parser, options_);
    tcp_layer.expires_after(options_.read_timeout);
    auto [read_ec, bytes] = co_await beast_http::async_read(stream, buffer, parser, kTuple);
    (void)bytes;
    Response response;
    std::string route = "unmatched";
    const auto started = std::chrono::steady_clock::now();
    bool keep_alive = false;
    if (read_ec) {
      auto error_response = read_error_response(read_ec, options_);
      if (!error_response) {
        clean = false;
        break;
      }
      response = std::move(*error_response);
    } else {
      connection.busy = true;
      const Request& request = parser.get();
      keep_alive = request.keep_alive();
      response = co_await router_for(request).dispatch(request, route);
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
    requests_.with({route, method, std::to_string(code)}).Increment();
    tcp_layer.expires_after(options_.write_timeout);
    auto [write_ec, written] = co_await beast_http::async_write(stream, response, kTuple);
    (void)written;
    connection.busy = false;
    duration_.with({route}).Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (write_ec) {
      clean = false;
      break;
    }
    if (!keep_alive || read_ec) break;
  }
  co_return clean;
}

}  // namespace telemetryd::http
