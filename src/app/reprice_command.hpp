#pragma once
// `telemetryd reprice`: recomputes the costs of a past range from what is stored (docs/cost.md)
// and writes back the documents whose cost changed, or prints them with --dry-run.

#include <string>
#include <vector>

namespace telemetryd::app {

struct RepriceOptions {
  std::string config_file;
  std::string role;  // processor or all; empty: the role file's
  std::vector<std::string> overrides;
  std::string from;  // RFC 3339
  std::string to;    // RFC 3339
  std::string prices_file;
  bool dry_run = false;
};

/// Runs the re-pricing; prints each change and a summary as JSON lines on stdout. The exit
/// code: 0 done, 78 bad options or configuration, 1 the store failed.
int reprice(const RepriceOptions& options);

}  // namespace telemetryd::app
