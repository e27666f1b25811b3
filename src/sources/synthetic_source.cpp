// The `synthetic` source: a simulated fleet (sources/fleet_model) turned into gpu.metrics.v1 and
// token.usage.v1 CloudEvents. Deterministic content for a seed; ids are always fresh.

#include <chrono>
#include <memory>
#include <sstream>

#include "events/cloudevent.hpp"
#include "sources/fleet_model.hpp"
#include "telemetryd/source.hpp"

namespace telemetryd::sources {
namespace {

class SyntheticSource final : public Source {
 public:
  SyntheticSource(const Config& config, Topics topics)
      : topics_(std::move(topics)),
        interval_(config.integer("synthetic.sample_interval_ms")),
        model_(settings_from(config), load_gpu_profiles(config.str("synthetic.profiles_file"))) {}

  bool sample(std::vector<Event>& out, std::string& /*error*/) override {
    const auto now = std::chrono::system_clock::now();
    FleetTick tick = model_.tick();
    for (const auto& gpu : tick.gpus) {
      notify_gpu_sample(gpu);
      Event event{topics_.gpu_metrics, gpu.gpu_uuid, ids_.next(now), {}, now};
      event.payload = events::encode_cloudevent(event.id, "//telemetryd/" + gpu.host + "/synthetic",
                                                kGpuMetricsType, now, gpu.gpu_uuid,
                                                events::encode_gpu_metrics_data(gpu));
      out.push_back(std::move(event));
    }
    for (const auto& usage : tick.requests) {
      Event event{topics_.token_usage, *usage.deployment, ids_.next(now), {}, now};
      event.payload = events::encode_cloudevent(
          event.id, "//telemetryd/" + usage.host.value_or("unknown") + "/synthetic",
          kTokenUsageType, now, usage.tenant_id, events::encode_token_usage_data(usage));
      out.push_back(std::move(event));
    }
    return true;
  }

  std::chrono::milliseconds interval() const override { return interval_; }

 private:
  static FleetSettings settings_from(const Config& config) {
    FleetSettings s;
    s.hosts = static_cast<int>(config.integer("synthetic.hosts"));
    s.gpus_per_host = static_cast<int>(config.integer("synthetic.gpus_per_host"));
    s.gpu_models = config.list("synthetic.gpu_models");
    s.host_prefix = config.str("synthetic.host_prefix");
    s.seed = static_cast<std::uint64_t>(config.integer("synthetic.seed"));
    s.interval_ms = config.integer("synthetic.sample_interval_ms");
    s.models = config.list("synthetic.models");
    s.tenants = config.list("synthetic.tenants");
    s.input_tokens_mean = config.number("synthetic.input_tokens_mean");
    s.output_tokens_mean = config.number("synthetic.output_tokens_mean");
    return s;
  }

  Topics topics_;
  std::chrono::milliseconds interval_;
  FleetModel model_;
  events::UuidV7Generator ids_;
};

const SourceRegistration kRegistration{
    {"synthetic",
     {"synthetic",
      "Simulated GPU fleet and LLM workload; token volume follows simulated GPU utilisation.",
      {
          {.name = "profiles_file",
           .description = "GPU profiles JSON; empty uses the built-in config/gpu-profiles.json.",
           .default_value = "",
           .check = check_readable_file},
          {.name = "hosts",
           .type = ValueType::kInt,
           .description = "Simulated hosts.",
           .default_value = "2",
           .min = 1,
           .max = 1000},
          {.name = "gpus_per_host",
           .type = ValueType::kInt,
           .description = "GPUs per simulated host.",
           .default_value = "4",
           .min = 1,
           .max = 16},
          {.name = "gpu_models",
           .type = ValueType::kStringList,
           .description = "Profile names; host i gets gpu_models[i mod n].",
           .default_value = "H100 80GB,A100 40GB"},
          {.name = "host_prefix",
           .description = "Host names are this prefix plus a two-digit number.",
           .default_value = "gpu-node-"},
          {.name = "seed",
           .type = ValueType::kInt,
           .description = "Seed of the simulation; the same seed gives the same values.",
           .default_value = "42",
           .min = 0},
          {.name = "sample_interval_ms",
           .type = ValueType::kInt,
           .description = "Simulated time one tick stands for (and its real period when "
                          "producer.rate is 0).",
           .default_value = "1000",
           .min = 10,
           .max = 3600000},
          {.name = "models",
           .type = ValueType::kStringList,
           .description = "LLMs served; host i serves models[i mod n] on all its GPUs.",
           .default_value = "llama-3.1-8b-instruct,llama-3.1-70b-instruct"},
          {.name = "tenants",
           .type = ValueType::kStringList,
           .description = "Tenants requests are attributed to, uniformly.",
           .default_value = "tenant-acme,tenant-globex,tenant-initech"},
          {.name = "input_tokens_mean",
           .type = ValueType::kDouble,
           .description = "Mean input tokens per request (log-normal).",
           .default_value = "800",
           .min = 1,
           .max = 1000000},
          {.name = "output_tokens_mean",
           .type = ValueType::kDouble,
           .description = "Mean output tokens per request (log-normal).",
           .default_value = "250",
           .min = 1,
           .max = 1000000},
      }},
     [](const Config& config, const Topics& topics) -> std::unique_ptr<Source> {
       return std::make_unique<SyntheticSource>(config, topics);
     }}};

}  // namespace
}  // namespace telemetryd::sources
