#include "processor/cost_config.hpp"

#include "sources/gpu_profiles.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd::processor {
namespace {

std::optional<std::string> check_price(std::string_view item) {
  const auto eq = item.rfind('=');
  if (eq == std::string_view::npos || eq == 0) return "expected 'GPU profile=price per hour'";
  try {
    if (std::stod(std::string(item.substr(eq + 1))) < 0) return "price must not be negative";
  } catch (const std::exception&) {
    return "price must be a number";
  }
  return std::nullopt;
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
       .description = "Rolling window W of the cost per token.",
       .default_value = "60",
       .min = 1,
       .max = 86400},
      {.name = "cost.basis",
       .description = "Tokens that carry the cost: output, or input+output.",
       .default_value = "output",
       .allowed = {"output", "input+output"}},
      {.name = "cost.key",
       .description = "Window per model or per deployment.",
       .default_value = "model",
       .allowed = {"model", "deployment"}},
      {.name = "cost.prices",
       .type = ValueType::kStringList,
       .description = "Price overrides, 'GPU profile=USD per hour', e.g. 'H100 80GB=2.99'.",
       .default_value = "",
       .check = check_price},
  };
}

CoreSettings core_settings_from(const Config& config, const std::string& section) {
  CoreSettings s;
  s.cost.window = std::chrono::milliseconds(
      static_cast<std::int64_t>(config.number(section + ".cost.window_s") * 1000));
  s.cost.basis = config.str(section + ".cost.basis") == "input+output" ? CostBasis::kInputOutput
                                                                       : CostBasis::kOutput;
  s.cost_by_deployment = config.str(section + ".cost.key") == "deployment";
  return s;
}

GpuCatalog catalog_from(const Config& config, const std::string& section) {
  GpuCatalog catalog;
  for (const auto& p : sources::load_gpu_profiles(config.str(section + ".gpu_profiles_file"))) {
    catalog.add({p.name, p.model_name, p.price_per_hour_usd});
  }
  for (const auto& item : config.list(section + ".cost.prices")) {
    const auto eq = item.rfind('=');
    const std::string name = item.substr(0, eq);
    if (!catalog.set_price(name, std::stod(item.substr(eq + 1)))) {
      throw StartupError(section + ".cost.prices: no GPU profile named '" + name + "'");
    }
  }
  return catalog;
}

}  // namespace telemetryd::processor
