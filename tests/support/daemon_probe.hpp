#pragma once
// What integration tests read from a telemetryd child: the port it listens on (from its log)
// and a series' value on /metrics. Header-only: it REQUIREs, so it lives with Catch2.

#include <catch2/catch.hpp>
#include <chrono>
#include <sstream>
#include <string>

#include "support/child_process.hpp"

namespace test_support {

/// The main listener's port, from the child's `"msg":"listening"` line.
inline int listening_port(const ChildProcess& child,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto line = child.wait_for_line("\"msg\":\"listening\"", timeout);
  REQUIRE(line);
  return port_from_listening_line(*line);
}

/// A series' value summed over its label sets, from a /metrics text (0 when absent).
inline double metric(const std::string& text, const std::string& series) {
  double total = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series, 0) == 0 && (line[series.size()] == ' ' || line[series.size()] == '{')) {
      total += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

}  // namespace test_support
