// Black-box tests of SIGHUP reload: an invalid role file is rejected and the role keeps serving;
// a valid one drains and re-executes the same PID, which comes back with the new settings and
// tells systemd RELOADING=1 then READY=1.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/notify_socket.hpp"

using namespace test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A port the kernel just handed out and released: the ephemeral range keeps it clear of the
// fixed ports the integration services use.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("telemetryd-reload-" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_role_file(const fs::path& file, const fs::path& data_dir, const std::string& listen,
                     const std::string& log_level) {
  std::ofstream out(file, std::ios::trunc);
  out << "role: all\n"
      << "daemon:\n  log_level: " << log_level << "\n  shutdown_timeout_ms: 3000\n"
      << "http:\n  listen: " << listen << "\n"
      << "embedded:\n  data_dir: " << data_dir.string() << "\n  source: synthetic\n";
}

bool healthy_within(int port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (http_get(port, "/health").status == 200) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("SIGHUP rejects a broken role file, then applies a valid one in the same PID",
          "[cli][reload]") {
  TempDir dir;
  const fs::path file = dir.path / "all.yaml";
  const int first_port = free_port();
  write_role_file(file, dir.path / "data", "127.0.0.1:" + std::to_string(first_port), "info");
  NotifySocket notify;
  ChildProcess child({telemetryd_bin(), "run", "--config", file.string()},
                     {{"NOTIFY_SOCKET", notify.path}});
  REQUIRE(child.wait_for_line("\"msg\":\"started\"", 10s));
  REQUIRE(healthy_within(first_port, 10s));

  // (a) A broken file: one error line per problem, the rejection, and the role keeps serving.
  write_role_file(file, dir.path / "data", "nowhere", "loud");
  child.send_signal(SIGHUP);
  REQUIRE(child.wait_for_line("reload rejected, keeping the running configuration", 10s));
  CHECK(child.stdout_text().find("http.listen: expected host:port") != std::string::npos);
  CHECK(child.stdout_text().find("daemon.log_level") != std::string::npos);
  CHECK(http_get(first_port, "/health").status == 200);
  CHECK_FALSE(child.wait_exit(0ms).has_value());

  // (b) A valid file with a new port: same PID, drained, re-executed, serving there.
  const int second_port = free_port();
  write_role_file(file, dir.path / "data", "127.0.0.1:" + std::to_string(second_port), "info");
  child.send_signal(SIGHUP);
  REQUIRE(child.wait_for_line("re-executing for reload", 15s));
  REQUIRE(healthy_within(second_port, 15s));
  CHECK_FALSE(child.wait_exit(0ms).has_value());  // the PID we started is still the one running
  const std::string out = child.stdout_text();
  CHECK(count_of(out, "\"msg\":\"started\"") == 2);
  CHECK(out.find("\"reason\":\"SIGHUP reload\"") != std::string::npos);
  CHECK(http_get(first_port, "/health").status == 0);

  // (c) systemd saw the first READY, then RELOADING, then READY from the new image.
  std::this_thread::sleep_for(200ms);
  const std::string notified = notify.drain();
  INFO(notified);
  const auto ready = notified.find("READY=1");
  const auto reloading = notified.find("RELOADING=1");
  REQUIRE(ready != std::string::npos);
  REQUIRE(reloading != std::string::npos);
  CHECK(ready < reloading);
  CHECK(notified.find("READY=1", reloading) != std::string::npos);
  CHECK(notified.find("MONOTONIC_USEC=") != std::string::npos);
  CHECK(notified.find("STOPPING=1") == std::string::npos);

  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
  CHECK(child.stderr_text().empty());
}

TEST_CASE("SIGHUP without --config has nothing to reload and keeps running", "[cli][reload]") {
  TempDir dir;
  ChildProcess child({telemetryd_bin(), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
                      "--set", "embedded.data_dir=" + (dir.path / "data").string()});
  const auto line = child.wait_for_line("\"msg\":\"listening\"", 10s);
  REQUIRE(line);
  const int port = port_from_listening_line(*line);
  child.send_signal(SIGHUP);
  REQUIRE(child.wait_for_line("nothing to reload", 10s));
  CHECK(http_get(port, "/health").status == 200);
  CHECK(count_of(child.stdout_text(), "\"msg\":\"started\"") == 1);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(15s) == 0);
}
