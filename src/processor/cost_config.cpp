#include "processor/cost_config.hpp"

#include "sources/gpu_profiles.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd::processor {
namespace {

// "DEPLOYMENT=gpu:UUID" or "DEPLOYMENT=host:NAME"; the first '=' splits (a deployment name has
// none, a host or UUID might).
std::optional<cost::PlacementRow> parse_placement(std::string_view item) {
  const auto eq = item.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::nullopt;
  const std::string_view target = item.substr(eq + 1);
  const bool gpu = target.rfind("gpu:", 0) == 0 && target.size() > 4;
  const bool host = target.rfind("host:", 0) == 0 && target.size() > 5;
  if (!gpu && !host) return std::nullopt;
  return cost::PlacementRow{std::string(item.substr(0, eq)), std::string(target), 0, 0};
}

std::optional<std::string> check_placement(std::string_view item) {
  if (parse_placement(item)) return std::nullopt;
  return "expected 'deployment=gpu:<uuid>' or 'deployment=host:<name>'";
}

}  // namespace

std::vector<KeySpec> cost_keys() {
  return {
      {.name = "gpu_profiles_file",
       .description = "GPU profiles seeding the gpus catalog; empty uses the built-in ones.",
       .default_value = "",
       .check = check_readable_file},
      {.name = "cost.window_s",
       .type = ValueType::kDouble,
       .description = "Length W of the cost windows (tumbling, on the epoch grid).",
       .default_value = "60",
       .min = 1,
       .max = 86400},
      {.name = "cost.basis",
       .description = "Tokens that carry the cost: output, or input+output.",
       .default_value = "output",
       .allowed = {"output", "input+output"}},
      {.name = "cost.key",
       .description = "Label of processor_cost_per_token_usd: the model, or the deployment.",
       .default_value = "model",
       .allowed = {"model", "deployment"}},
      {.name = "cost.prices",
       .type = ValueType::kStringList,
       .description = "Price overrides, 'GPU=USD per hour', GPU a model or short name of the "
                      "catalog (docs/cost.md), e.g. 'NVIDIA H200=3.10'.",
       .default_value = "",
       .check = cost::check_price_override},
      {.name = "cost.extra_gpus",
       .type = ValueType::kStringList,
       .description = "GPUs the catalog lacks, 'NVML model name=USD per hour'.",
       .default_value = "",
       .check = cost::check_extra_gpu},
      {.name = "cost.energy_price_usd_per_kwh",
       .type = ValueType::kDouble,
       .description = "Price of energy for the energy cost basis.",
       .default_value = "0.12",
       .min = 0,
       .max = 100},
      {.name = "cost.settle_s",
       .type = ValueType::kDouble,
       .description = "A window is priced once no event has been stored in it for this long.",
       .default_value = "10",
       .min = 0.1,
       .max = 3600},
      {.name = "cost.placements",
       .type = ValueType::kStringList,
       .description = "GPUs serving a deployment, 'deployment=gpu:<uuid>' or "
                      "'deployment=host:<name>'; replaces what is learned for it.",
       .default_value = "",
       .check = check_placement},
      {.name = "cost.placement_ttl_s",
       .type = ValueType::kDouble,
       .description = "A learned placement serves windows up to this long after last seen.",
       .default_value = "86400",
       .min = 1,
       .max = 31536000},
      {.name = "cost.tenant_series",
       .type = ValueType::kInt,
       .description = "Tenants with series of their own on /metrics (the first seen, plus "
                      "cost.tenants); the others add to tenant=\"other\".",
       .default_value = "20",
       .min = 0,
       .max = 1000},
      {.name = "cost.tenants",
       .type = ValueType::kStringList,
       .description = "Tenants that always have series of their own on /metrics.",
       .default_value = ""},
  };
}

CoreSettings core_settings_from(const Config& config, const std::string& section) {
  CoreSettings s;
  s.cost_window_ms = static_cast<std::int64_t>(config.number(section + ".cost.window_s") * 1000);
  return s;
}

PricerSettings pricer_settings_from(const Config& config, const std::string& section) {
  PricerSettings s;
  const std::string p = section + ".cost.";
  s.model.window_ms = static_cast<std::int64_t>(config.number(p + "window_s") * 1000);
  s.model.basis = config.str(p + "basis") == "input+output" ? cost::TokenBasis::kInputOutput
                                                            : cost::TokenBasis::kOutput;
  s.model.energy_price_usd_per_kwh = config.number(p + "energy_price_usd_per_kwh");
  s.model.placement_ttl_ms = static_cast<std::int64_t>(config.number(p + "placement_ttl_s") * 1000);
  for (const auto& item : config.list(p + "placements")) {
    if (auto placement = parse_placement(item)) s.model.configured.push_back(*placement);
  }
  s.settle =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.number(p + "settle_s") * 1000));
  s.key_by_deployment = config.str(p + "key") == "deployment";
  s.tenant_series = static_cast<std::size_t>(config.integer(p + "tenant_series"));
  s.tenants = config.list(p + "tenants");
  return s;
}

cost::PriceCatalog price_catalog_from(const Config& config, const std::string& section) {
  std::vector<std::string> extra;
  // A profile's model the catalog lacks keeps the profile's price.
  const cost::PriceCatalog builtin = cost::PriceCatalog::builtin();
  for (const auto& p : sources::load_gpu_profiles(config.str(section + ".gpu_profiles_file"))) {
    if (builtin.find(p.model_name) == nullptr && builtin.find(p.name) == nullptr) {
      extra.push_back(p.model_name + "=" + std::to_string(p.price_per_hour_usd));
    }
  }
  for (const auto& item : config.list(section + ".cost.extra_gpus")) extra.push_back(item);
  return cost::catalog_with(extra, config.list(section + ".cost.prices"));
}

events::GpuCatalog catalog_from(const Config& config, const std::string& section,
                                const cost::PriceCatalog& prices) {
  events::GpuCatalog catalog;
  for (const auto& p : sources::load_gpu_profiles(config.str(section + ".gpu_profiles_file"))) {
    const auto price = prices.price_for(p.model_name);
    catalog.add({p.name, p.model_name, price.value_or(p.price_per_hour_usd)});
  }
  return catalog;
}

}  // namespace telemetryd::processor
