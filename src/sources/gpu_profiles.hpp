#pragma once
// GPU profiles (config/gpu-profiles.json): what the synthetic fleet simulates and, later, the
// default price catalog. The repo's file is compiled in, so no path is needed to run.

#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::sources {

struct GpuProfile {
  std::string name;        // short name used in config, e.g. "H100 80GB"
  std::string model_name;  // what NVML would report
  long long memory_total_bytes = 0;
  double tdp_watts = 0;
  double idle_watts = 0;
  double typical_utilization_percent = 0;
  long long clock_sm_max_mhz = 0;
  long long clock_mem_mhz = 0;
  bool ecc = false;
  double price_per_hour_usd = 0;
  double output_tokens_per_second = 0;
};

/// Parses a profiles document; throws StartupError naming `origin` and the bad profile.
std::vector<GpuProfile> parse_gpu_profiles(std::string_view json, std::string_view origin);
/// The built-in copy of config/gpu-profiles.json.
std::vector<GpuProfile> builtin_gpu_profiles();
/// Loads a file, or the built-in profiles when `path` is empty.
std::vector<GpuProfile> load_gpu_profiles(const std::string& path);

}  // namespace telemetryd::sources
