// TLS on the HTTP listener with real sockets on 127.0.0.1: server verification, refused
// plaintext and old protocols, client certificates, the admin listener, and the daemon's
// startup and config errors through the real binary.

#include <openssl/ssl.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "http/router.hpp"
#include "http/server.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/test_certs.hpp"
#include "support/tls_client.hpp"
#include "telemetryd/errors.hpp"

using namespace telemetryd;
using namespace std::chrono_literals;
namespace bhttp = boost::beast::http;

namespace {

const test_support::TestCerts& certs() {
  static const test_support::TestCerts instance;
  return instance;
}

boost::asio::awaitable<http::Response> hello(const http::RequestContext&) {
  co_return http::json_response(bhttp::status::ok, "{\"hello\":\"world\"}");
}
boost::asio::awaitable<http::Response> admin_health(const http::RequestContext&) {
  co_return http::json_response(bhttp::status::ok, "{\"status\":\"alive\"}");
}

// A real server on an ephemeral port with its io loop on its own thread. `with_admin` chains an
// admin router behind the public one, as the daemon does when http.admin_listen is empty.
struct RunningServer {
  boost::asio::io_context io;
  http::Router router;
  http::Router admin;
  metrics::Registry registry;
  std::unique_ptr<http::Server> server;
  std::thread thread;
  int port = 0;

  RunningServer(std::optional<http::TlsOptions> tls, bool with_admin) {
    router.add(bhttp::verb::get, "/hello", hello);
    admin.add(bhttp::verb::get, "/health", admin_health);
    http::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.read_timeout = 300ms;
    options.tls = std::move(tls);
    std::vector<const http::Router*> routers{&router};
    if (with_admin) routers.push_back(&admin);
    server = std::make_unique<http::Server>(io, std::move(options), routers, registry);
    server->start();
    port = server->local_endpoint().port();
    thread = std::thread([this] { io.run(); });
  }
  ~RunningServer() {
    boost::asio::post(io, [this] { server->stop(); });
    thread.join();
  }

  // The server counts a failure after it has sent its alert, so the client may see the refusal
  // first: wait (bounded) for the count to reach `expected`, return what it is.
  int handshake_failures_reaching(int expected) const {
    int value = -1;
    for (int i = 0; i < 100; ++i) {
      const std::string text = registry.expose();
      const std::string name = "http_tls_handshake_failures_total ";
      const auto at = text.find("\n" + name);
      value = at == std::string::npos ? -1 : std::atoi(text.c_str() + at + 1 + name.size());
      if (value >= expected) break;
      std::this_thread::sleep_for(20ms);
    }
    return value;
  }
};

http::TlsOptions server_tls(bool client_certificates = false) {
  return {.cert_file = certs().server_cert,
          .key_file = certs().server_key,
          .client_ca_file = client_certificates ? certs().ca_cert : std::string()};
}

test_support::TlsClientOptions verified() {
  return {.ca_file = certs().ca_cert};
}

}  // namespace

TEST_CASE("HTTPS serves routes to a client that verifies the server with the CA", "[http][tls]") {
  RunningServer s(server_tls(), false);
  const auto ok = test_support::https_get(s.port, "/hello", verified());
  INFO(ok.error);
  CHECK(ok.handshake_ok);
  CHECK(ok.status == 200);
  CHECK(ok.body == "{\"hello\":\"world\"}\n");

  const auto missing = test_support::https_get(s.port, "/nope", verified());
  CHECK(missing.status == 404);
  CHECK(missing.body.find("\"code\":\"not_found\"") != std::string::npos);

  SECTION("TLS 1.2 with an ECDHE AEAD suite works too") {
    auto options = verified();
    options.max_version = TLS1_2_VERSION;
    const auto res = test_support::https_get(s.port, "/hello", options);
    INFO(res.error);
    CHECK(res.status == 200);
  }
  SECTION("a client that does not trust the CA refuses the server") {
    auto options = verified();
    options.ca_file = certs().other_ca_cert;
    const auto res = test_support::https_get(s.port, "/hello", options);
    CHECK_FALSE(res.handshake_ok);
    CHECK(res.status == 0);
  }
  CHECK(s.handshake_failures_reaching(0) >= 0);  // the family exists on a TLS listener
}

TEST_CASE("plaintext HTTP on the TLS port gets no HTTP response; the server keeps serving",
          "[http][tls]") {
  RunningServer s(server_tls(), false);
  const std::string reply =
      test_support::raw_exchange(s.port, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 3000);
  CHECK(reply.rfind("HTTP/", 0) == std::string::npos);
  CHECK(s.handshake_failures_reaching(1) == 1);

  // A client that connects and says nothing is dropped by the handshake deadline.
  const std::string silent = test_support::raw_exchange(s.port, "", 5000);
  CHECK(silent.empty());
  CHECK(s.handshake_failures_reaching(2) == 2);

  const auto res = test_support::https_get(s.port, "/hello", verified());
  INFO(res.error);
  CHECK(res.status == 200);
}

TEST_CASE("TLS 1.1 and TLS 1.2 without AEAD are refused", "[http][tls]") {
  RunningServer s(server_tls(), false);
  auto old = verified();
  old.min_version = TLS1_1_VERSION;
  old.max_version = TLS1_1_VERSION;
  const auto tls11 = test_support::https_get(s.port, "/hello", old);
  CHECK_FALSE(tls11.handshake_ok);
  CHECK(tls11.status == 0);
  // Counted by the server: the refusal came from it, not from the client's own policy.
  CHECK(s.handshake_failures_reaching(1) == 1);

  auto cbc = verified();
  cbc.max_version = TLS1_2_VERSION;
  cbc.ciphers = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384";
  const auto weak = test_support::https_get(s.port, "/hello", cbc);
  CHECK_FALSE(weak.handshake_ok);
  CHECK(s.handshake_failures_reaching(2) == 2);

  CHECK(test_support::https_get(s.port, "/hello", verified()).status == 200);
}

TEST_CASE("with tls_client_ca_file only clients with a certificate from that CA are served",
          "[http][tls]") {
  RunningServer s(server_tls(true), false);

  const auto anonymous = test_support::https_get(s.port, "/hello", verified());
  CHECK(anonymous.status == 0);
  CHECK(s.handshake_failures_reaching(1) == 1);

  auto stranger = verified();
  stranger.cert_file = certs().other_client_cert;
  stranger.key_file = certs().other_client_key;
  const auto refused = test_support::https_get(s.port, "/hello", stranger);
  CHECK(refused.status == 0);
  CHECK(s.handshake_failures_reaching(2) == 2);

  auto client = verified();
  client.cert_file = certs().client_cert;
  client.key_file = certs().client_key;
  const auto served = test_support::https_get(s.port, "/hello", client);
  INFO(served.error);
  CHECK(served.status == 200);
  CHECK(s.handshake_failures_reaching(2) == 2);
}

TEST_CASE("a listener answers routes of its routers in order and 404 for the rest", "[http]") {
  SECTION("public and admin routers chained: both answer") {
    RunningServer s(std::nullopt, true);
    CHECK(test_support::http_get(s.port, "/hello").status == 200);
    CHECK(test_support::http_get(s.port, "/health").status == 200);
    CHECK(test_support::http_get(s.port, "/nope").status == 404);
  }
  SECTION("public router only: admin paths are a JSON 404") {
    RunningServer s(std::nullopt, false);
    const auto res = test_support::http_get(s.port, "/health");
    CHECK(res.status == 404);
    CHECK(res.body ==
          "{\"error\":{\"code\":\"not_found\",\"message\":\"no route for /health\"}}\n");
  }
}

TEST_CASE("unusable TLS key files are startup errors naming the key", "[http][tls]") {
  SECTION("an encrypted key") {
    http::TlsOptions tls = server_tls();
    tls.key_file = certs().server_key_encrypted;
    CHECK_THROWS_WITH(http::make_tls_context(tls),
                      Catch::Contains("http.tls_key_file") && Catch::Contains("encrypted"));
  }
  SECTION("a key of another certificate") {
    http::TlsOptions tls = server_tls();
    tls.key_file = certs().client_key;
    CHECK_THROWS_WITH(http::make_tls_context(tls), Catch::Contains("does not match"));
  }
  SECTION("a certificate file without a certificate") {
    http::TlsOptions tls = server_tls();
    tls.cert_file = certs().server_key;
    CHECK_THROWS_AS(http::make_tls_context(tls), StartupError);
  }
}

namespace {
std::string write_role_file(const std::string& name, const std::string& http_section) {
  const std::string path = certs().dir + "/" + name;
  std::ofstream out(path);
  out << "role: all\nhttp:\n  listen: 127.0.0.1:0\n" << http_section;
  return path;
}
}  // namespace

TEST_CASE("the daemon serves HTTPS and moves operator routes to admin_listen", "[http][tls][cli]") {
  const std::string file =
      write_role_file("tls-admin.yaml", "  tls_cert_file: " + certs().server_cert +
                                            "\n  tls_key_file: " + certs().server_key +
                                            "\n  admin_listen: 127.0.0.1:0\n");
  test_support::ChildProcess child({test_support::telemetryd_bin(), "run", "--config", file});
  const auto main_line = child.wait_for_line("\"listener\":\"main\"", 10s);
  const auto admin_line = child.wait_for_line("\"listener\":\"admin\"", 10s);
  REQUIRE(main_line);
  REQUIRE(admin_line);
  CHECK(main_line->find("\"tls\":true") != std::string::npos);
  const int main_port = test_support::port_from_listening_line(*main_line);
  const int admin_port = test_support::port_from_listening_line(*admin_line);

  for (const char* path : {"/health", "/ready", "/metrics"}) {
    INFO(path);
    const auto on_main = test_support::https_get(main_port, path, verified());
    CHECK(on_main.status == 404);
    CHECK(on_main.body.find("\"code\":\"not_found\"") != std::string::npos);
  }
  // Public routes stay on the TLS listener (a 400 for the missing parameters proves routing).
  CHECK(test_support::https_get(main_port, "/v1/usage", verified()).status != 404);

  CHECK(test_support::http_get(admin_port, "/health").status == 200);
  const auto metrics = test_support::http_get(admin_port, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("http_tls_handshake_failures_total 0") != std::string::npos);
  CHECK(
      metrics.body.find("http_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"} 3") !=
      std::string::npos);
  CHECK(test_support::http_get(admin_port, "/v1/usage").status == 404);

  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
}

TEST_CASE("bad TLS settings stop the daemon with exit 78 and file:line:key", "[http][tls][cli]") {
  using test_support::run_command;
  using test_support::telemetryd_bin;
  SECTION("a certificate without its key") {
    const std::string file =
        write_role_file("cert-only.yaml", "  tls_cert_file: " + certs().server_cert + "\n");
    const auto result = run_command({telemetryd_bin(), "run", "--config", file});
    INFO(result.output);
    CHECK(result.status == 78);
    CHECK(result.output.find(file + ":4:18: http.tls_cert_file: is set but http.tls_key_file") !=
          std::string::npos);
  }
  SECTION("a key file that does not exist") {
    const std::string file =
        write_role_file("missing-key.yaml", "  tls_cert_file: " + certs().server_cert +
                                                "\n  tls_key_file: " + certs().dir + "/nope.key\n");
    const auto result = run_command({telemetryd_bin(), "run", "--config", file});
    INFO(result.output);
    CHECK(result.status == 78);
    CHECK(result.output.find(file + ":5:17: http.tls_key_file: cannot open the file") !=
          std::string::npos);
  }
  SECTION("an encrypted key, also reported by check-config") {
    const std::string file = write_role_file(
        "encrypted-key.yaml", "  tls_cert_file: " + certs().server_cert +
                                  "\n  tls_key_file: " + certs().server_key_encrypted + "\n");
    for (const char* command : {"run", "check-config"}) {
      INFO(command);
      const auto result = std::string(command) == "run"
                              ? run_command({telemetryd_bin(), "run", "--config", file})
                              : run_command({telemetryd_bin(), "check-config", file});
      INFO(result.output);
      CHECK(result.status == 78);
      CHECK(result.output.find(file + ":5:17: http.tls_key_file: the private key is encrypted") !=
            std::string::npos);
    }
  }
  SECTION("a key that does not match the certificate is a startup error") {
    const std::string file =
        write_role_file("wrong-key.yaml", "  tls_cert_file: " + certs().server_cert +
                                              "\n  tls_key_file: " + certs().client_key + "\n");
    const auto result = run_command({telemetryd_bin(), "run", "--config", file});
    INFO(result.output);
    CHECK(result.status == 1);
    CHECK(result.output.find("does not match the certificate") != std::string::npos);
  }
}

TEST_CASE("an idle HTTPS keep-alive connection does not hold up stop()", "[http][tls]") {
  namespace asio = boost::asio;
  auto s = std::make_unique<RunningServer>(server_tls(), false);
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file(certs().ca_cert);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<asio::ip::tcp::socket> stream(io, ctx);
  stream.next_layer().connect(
      {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(s->port)});
  stream.handshake(asio::ssl::stream_base::client);
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/hello", 11};
  req.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(stream, req);
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buffer, res);
  CHECK(res.result_int() == 200);
  CHECK(res.keep_alive());
  // The connection stays open and idle: stop() must close it so the io loop empties and the
  // destructor's join returns (a hang here fails the suite's timeout).
  s.reset();
  boost::system::error_code ec;
  bhttp::read(stream, buffer, res, ec);
  CHECK(ec);
}
