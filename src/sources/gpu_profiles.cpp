#include "sources/gpu_profiles.hpp"

#include <simdjson.h>

#include <fstream>
#include <sstream>

#include "gpu_profiles_json.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd::sources {

std::vector<GpuProfile> parse_gpu_profiles(std::string_view json, std::string_view origin) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (const auto error = parser.parse(json.data(), json.size()).get(doc)) {
    throw StartupError(std::string(origin) + ": invalid JSON: " + simdjson::error_message(error));
  }
  simdjson::dom::array profiles;
  if (doc["profiles"].get(profiles)) {
    throw StartupError(std::string(origin) + ": expected {\"profiles\": [...]}");
  }
  std::vector<GpuProfile> out;
  for (simdjson::dom::element item : profiles) {
    GpuProfile p;
    std::string_view name, model_name;
    const auto where = [&](const char* key) {
      return std::string(origin) + ": profile " + std::to_string(out.size()) + ": key " + key;
    };
    auto number = [&](const char* key, double& target) {
      double value = 0;
      if (item[key].get(value)) {
        std::int64_t integer = 0;
        if (item[key].get(integer)) throw StartupError(where(key) + " must be a number");
        value = static_cast<double>(integer);
      }
      if (value < 0) throw StartupError(where(key) + " must not be negative");
      target = value;
    };
    if (item["name"].get(name) || item["model_name"].get(model_name)) {
      throw StartupError(where("name/model_name") + " must be strings");
    }
    p.name = name;
    p.model_name = model_name;
    double memory = 0, clock_sm = 0, clock_mem = 0;
    number("memory_total_bytes", memory);
    number("tdp_watts", p.tdp_watts);
    number("idle_watts", p.idle_watts);
    number("typical_utilization_percent", p.typical_utilization_percent);
    number("clock_sm_max_mhz", clock_sm);
    number("clock_mem_mhz", clock_mem);
    number("price_per_hour_usd", p.price_per_hour_usd);
    number("output_tokens_per_second", p.output_tokens_per_second);
    p.memory_total_bytes = static_cast<long long>(memory);
    p.clock_sm_max_mhz = static_cast<long long>(clock_sm);
    p.clock_mem_mhz = static_cast<long long>(clock_mem);
    if (item["ecc"].get(p.ecc)) throw StartupError(where("ecc") + " must be true or false");
    if (p.typical_utilization_percent > 100 || p.idle_watts > p.tdp_watts) {
      throw StartupError(where("typical_utilization_percent/idle_watts") + " out of range");
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) throw StartupError(std::string(origin) + ": no profiles");
  return out;
}

std::vector<GpuProfile> builtin_gpu_profiles() {
  return parse_gpu_profiles(kGpuProfilesJson, "built-in gpu-profiles.json");
}

std::vector<GpuProfile> load_gpu_profiles(const std::string& path) {
  if (path.empty()) return builtin_gpu_profiles();
  std::ifstream in(path);
  if (!in) throw StartupError(path + ": cannot open GPU profiles file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_gpu_profiles(text.str(), path);
}

}  // namespace telemetryd::sources
