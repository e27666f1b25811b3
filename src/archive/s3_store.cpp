#include "archive/s3_store.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <optional>

#include "telemetryd/errors.hpp"

namespace telemetryd::archive {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::string xml_unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out.push_back(text[i]);
      continue;
    }
    const auto end = text.find(';', i);
    if (end == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    const std::string_view entity = text.substr(i + 1, end - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (!entity.empty() && entity[0] == '#') {
      unsigned int code = 0;
      const bool hex = entity.size() > 1 && (entity[1] == 'x' || entity[1] == 'X');
      const std::string_view digits = entity.substr(hex ? 2 : 1);
      const auto parsed =
          std::from_chars(digits.data(), digits.data() + digits.size(), code, hex ? 16 : 10);
      if (parsed.ec != std::errc() || code > 0x10FFFF) {
        out.append(text.substr(i, end - i + 1));
      } else if (code < 0x80) {
        out.push_back(static_cast<char>(code));
      } else if (code < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (code >> 6)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
      } else if (code < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (code >> 12)));
        out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (code >> 18)));
        out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
      }
    } else {
      out.append(text.substr(i, end - i + 1));
    }
    i = end;
  }
  return out;
}

// The text of the first <tag>...</tag> at or after `from`; `from` moves past it.
std::optional<std::string_view> element(std::string_view xml, std::string_view tag,
                                        std::size_t& from) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const auto start = xml.find(open, from);
  if (start == std::string_view::npos) return std::nullopt;
  const auto body = start + open.size();
  const auto end = xml.find(close, body);
  if (end == std::string_view::npos) return std::nullopt;
  from = end + close.size();
  return xml.substr(body, end - body);
}

std::optional<std::string_view> element(std::string_view xml, std::string_view tag) {
  std::size_t from = 0;
  return element(xml, tag, from);
}

bool retryable_code(std::string_view code) {
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
         code == "ServiceUnavailable" || code == "Throttling" || code == "ThrottlingException" ||
         code == "RequestTimeTooSkewed" || code == "OperationAborted";
}

std::string host_header(const S3Endpoint& endpoint) {
  const bool default_port =
      (endpoint.tls && endpoint.port == 443) || (!endpoint.tls && endpoint.port == 80);
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  std::string host = ipv6 ? "[" + endpoint.host + "]" : endpoint.host;
  return default_port ? host : host + ":" + std::to_string(endpoint.port);
}

Error transport_error(const beast::error_code& ec, std::string_view stage, std::string_view what) {
  std::string message = std::string(what) + ": " + std::string(stage) + " failed: " +
                        (ec == beast::error::timeout ? std::string("timed out") : ec.message());
  return Error::retryable(std::move(message));
}

}  // namespace

bool parse_endpoint(std::string_view text, S3Endpoint& out, std::string& error) {
  S3Endpoint endpoint;
  std::string_view rest;
  if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else if (text.rfind("https://", 0) == 0) {
    endpoint.tls = true;
    rest = text.substr(8);
  } else {
    error = "expected http://host:port or https://host:port";
    return false;
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos ||
      rest.find('?') != std::string_view::npos || rest.find('@') != std::string_view::npos) {
    error = "expected scheme://host[:port] without path, query or user";
    return false;
  }
  std::string_view host = rest;
  std::string_view port;
  if (rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated [IPv6] address";
      return false;
    }
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "expected :port after ]";
        return false;
      }
      port = after.substr(1);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) {
    error = "missing host";
    return false;
  }
  endpoint.host = std::string(host);
  endpoint.port = endpoint.tls ? 443 : 80;
  if (!port.empty()) {
    unsigned int value = 0;
    const auto parsed = std::from_chars(port.data(), port.data() + port.size(), value);
    if (parsed.ec != std::errc() || parsed.ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      error = "port must be 1-65535";
      return false;
    }
    endpoint.port = static_cast<std::uint16_t>(value);
  }
  out = std::move(endpoint);
  return true;
}

Error classify_s3_error(int status, std::string_view body, std::string_view what) {
  const std::string code = xml_unescape(element(body, "Code").value_or(""));
  const std::string message = xml_unescape(element(body, "Message").value_or(""));
  std::string text = std::string(what) + ": HTTP " + std::to_string(status);
  if (!code.empty()) text += " " + code;
  if (!message.empty()) text += " (" + message + ")";
  // A 5xx or a throttle is the server's state, not the request's: the same bytes may pass
  // later. Every other 4xx (credentials, bucket, malformed request) needs someone to act.
  const bool retryable = status >= 500 || status == 429 || status == 408 || retryable_code(code);
  return retryable ? Error::retryable(std::move(text)) : Error::permanent(std::move(text));
}

Result<ListPage> parse_list_objects_v2(std::string_view xml) {
  if (xml.find("<ListBucketResult") == std::string_view::npos) {
    return Error::permanent("list: the answer is not a ListBucketResult");
  }
  ListPage page;
  std::size_t from = 0;
  while (const auto contents = element(xml, "Contents", from)) {
    ObjectInfo object;
    const auto key = element(*contents, "Key");
    if (!key) return Error::permanent("list: <Contents> without <Key>");
    object.key = xml_unescape(*key);
    if (const auto size = element(*contents, "Size")) {
      std::from_chars(size->data(), size->data() + size->size(), object.size);
    }
    page.objects.push_back(std::move(object));
  }
  if (element(xml, "IsTruncated").value_or("false") == "true") {
    const auto token = element(xml, "NextContinuationToken");
    if (!token || token->empty()) {
      return Error::permanent("list: truncated answer without NextContinuationToken");
    }
    page.next_token = xml_unescape(*token);
  }
  return page;
}

struct S3Store::Impl {
  asio::io_context io;
  asio::ssl::context tls{asio::ssl::context::tls_client};
};

S3Store::S3Store(S3Settings settings)
    : settings_(std::move(settings)), impl_(std::make_unique<Impl>()) {
  settings_.credentials.service = "s3";
  if (settings_.endpoint.tls) {
    impl_->tls.set_verify_mode(asio::ssl::verify_peer);
    impl_->tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (settings_.ca_file.empty()) {
      impl_->tls.set_default_verify_paths(ec);
    } else {
      impl_->tls.load_verify_file(settings_.ca_file, ec);
    }
    if (ec) {
      throw StartupError(
          "archive.s3.ca_file: cannot load " +
          (settings_.ca_file.empty() ? std::string("system CA paths") : settings_.ca_file) + ": " +
          ec.message());
    }
  }
}

S3Store::~S3Store() = default;

std::string S3Store::describe() const {
  return "s3://" + settings_.bucket + " at " + (settings_.endpoint.tls ? "https://" : "http://") +
         host_header(settings_.endpoint);
}

namespace {

using Request = bhttp::request<bhttp::string_body>;
using Parser = bhttp::response_parser<bhttp::string_body>;

// Sends one request and reads one response on a connected (and, for TLS, handshaken) stream.
template <typename Stream>
asio::awaitable<void> send_receive(Stream& stream, beast::tcp_stream& lowest,
                                   std::chrono::milliseconds timeout, Request& request,
                                   Parser& parser, beast::error_code& error,
                                   std::string_view& stage) {
  lowest.expires_after(timeout);
  stage = "write";
  auto [write_ec, written] = co_await bhttp::async_write(stream, request, kNoThrow);
  (void)written;
  if (write_ec) {
    error = write_ec;
    co_return;
  }
  stage = "read";
  beast::flat_buffer buffer;
  auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  (void)read;
  error = read_ec;
}

struct Exchange {
  const S3Settings& settings;
  asio::ssl::context& tls;
  Request& request;
  Parser& parser;
  beast::error_code error;
  std::string_view stage = "resolve";
  bool done = false;

  asio::awaitable<void> run() {
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    const std::string port = std::to_string(settings.endpoint.port);
    auto [resolve_ec, endpoints] =
        co_await resolver.async_resolve(settings.endpoint.host, port, kNoThrow);
    if (resolve_ec) {
      error = resolve_ec;
      done = true;
      co_return;
    }
    if (settings.endpoint.tls) {
      beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
      beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
      // SNI and host-name verification: without them any valid certificate would pass.
      if (!SSL_set_tlsext_host_name(stream.native_handle(), settings.endpoint.host.c_str())) {
        error =
            beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
        stage = "TLS setup";
        done = true;
        co_return;
      }
      stream.set_verify_callback(asio::ssl::host_name_verification(settings.endpoint.host));
      lowest.expires_after(settings.connect_timeout);
      stage = "connect";
      auto [connect_ec, connected] = co_await lowest.async_connect(endpoints, kNoThrow);
      (void)connected;
      if (connect_ec) {
        error = connect_ec;
        done = true;
        co_return;
      }
      stage = "TLS handshake";
      auto [handshake_ec] =
          co_await stream.async_handshake(asio::ssl::stream_base::client, kNoThrow);
      if (handshake_ec) {
        error = handshake_ec;
        done = true;
        co_return;
      }
      co_await send_receive(stream, lowest, settings.request_timeout, request, parser, error,
                            stage);
      beast::error_code ignored;
      lowest.socket().close(ignored);
    } else {
      beast::tcp_stream stream(executor);
      stream.expires_after(settings.connect_timeout);
      stage = "connect";
      auto [connect_ec, connected] = co_await stream.async_connect(endpoints, kNoThrow);
      (void)connected;
      if (connect_ec) {
        error = connect_ec;
        done = true;
        co_return;
      }
      co_await send_receive(stream, stream, settings.request_timeout, request, parser, error,
                            stage);
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream.socket().close(ignored);
    }
    done = true;
  }
};

}  // namespace

Result<S3Store::Response> S3Store::exchange(const std::string& method, const std::string& path,
                                            std::vector<std::pair<std::string, std::string>> query,
                                            std::string_view body, const std::string& what) {
  const std::string date = amz_date(std::chrono::system_clock::now());
  const std::string payload_hash = sha256_hex(body);
  const std::string host = host_header(settings_.endpoint);
  SigV4Request to_sign{
      method,
      path,
      query,
      {{"host", host}, {"x-amz-content-sha256", payload_hash}, {"x-amz-date", date}},
      payload_hash};
  const SigV4Result signature = sign_v4(settings_.credentials, to_sign, date);

  std::string target = uri_encode(path, false);
  const std::string query_text = canonical_query(std::move(query));
  if (!query_text.empty()) target += "?" + query_text;
  Request request{bhttp::string_to_verb(method), target, 11};
  request.set(bhttp::field::host, host);
  request.set(bhttp::field::user_agent, "telemetryd-archive");
  request.set("x-amz-date", date);
  request.set("x-amz-content-sha256", payload_hash);
  request.set(bhttp::field::authorization, signature.authorization);
  if (method == "PUT") {
    request.set(bhttp::field::content_type, "application/gzip");
    request.body().assign(body.data(), body.size());
  }
  request.prepare_payload();

  Parser parser;
  parser.body_limit(settings_.max_object_bytes);
  parser.header_limit(64 * 1024);
  Exchange exchange{settings_, impl_->tls, request, parser};
  impl_->io.restart();
  asio::co_spawn(impl_->io, exchange.run(), asio::detached);
  impl_->io.run();
  if (exchange.error || !exchange.done) {
    if (exchange.stage == "TLS handshake" || exchange.stage == "TLS setup") {
      // A certificate the CA file does not vouch for will not start vouching on a retry.
      if (exchange.error.category() == asio::error::get_ssl_category()) {
        return Error::permanent(what + ": " + std::string(exchange.stage) +
                                " failed: " + exchange.error.message());
      }
    }
    return transport_error(exchange.error, exchange.stage, what);
  }
  Response response;
  response.status = static_cast<int>(parser.get().result_int());
  response.body = std::move(parser.get().body());
  return response;
}

Result<bool> S3Store::put(const std::string& key, std::string_view bytes) {
  if (!valid_key(key)) return Error::permanent("invalid archive key '" + key + "'");
  const std::string what = "PUT " + key;
  Result<Response> response = exchange("PUT", "/" + settings_.bucket + "/" + key, {}, bytes, what);
  if (!response) return response.error();
  if (response->status / 100 != 2) {
    return classify_s3_error(response->status, response->body, what);
  }
  return true;
}

Result<ListPage> S3Store::list(const std::string& prefix, const std::string& token, int max_keys) {
  std::vector<std::pair<std::string, std::string>> query{
      {"list-type", "2"}, {"prefix", prefix}, {"max-keys", std::to_string(max_keys)}};
  if (!token.empty()) query.emplace_back("continuation-token", token);
  const std::string what = "LIST " + prefix;
  Result<Response> response = exchange("GET", "/" + settings_.bucket, std::move(query), {}, what);
  if (!response) return response.error();
  if (response->status / 100 != 2) {
    return classify_s3_error(response->status, response->body, what);
  }
  return parse_list_objects_v2(response->body);
}

Result<std::string> S3Store::get(const std::string& key) {
  if (!valid_key(key)) return Error::permanent("invalid archive key '" + key + "'");
  const std::string what = "GET " + key;
  Result<Response> response = exchange("GET", "/" + settings_.bucket + "/" + key, {}, {}, what);
  if (!response) return response.error();
  if (response->status / 100 != 2) {
    return classify_s3_error(response->status, response->body, what);
  }
  return std::move(response->body);
}

}  // namespace telemetryd::archive
