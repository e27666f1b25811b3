#include "influx/influx_writer.hpp"

#include <simdjson.h>
#include <zlib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

#include "telemetryd/errors.hpp"

namespace telemetryd::influx {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kReplyBodyLimit = 16 << 20;  // scraped /metrics pages can be large

std::string base64(std::string_view in) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], kTable[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], '='};
  }
  return out;
}

std::string_view precision_param(Precision p) {
  return p == Precision::kMilliseconds ? "ms" : "ns";
}

}  // namespace

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out += {'%', kHex[u >> 4], kHex[u & 15]};
    }
  }
  return out;
}

std::optional<ParsedUrl> parse_url(std::string_view url, std::string& error) {
  ParsedUrl out;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else {
    error = "must start with http:// or https://";
    return std::nullopt;
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) out.base_path = std::string(rest.substr(slash));
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  if (out.base_path.find_first_of("?#") != std::string::npos) {
    error = "must not carry a query or fragment";
    return std::nullopt;
  }
  if (authority.find('@') != std::string_view::npos) {
    error = "must not carry credentials (use username/password or token)";
    return std::nullopt;
  }
  const auto colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    out.port = std::string(authority.substr(colon + 1));
    if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(out.port) == 0 || std::stoul(out.port) > 65535) {
      error = "invalid port '" + out.port + "'";
      return std::nullopt;
    }
  } else {
    out.host = std::string(authority);
    out.port = out.tls ? "443" : "80";
  }
  if (out.host.empty()) {
    error = "has no host";
    return std::nullopt;
  }
  return out;
}

std::string server_message(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (!parser.parse(body.data(), body.size()).get(obj)) {
    std::string_view text;
    if (!obj["error"].get(text) || !obj["message"].get(text)) return std::string(text);
  }
  std::string text(body.substr(0, 300));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

WriteVerdict classify_write(unsigned status, std::string_view message) {
  if (status == 200 || status == 204) return WriteVerdict::kOk;
  if (status == 0 || status == 429 || status >= 500) return WriteVerdict::kRetryable;
  if (status == 401 || status == 403 || status == 404) return WriteVerdict::kRetryable;
  if ((status == 400 || status == 422) && message.find("partial write") != std::string_view::npos)
    return WriteVerdict::kPartial;
  // Only answers about the points themselves refuse them (bad line protocol, too large, a field
  // type conflict); any other status is the server's condition, retried rather than taken for a
  // refusal of valid points.
  if (status == 400 || status == 413 || status == 422) return WriteVerdict::kPermanent;
  return WriteVerdict::kRetryable;
}

PartialWrite parse_partial_write(std::string_view message) {
  PartialWrite out;
  // field type conflict: input field "F" on measurement "M" is type T, already exists as type U
  constexpr std::string_view kField = "input field \"";
  constexpr std::string_view kOn = "\" on measurement \"";
  for (std::size_t pos = message.find(kField); pos != std::string_view::npos;
       pos = message.find(kField, pos + 1)) {
    const std::size_t f0 = pos + kField.size();
    const std::size_t f1 = message.find(kOn, f0);
    if (f1 == std::string_view::npos) break;
    const std::size_t m0 = f1 + kOn.size();
    const std::size_t m1 = message.find('"', m0);
    if (m1 == std::string_view::npos) break;
    out.type_conflicts.emplace_back(std::string(message.substr(m0, m1 - m0)),
                                    std::string(message.substr(f0, f1 - f0)));
  }
  // unable to parse 'LINE': reason   (one per bad line, joined with newlines)
  constexpr std::string_view kParse = "unable to parse '";
  for (std::size_t pos = message.find(kParse); pos != std::string_view::npos;
       pos = message.find(kParse, pos + 1)) {
    const std::size_t l0 = pos + kParse.size();
    const std::size_t l1 = message.find("': ", l0);
    if (l1 == std::string_view::npos) break;
    out.unparsable_lines.emplace_back(message.substr(l0, l1 - l0));
  }
  constexpr std::string_view kDropped = "dropped=";
  if (const auto d = message.rfind(kDropped); d != std::string_view::npos) {
    out.dropped =
        std::strtol(std::string(message.substr(d + kDropped.size())).c_str(), nullptr, 10);
  }
  out.other = out.type_conflicts.empty() && out.unparsable_lines.empty();
  return out;
}

std::string gzip_compress(std::string_view data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string();
}

// One connection, driven by a private io_context: every operation is asynchronous with the
// stream's own expiry (so each step has a timeout), and run() returns when it completes.
class InfluxWriter::Connection {
 public:
  Connection(const ParsedUrl& url, const std::string& ca_file, std::chrono::milliseconds timeout)
      : url_(url), timeout_(timeout), ssl_(asio::ssl::context::tls_client) {
    if (url_.tls) {
      ssl_.set_verify_mode(asio::ssl::verify_peer);
      beast::error_code ec;
      if (ca_file.empty()) {
        ssl_.set_default_verify_paths(ec);
      } else {
        ssl_.load_verify_file(ca_file, ec);
      }
      if (ec) throw StartupError("influxdb.ca_file: cannot load " + ca_file + ": " + ec.message());
    }
  }

  Result<Reply> exchange(bhttp::request<bhttp::string_body>& req) {
    const bool reused = connected_;
    if (!connected_) {
      if (auto c = connect(); !c) return c.error();
    }
    Result<Reply> reply = url_.tls ? round_trip(*tls_, req) : round_trip(*plain_, req);
    if (!reply && reused) {
      // The server may have closed an idle keep-alive connection: one fresh attempt (writes are
      // idempotent, so a repeat is harmless).
      close();
      if (auto c = connect(); !c) return c.error();
      reply = url_.tls ? round_trip(*tls_, req) : round_trip(*plain_, req);
    }
    if (!reply) close();
    return reply;
  }

  void close() {
    beast::error_code ignored;
    if (plain_) plain_->socket().close(ignored);
    if (tls_) beast::get_lowest_layer(*tls_).socket().close(ignored);
    plain_.reset();
    tls_.reset();
    buffer_.clear();
    connected_ = false;
  }

 private:
  std::string where() const { return "influxdb " + url_.host + ":" + url_.port; }

  void run() {
    io_.restart();
    io_.run();
  }

  Result<bool> connect() {
    close();
    beast::error_code ec;
    tcp::resolver resolver(io_);
    tcp::resolver::results_type endpoints;
    asio::steady_timer timer(io_, timeout_);
    bool resolved = false;
    resolver.async_resolve(url_.host, url_.port,
                           [&](beast::error_code e, tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                             resolved = true;
                             timer.cancel();
                           });
    timer.async_wait([&](beast::error_code e) {
      if (!e && !resolved) resolver.cancel();
    });
    run();
    if (ec) return Error::retryable(where() + ": resolve: " + ec.message());
    tcp::socket* socket = nullptr;
    if (url_.tls) {
      tls_.emplace(io_, ssl_);
      socket = &beast::get_lowest_layer(*tls_).socket();
    } else {
      plain_.emplace(io_);
      socket = &plain_->socket();
    }
    beast::tcp_stream& lowest = url_.tls ? beast::get_lowest_layer(*tls_) : *plain_;
    lowest.expires_after(timeout_);
    lowest.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) {
      close();
      return Error::retryable(where() + ": connect: " + ec.message());
    }
    socket->set_option(tcp::no_delay(true), ec);
    if (url_.tls) {
      if (!SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str())) {
        close();
        return Error::retryable(where() + ": cannot set TLS SNI");
      }
      tls_->set_verify_callback(asio::ssl::host_name_verification(url_.host));
      lowest.expires_after(timeout_);
      tls_->async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
      run();
      if (ec) {
        close();
        return Error::retryable(where() + ": TLS handshake: " + ec.message());
      }
    }
    connected_ = true;
    return true;
  }

  template <typename Stream>
  Result<Reply> round_trip(Stream& stream, bhttp::request<bhttp::string_body>& req) {
    beast::error_code ec;
    beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(timeout_);
    bhttp::async_write(stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    run();
    if (ec) return Error::retryable(where() + ": send: " + ec.message());
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kReplyBodyLimit);
    lowest.expires_after(timeout_);
    bhttp::async_read(stream, buffer_, parser, [&](beast::error_code e, std::size_t) { ec = e; });
    run();
    if (ec) return Error::retryable(where() + ": receive: " + ec.message());
    auto res = parser.release();
    if (!res.keep_alive()) close();
    return Reply{res.result_int(), std::move(res.body()),
                 std::string(res[bhttp::field::content_type])};
  }

  ParsedUrl url_;
  std::chrono::milliseconds timeout_;
  asio::io_context io_;
  asio::ssl::context ssl_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

InfluxWriter::InfluxWriter(WriterSettings settings) : settings_(std::move(settings)) {
  std::string error;
  auto url = parse_url(settings_.url, error);
  if (!url) throw StartupError("influxdb.url: " + error);
  url_ = *url;
  connection_ = std::make_unique<Connection>(url_, settings_.ca_file, settings_.timeout);
}

InfluxWriter::~InfluxWriter() = default;

std::string InfluxWriter::auth_header() const {
  if (settings_.api == Api::kV2) {
    return settings_.token.empty() ? std::string() : "Token " + settings_.token;
  }
  if (settings_.username.empty()) return {};
  return "Basic " + base64(settings_.username + ":" + settings_.password);
}

Result<Reply> InfluxWriter::send(std::string_view method, const std::string& target,
                                 std::string body, std::string_view content_type) {
  bhttp::request<bhttp::string_body> req;
  req.method(bhttp::string_to_verb(method));
  req.target(url_.base_path + target);
  req.version(11);
  req.set(bhttp::field::host, url_.host + ":" + url_.port);
  req.set(bhttp::field::user_agent, "telemetryd");
  req.keep_alive(true);
  if (const std::string auth = auth_header(); !auth.empty())
    req.set(bhttp::field::authorization, auth);
  if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
  if (settings_.gzip && body.size() > 0 && content_type.starts_with("text/plain")) {
    std::string compressed = gzip_compress(body);
    if (!compressed.empty()) {
      body = std::move(compressed);
      req.set(bhttp::field::content_encoding, "gzip");
    }
  }
  req.body() = std::move(body);
  req.prepare_payload();
  return connection_->exchange(req);
}

Result<Reply> InfluxWriter::write(std::string_view lines) {
  std::string target;
  if (settings_.api == Api::kV2) {
    target = "/api/v2/write?org=" + url_encode(settings_.org) +
             "&bucket=" + url_encode(settings_.bucket) +
             "&precision=" + std::string(precision_param(settings_.precision));
  } else {
    target = "/write?db=" + url_encode(settings_.database) +
             "&precision=" + std::string(precision_param(settings_.precision));
    if (!settings_.retention_policy.empty())
      target += "&rp=" + url_encode(settings_.retention_policy);
  }
  return send("POST", target, std::string(lines), "text/plain; charset=utf-8");
}

Result<Reply> InfluxWriter::query(std::string_view statement, std::string_view db) {
  std::string target = "/query";
  if (!db.empty()) target += "?db=" + url_encode(db);
  return send("POST", target, "q=" + url_encode(statement), "application/x-www-form-urlencoded");
}

Result<Reply> InfluxWriter::get(std::string_view path_and_query) {
  return send("GET", std::string(path_and_query), {}, {});
}

}  // namespace telemetryd::influx
