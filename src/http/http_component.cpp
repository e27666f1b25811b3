// Registers the HTTP listener as the `http` component with its `http:` config section: the main
// listener (optionally TLS, optionally requiring client certificates) and, when admin_listen is
// set, a second plain listener that alone serves the operator routes.

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <optional>
#include <sstream>

#include "http/server.hpp"
#include "telemetryd/component.hpp"

namespace telemetryd::http {
namespace {

class HttpComponent final : public Component {
 public:
  explicit HttpComponent(ComponentContext& ctx)
      : main_(ctx.io, main_options(ctx.config), main_routers(ctx), ctx.metrics) {
    if (!ctx.config.str("http.admin_listen").empty()) {
      admin_.emplace(ctx.io, admin_options(ctx.config),
                     std::vector<const Router*>{&ctx.admin_router}, ctx.metrics);
    }
  }
  void start() override {
    main_.start();
    if (admin_) admin_->start();
  }
  void stop() override {
    main_.stop();
    if (admin_) admin_->stop();
  }

 private:
  static std::vector<const Router*> main_routers(ComponentContext& ctx) {
    if (!ctx.config.str("http.admin_listen").empty()) return {&ctx.router};
    return {&ctx.router, &ctx.admin_router};
  }
  static ServerOptions common_options(const Config& config) {
    ServerOptions options;
    options.read_timeout = std::chrono::milliseconds(config.integer("http.read_timeout_ms"));
    options.write_timeout = std::chrono::milliseconds(config.integer("http.write_timeout_ms"));
    options.body_limit = static_cast<std::size_t>(config.integer("http.body_limit_bytes"));
    options.max_connections = static_cast<std::size_t>(config.integer("http.max_connections"));
    return options;
  }
  static ServerOptions main_options(const Config& config) {
    ServerOptions options = common_options(config);
    options.listen = config.str("http.listen");
    if (!config.str("http.tls_cert_file").empty()) {
      options.tls = TlsOptions{.cert_file = config.str("http.tls_cert_file"),
                               .key_file = config.str("http.tls_key_file"),
                               .client_ca_file = config.str("http.tls_client_ca_file")};
    }
    return options;
  }
  static ServerOptions admin_options(const Config& config) {
    ServerOptions options = common_options(config);
    options.name = "admin";
    options.listen_key = "http.admin_listen";
    options.listen = config.str("http.admin_listen");
    return options;
  }

  Server main_;
  std::optional<Server> admin_;
};

// An encrypted key would make OpenSSL prompt for a passphrase at start; refusing it here turns
// that into a config error with the key's line, which check-config also reports.
std::optional<std::string> check_key_file(std::string_view text) {
  if (auto problem = check_readable_file(text)) return problem;
  if (text.empty()) return std::nullopt;
  std::ifstream in{std::string(text)};
  std::stringstream content;
  content << in.rdbuf();
  const std::string pem = content.str();
  if (pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string::npos ||
      pem.find("Proc-Type: 4,ENCRYPTED") != std::string::npos) {
    return "the private key is encrypted; passphrase-protected keys are not supported";
  }
  return std::nullopt;
}

void check_http_section(const Config& config, KeyProblems& problems) {
  const bool cert = !config.str("http.tls_cert_file").empty();
  const bool key = !config.str("http.tls_key_file").empty();
  if (cert && !key) {
    problems.add("http.tls_cert_file", "is set but http.tls_key_file is not",
                 "TLS needs both the certificate and its key, or neither");
  } else if (key && !cert) {
    problems.add("http.tls_key_file", "is set but http.tls_cert_file is not",
                 "TLS needs both the certificate and its key, or neither");
  }
  if (!cert && !config.str("http.tls_client_ca_file").empty()) {
    problems.add("http.tls_client_ca_file", "client certificates need TLS on the listener",
                 "set http.tls_cert_file and http.tls_key_file too");
  }
  const std::string& admin = config.str("http.admin_listen");
  // Port 0 (an ephemeral port each) never clashes.
  if (!admin.empty() && admin == config.str("http.listen") && !admin.ends_with(":0")) {
    problems.add("http.admin_listen", "is the same address as http.listen",
                 "give the admin listener its own port, or leave it empty");
  }
}

const ComponentRegistration kRegistration{
    {"http",
     {"http",
      "HTTP listener for /health, /ready, /metrics and the role's API.",
      {
          {.name = "listen",
           .description = "Address and port to listen on.",
           .default_value = "0.0.0.0:8000",
           .check = check_host_port,
           .hint = "host:port, e.g. 127.0.0.1:8000"},
          {.name = "read_timeout_ms",
           .type = ValueType::kInt,
           .description = "Time allowed for a whole request to arrive, idle keep-alive and the "
                          "TLS handshake included.",
           .default_value = "10000",
           .min = 100,
           .max = 600000},
          {.name = "write_timeout_ms",
           .type = ValueType::kInt,
           .description = "Time allowed to write a response.",
           .default_value = "10000",
           .min = 100,
           .max = 600000},
          {.name = "body_limit_bytes",
           .type = ValueType::kInt,
           .description = "Largest request body accepted; larger ones get 413.",
           .default_value = "1048576",
           .min = 0,
           .max = 268435456},
          {.name = "max_connections",
           .type = ValueType::kInt,
           .description = "Connections open at once, per listener; more are closed on accept.",
           .default_value = "1024",
           .min = 1,
           .max = 100000},
          {.name = "tls_cert_file",
           .description = "Server certificate (PEM, leaf first, then intermediates); with "
                          "tls_key_file, http.listen serves HTTPS only (TLS 1.2 and 1.3).",
           .default_value = "",
           .check = check_readable_file,
           .hint = "a readable PEM file"},
          {.name = "tls_key_file",
           .description = "Private key of tls_cert_file (PEM, not passphrase-protected).",
           .default_value = "",
           .check = check_key_file,
           .hint = "a readable, unencrypted PEM key (openssl pkey -in KEY -out PLAIN_KEY)"},
          {.name = "tls_client_ca_file",
           .description = "CA certificates (PEM); when set, clients must present a certificate "
                          "signed by one of them (mutual TLS).",
           .default_value = "",
           .check = check_readable_file,
           .hint = "a readable PEM file"},
          {.name = "admin_listen",
           .description = "Address and port of a plain-HTTP listener for /health, /ready and "
                          "/metrics, which then leave http.listen; empty: they stay there.",
           .default_value = "",
           .check = check_optional_host_port,
           .hint = "host:port, e.g. 127.0.0.1:9100, or empty"},
      },
      check_http_section},
     [](ComponentContext& ctx) { return std::make_unique<HttpComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::http
