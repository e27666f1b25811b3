#pragma once
// Receives sd_notify datagrams the way systemd does, on a socket named by NOTIFY_SOCKET.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace test_support {

struct NotifySocket {
  int fd = -1;
  std::string path;
  NotifySocket() {
    path = "/tmp/telemetryd-notify-" + std::to_string(getpid()) + ".sock";
    unlink(path.c_str());
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() {
    close(fd);
    unlink(path.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  /// Every datagram received so far, each followed by a newline.
  std::string drain() const {
    std::string all;
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      all.append(buf, static_cast<std::size_t>(n));
      all.push_back('\n');
    }
    return all;
  }
};

}  // namespace test_support
