#include "support/tls_client.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace test_support {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

TlsResult https_get(int port, const std::string& target, const TlsClientOptions& options) {
  return https_request(port, "GET", target, {}, {}, {}, options);
}

TlsResult https_request(int port, const std::string& method, const std::string& target,
                        const std::string& body, const std::string& content_type,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        const TlsClientOptions& options) {
  TlsResult result;
  try {
    asio::io_context io;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    SSL_CTX* native = ctx.native_handle();
    if (options.min_version != 0) SSL_CTX_set_min_proto_version(native, options.min_version);
    if (options.max_version != 0) {
      SSL_CTX_set_max_proto_version(native, options.max_version);
      // OpenSSL 3 refuses TLS < 1.2 at the default security level before sending anything;
      // level 0 makes the client really offer the old version, so the server is what refuses.
      if (options.max_version < TLS1_2_VERSION)
        SSL_CTX_set_cipher_list(native, "DEFAULT:@SECLEVEL=0");
    }
    if (!options.ciphers.empty()) SSL_CTX_set_cipher_list(native, options.ciphers.c_str());
    if (!options.ca_file.empty()) {
      ctx.load_verify_file(options.ca_file);
      ctx.set_verify_mode(asio::ssl::verify_peer);
    } else {
      ctx.set_verify_mode(asio::ssl::verify_none);
    }
    if (!options.cert_file.empty()) {
      ctx.use_certificate_chain_file(options.cert_file);
      ctx.use_private_key_file(options.key_file, asio::ssl::context::pem);
    }
    asio::ssl::stream<tcp::socket> stream(io, ctx);
    if (!options.ca_file.empty()) {
      SSL_set1_host(stream.native_handle(), "127.0.0.1");
    }
    stream.next_layer().connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    timeval tv{options.timeout_ms / 1000, (options.timeout_ms % 1000) * 1000};
    setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    stream.handshake(asio::ssl::stream_base::client);
    result.handshake_ok = true;
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
    for (const auto& [name, value] : headers) req.set(name, value);
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream, req);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buffer, res);
    result.status = res.result_int();
    result.body = res.body();
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

}  // namespace test_support
