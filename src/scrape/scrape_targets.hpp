#pragma once
// The model servers a scrape source reads: `URL [host=H] [deployment=D]` per target, from
// scrape.targets and from the lines of scrape.targets_file ('#' starts a comment).

#include <string>
#include <string_view>
#include <vector>

#include "telemetryd/result.hpp"

namespace telemetryd::scrape {

struct Target {
  std::string url;         // http(s)://host[:port]/path, also the target's name in ids and labels
  std::string origin;      // scheme://host:port, for the HTTP client
  std::string path;        // path and query, "/metrics" when the URL has none
  std::string host;        // the node whose GPUs serve it (cost attribution), may be empty
  std::string deployment;  // may be empty
};

/// Permanent error naming what is wrong with the line.
Result<Target> parse_target(std::string_view line);
/// Every non-empty, non-comment line of a targets file; errors name the line number.
Result<std::vector<Target>> parse_targets_file(std::string_view text, std::string_view file);

}  // namespace telemetryd::scrape
