#include "sources/fleet_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "telemetryd/errors.hpp"

namespace telemetryd::sources {
namespace {

double tenths(double v) {
  return std::round(v * 10) / 10;
}

// The readings gpu.metrics.v1 gained in issue 12, derived from the simulated load without drawing
// from the generator, so a seed gives the same values as before for every older field.
void add_issue12_fields(events::GpuSample& s, const GpuProfile& p, double u, double power) {
  const std::int64_t total = p.memory_total_bytes;
  const std::int64_t reserved = total / 100;
  s.memory_reserved_bytes = reserved;
  s.memory_free_bytes = std::max<std::int64_t>(0, total - reserved - *s.memory_used_bytes);
  s.temperature_memory_celsius = tenths(*s.temperature_gpu_celsius + 6);
  s.pstate = u < 0.05 ? 8 : 0;
  std::int64_t mask = 0;
  std::vector<std::string> reasons;
  if (u < 0.05) {
    mask |= 0x1;
    reasons.emplace_back("gpu_idle");
  }
  if (power >= 0.97 * p.tdp_watts) {
    mask |= 0x4;
    reasons.emplace_back("sw_power_cap");
  }
  if (*s.temperature_gpu_celsius >= 85) {
    mask |= 0x20;
    reasons.emplace_back("sw_thermal_slowdown");
  }
  s.clock_event_reasons_mask = mask;
  s.clock_event_reasons = std::move(reasons);
  s.pcie.tx_bytes_per_second = static_cast<std::int64_t>(u * 1.5e9);
  s.pcie.rx_bytes_per_second = static_cast<std::int64_t>(u * 3.0e9);
  const double util = *s.utilization_gpu_percent;
  s.activity.sm_active_percent = tenths(util * 0.9);
  s.activity.sm_occupancy_percent = tenths(util * 0.45);
  s.activity.tensor_active_percent = tenths(util * 0.5);
  s.activity.dram_active_percent = tenths(*s.utilization_memory_percent * 0.8);
  s.activity.fp16_active_percent = tenths(util * 0.3);
  s.activity.fp32_active_percent = tenths(util * 0.1);
  s.activity.fp64_active_percent = 0;
  s.xid = events::GpuXid{};
  if (p.ecc) {
    s.remapped_rows.correctable = 0;
    s.remapped_rows.uncorrectable = 0;
    s.remapped_rows.pending = false;
    s.remapped_rows.failure = false;
  }
}

}  // namespace

FleetModel::FleetModel(FleetSettings settings, const std::vector<GpuProfile>& profiles)
    : settings_(std::move(settings)), profiles_(profiles), rng_(settings_.seed) {
  if (settings_.gpu_models.empty() || settings_.models.empty() || settings_.tenants.empty()) {
    throw StartupError("synthetic: gpu_models, models and tenants must not be empty");
  }
  for (int h = 0; h < settings_.hosts; ++h) {
    const std::string& wanted =
        settings_.gpu_models[static_cast<std::size_t>(h) % settings_.gpu_models.size()];
    const auto profile = std::find_if(profiles_.begin(), profiles_.end(),
                                      [&](const GpuProfile& p) { return p.name == wanted; });
    if (profile == profiles_.end()) {
      std::string known;
      for (const auto& p : profiles_) known += (known.empty() ? "" : ", ") + p.name;
      throw StartupError("synthetic.gpu_models: no profile named '" + wanted +
                         "' (known: " + known + ")");
    }
    char host_name[64];
    std::snprintf(host_name, sizeof host_name, "%s%02d", settings_.host_prefix.c_str(), h + 1);
    Host host{
        host_name, settings_.models[static_cast<std::size_t>(h) % settings_.models.size()], {}};
    for (int g = 0; g < settings_.gpus_per_host; ++g) {
      host.gpus.push_back(gpus_.size());
      gpus_.push_back({&*profile, make_uuid(), host.name, g, profile->typical_utilization_percent,
                       0.0, 1000 + static_cast<std::int64_t>(gpus_.size()) * 7});
    }
    hosts_.push_back(std::move(host));
  }
}

std::string FleetModel::make_uuid() {
  const std::uint64_t a = rng_();
  const std::uint64_t b = rng_();
  char buf[48];
  std::snprintf(buf, sizeof buf, "GPU-%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

double FleetModel::normal(double mean, double stddev) {
  return std::normal_distribution<double>(mean, stddev)(rng_);
}

FleetTick FleetModel::tick() {
  FleetTick tick;
  const double dt = static_cast<double>(settings_.interval_ms) / 1000.0;
  // Mean reversion keeps each GPU near its profile's typical load while letting it drift, so
  // busy and quiet periods both occur within a cost window.
  const double reversion = std::min(1.0, 0.3 * dt);
  for (Gpu& gpu : gpus_) {
    const GpuProfile& p = *gpu.profile;
    gpu.utilization += reversion * (p.typical_utilization_percent - gpu.utilization) +
                       normal(0, 8.0 * std::sqrt(std::min(dt, 4.0)));
    gpu.utilization = std::clamp(gpu.utilization, 0.0, 100.0);
    const double u = gpu.utilization / 100.0;
    const double power =
        std::clamp(p.idle_watts + (p.tdp_watts - p.idle_watts) * std::pow(u, 1.2) + normal(0, 4),
                   p.idle_watts * 0.8, p.tdp_watts);
    gpu.energy_mj += power * dt * 1000.0;

    events::GpuSample s;
    s.gpu_uuid = gpu.uuid;
    s.host = gpu.host;
    s.model_name = p.model_name;
    s.collector = "synthetic";
    s.gpu_index = gpu.index;
    s.interval_ms = settings_.interval_ms;
    s.utilization_gpu_percent = std::round(gpu.utilization * 10) / 10;
    s.utilization_memory_percent =
        std::round(std::clamp(gpu.utilization * 0.6 + normal(0, 3), 0.0, 100.0) * 10) / 10;
    s.memory_total_bytes = p.memory_total_bytes;
    const auto used =
        static_cast<std::int64_t>(static_cast<double>(p.memory_total_bytes) * (0.15 + 0.75 * u));
    s.memory_used_bytes = used;
    s.power_draw_watts = std::round(power * 10) / 10;
    s.power_limit_watts = p.tdp_watts;
    s.energy_consumed_mj = static_cast<std::int64_t>(gpu.energy_mj);
    s.temperature_gpu_celsius = std::round((30 + 0.5 * gpu.utilization + normal(0, 1)) * 10) / 10;
    s.clock_sm_mhz =
        static_cast<std::int64_t>(static_cast<double>(p.clock_sm_max_mhz) * (0.55 + 0.45 * u));
    s.clock_mem_mhz = p.clock_mem_mhz;
    if (p.ecc) {
      s.ecc.mode_enabled = true;
      s.ecc.volatile_corrected = 0;
      s.ecc.volatile_uncorrected = 0;
    }
    s.processes = std::vector<events::GpuProcess>{
        {gpu.pid, static_cast<std::int64_t>(static_cast<double>(used) * 0.9)}};
    add_issue12_fields(s, p, u, power);
    tick.gpus.push_back(std::move(s));
  }

  for (const Host& host : hosts_) {
    double capacity = 0;  // output tokens this host could decode in this tick
    std::vector<std::string> uuids;
    for (const std::size_t g : host.gpus) {
      capacity += gpus_[g].profile->output_tokens_per_second * gpus_[g].utilization / 100.0 * dt;
      uuids.push_back(gpus_[g].uuid);
    }
    const double expected_requests = capacity / settings_.output_tokens_mean;
    const int requests =
        expected_requests > 0 ? std::poisson_distribution<int>(expected_requests)(rng_) : 0;
    // Token counts are log-normal around the configured means: most requests are short, a few long.
    const double sigma = 0.6;
    std::lognormal_distribution<double> input(
        std::log(settings_.input_tokens_mean) - sigma * sigma / 2, sigma);
    std::lognormal_distribution<double> output(
        std::log(settings_.output_tokens_mean) - sigma * sigma / 2, sigma);
    std::uniform_real_distribution<double> unit(0, 1);
    for (int r = 0; r < requests; ++r) {
      events::TokenUsage usage;
      usage.model = host.model;
      usage.deployment = host.model + "@" + host.name;
      usage.provider = "vllm";
      usage.tenant_id =
          settings_.tenants[static_cast<std::size_t>(rng_() % settings_.tenants.size())];
      usage.input_tokens = std::max<std::int64_t>(1, std::llround(input(rng_)));
      usage.output_tokens = std::max<std::int64_t>(1, std::llround(output(rng_)));
      if (unit(rng_) < 0.4)
        usage.cache_read_tokens =
            std::llround(static_cast<double>(usage.input_tokens) * unit(rng_) * 0.8);
      usage.request_id = "req-" + std::to_string(++request_counter_);
      usage.ttft_ms = std::round(80 + 300 * unit(rng_));
      usage.duration_ms =
          std::round(*usage.ttft_ms + static_cast<double>(usage.output_tokens) * 20.0);
      usage.status = unit(rng_) < 0.02 ? "error" : "success";
      usage.gpu_uuids = uuids;
      usage.host = host.name;
      tick.requests.push_back(std::move(usage));
    }
  }
  return tick;
}

}  // namespace telemetryd::sources
