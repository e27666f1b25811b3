#include "cost/price_catalog.hpp"

#include <cmath>
#include <stdexcept>

#include "telemetryd/errors.hpp"

namespace telemetryd::cost {
namespace {

// Rounded on-demand prices of one GPU, USD per hour, late 2026 (docs/cost.md). The model names
// are NVML's own strings; three are also the synthetic fleet's profiles and keep their prices.
const GpuPrice kBuiltin[] = {
    {"B200", "NVIDIA B200", 5.99},
    {"H200", "NVIDIA H200", 3.79},
    {"H200 NVL", "NVIDIA H200 NVL", 3.49},
    {"H100 80GB", "NVIDIA H100 80GB HBM3", 2.49},
    {"H100 PCIe", "NVIDIA H100 PCIe", 2.19},
    {"H100 NVL", "NVIDIA H100 NVL", 2.39},
    {"A100 80GB", "NVIDIA A100-SXM4-80GB", 1.79},
    {"A100 80GB PCIe", "NVIDIA A100 80GB PCIe", 1.59},
    {"A100 40GB", "NVIDIA A100-SXM4-40GB", 1.29},
    {"A100 40GB PCIe", "NVIDIA A100-PCIE-40GB", 1.19},
    {"L40S", "NVIDIA L40S", 1.09},
    {"L4", "NVIDIA L4", 0.59},
    {"A10G", "NVIDIA A10G", 0.75},
    {"A10", "NVIDIA A10", 0.65},
    {"T4", "Tesla T4", 0.35},
    {"RTX 4090", "NVIDIA GeForce RTX 4090", 0.69},
    {"RTX 3090", "NVIDIA GeForce RTX 3090", 0.44},
};

}  // namespace

// "NAME=PRICE"; the last '=' splits, so a name may hold one.
std::optional<std::string> parse_price_item(std::string_view item, PriceItem& out) {
  const auto eq = item.rfind('=');
  if (eq == std::string_view::npos || eq == 0) return "expected 'GPU=USD per hour'";
  out.name = std::string(item.substr(0, eq));
  const std::string number(item.substr(eq + 1));
  std::size_t used = 0;
  try {
    out.price = std::stod(number, &used);
  } catch (const std::exception&) {
    return "price must be a number";
  }
  if (used != number.size() || !std::isfinite(out.price)) return "price must be a number";
  if (out.price < 0) return "price must not be negative";
  return std::nullopt;
}

PriceCatalog PriceCatalog::builtin() {
  PriceCatalog catalog;
  for (const GpuPrice& price : kBuiltin) catalog.add(price);
  return catalog;
}

void PriceCatalog::add(GpuPrice price) {
  entries_.push_back(std::move(price));
}

bool PriceCatalog::set_price(std::string_view name, double price_per_hour_usd) {
  bool found = false;
  for (auto& entry : entries_) {
    if (entry.name == name || entry.model_name == name) {
      entry.price_per_hour_usd = price_per_hour_usd;
      found = true;
    }
  }
  return found;
}

bool PriceCatalog::set_or_add(std::string_view name, double price_per_hour_usd) {
  if (set_price(name, price_per_hour_usd)) return false;
  add({std::string(name), std::string(name), price_per_hour_usd});
  return true;
}

const GpuPrice* PriceCatalog::find(std::string_view name) const {
  for (const auto& entry : entries_) {
    if (entry.model_name == name) return &entry;
  }
  // A source that reports a short name ("H100 80GB") is priced too.
  for (const auto& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::optional<double> PriceCatalog::price_for(std::string_view model_name) const {
  const GpuPrice* entry = find(model_name);
  if (entry == nullptr) return std::nullopt;
  return entry->price_per_hour_usd;
}

std::optional<std::string> check_price_override(std::string_view item) {
  PriceItem parsed;
  if (auto problem = parse_price_item(item, parsed)) return problem;
  if (PriceCatalog::builtin().find(parsed.name) == nullptr) {
    return "no GPU named '" + parsed.name +
           "' in the price catalog (docs/cost.md lists them; add one with cost.extra_gpus)";
  }
  return std::nullopt;
}

std::optional<std::string> check_extra_gpu(std::string_view item) {
  PriceItem parsed;
  return parse_price_item(item, parsed);
}

PriceCatalog catalog_with(const std::vector<std::string>& extra_gpus,
                          const std::vector<std::string>& prices) {
  PriceCatalog catalog = PriceCatalog::builtin();
  for (const auto& item : extra_gpus) {
    PriceItem parsed;
    if (auto problem = parse_price_item(item, parsed)) {
      throw StartupError("cost.extra_gpus: '" + item + "': " + *problem);
    }
    catalog.set_or_add(parsed.name, parsed.price);
  }
  for (const auto& item : prices) {
    PriceItem parsed;
    if (auto problem = parse_price_item(item, parsed)) {
      throw StartupError("cost.prices: '" + item + "': " + *problem);
    }
    if (!catalog.set_price(parsed.name, parsed.price)) {
      throw StartupError("cost.prices: no GPU named '" + parsed.name + "' in the price catalog");
    }
  }
  return catalog;
}

}  // namespace telemetryd::cost
