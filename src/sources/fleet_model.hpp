#pragma once
// The simulated fleet behind the synthetic source: hosts of GPUs whose utilisation wanders around
// each profile's typical load, and LLM requests whose token volume follows that utilisation, so
// cost per token downstream moves with GPU load. Deterministic for a given seed (with libstdc++'s
// distributions); ids and times are not part of the model.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "events/gpu_metrics.hpp"
#include "events/token_usage.hpp"
#include "sources/gpu_profiles.hpp"

namespace telemetryd::sources {

struct FleetSettings {
  int hosts = 2;
  int gpus_per_host = 4;
  std::vector<std::string> gpu_models{"H100 80GB", "A100 40GB"};  // host i: [i % size]
  std::string host_prefix = "gpu-node-";
  std::uint64_t seed = 42;
  std::int64_t interval_ms = 1000;
  std::vector<std::string> models{"llama-3.1-8b-instruct", "llama-3.1-70b-instruct"};
  std::vector<std::string> tenants{"tenant-acme", "tenant-globex", "tenant-initech"};
  double input_tokens_mean = 800;
  double output_tokens_mean = 250;
};

struct FleetTick {
  std::vector<events::GpuSample> gpus;
  std::vector<events::TokenUsage> requests;
};

class FleetModel {
 public:
  /// Throws StartupError when a configured GPU model has no profile.
  FleetModel(FleetSettings settings, const std::vector<GpuProfile>& profiles);
  FleetTick tick();
  std::size_t gpu_count() const { return gpus_.size(); }

 private:
  struct Gpu {
    const GpuProfile* profile;
    std::string uuid;
    std::string host;
    int index;
    double utilization;
    double energy_mj = 0;
    std::int64_t pid;
  };
  struct Host {
    std::string name;
    std::string model;  // the LLM this host serves
    std::vector<std::size_t> gpus;
  };

  std::string make_uuid();
  double normal(double mean, double stddev);

  FleetSettings settings_;
  std::vector<GpuProfile> profiles_;
  std::vector<Gpu> gpus_;
  std::vector<Host> hosts_;
  std::mt19937_64 rng_;
  std::uint64_t request_counter_ = 0;
};

}  // namespace telemetryd::sources
