#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>

#include "processor/cost_window.hpp"

using namespace telemetryd::processor;
using std::chrono::seconds;

namespace {

// Expected values are computed by hand from the formula in cost_window.hpp; the tight relative
// epsilon only absorbs floating-point rounding.
Approx exact(double value) {
  return Approx(value).epsilon(1e-12);
}

std::chrono::system_clock::time_point at(int s) {
  return std::chrono::system_clock::time_point{} + seconds(s);
}

GpuCatalog catalog_with_gpus() {
  GpuCatalog catalog;
  catalog.add({"H100 80GB", "NVIDIA H100 80GB HBM3", 2.49});
  catalog.add({"A100 40GB", "NVIDIA A100-SXM4-40GB", 1.29});
  catalog.observe_gpu("GPU-h100", "NVIDIA H100 80GB HBM3");
  catalog.observe_gpu("GPU-a100", "NVIDIA A100-SXM4-40GB");
  return catalog;
}

CostSettings settings(CostBasis basis = CostBasis::kOutput) {
  return {seconds(60), basis};
}

}  // namespace

TEST_CASE("one H100 and one event: cost per token over the window", "[cost]") {
  const auto catalog = catalog_with_gpus();
  CostWindow window(settings(), catalog);
  const Cost cost = window.add("llama", at(0), 1000, 250, {"GPU-h100"});
  REQUIRE(cost.cost_per_token);
  CHECK(*cost.cost_per_token == exact(0.000166));  // 2.49 * 60/3600 / 250
  REQUIRE(cost.amount_usd);
  CHECK(*cost.amount_usd == exact(0.0415));  // 0.000166 * 250
  CHECK(cost.price_per_hour_usd == exact(2.49));
  CHECK(cost.tokens_in_window == 250);
  CHECK(cost.window_s == 60);
  CHECK(cost.gpu_model == "H100 80GB");
  CHECK(cost.basis == "output");
  CHECK(window.latest().at("llama") == cost.cost_per_token);
}

TEST_CASE("tokens and GPUs accumulate in the window and leave it by event time", "[cost]") {
  const auto catalog = catalog_with_gpus();
  CostWindow window(settings(), catalog);
  window.add("llama", at(0), 0, 100, {"GPU-h100", "GPU-a100"});
  window.add("llama", at(30), 0, 200, {"GPU-h100"});
  Cost cost = window.add("llama", at(59), 0, 300, {"GPU-h100"});
  CHECK(cost.tokens_in_window == 600);
  CHECK(cost.price_per_hour_usd == exact(3.78));
  CHECK(cost.gpu_model == "A100 40GB+H100 80GB");
  CHECK(*cost.cost_per_token == exact(0.000105));  // 3.78 * 60/3600 / 600
  CHECK(*cost.amount_usd == exact(0.0315));        // 0.000105 * 300

  // t=100 drops t <= 40: the 0 s and 30 s events go, and the A100 with them (only t=0 named it).
  cost = window.add("llama", at(100), 0, 400, {"GPU-h100"});
  CHECK(cost.tokens_in_window == 700);  // 300 + 400
  CHECK(cost.price_per_hour_usd == exact(2.49));
  CHECK(cost.gpu_model == "H100 80GB");
  CHECK(*cost.cost_per_token == exact(0.0415 / 700));  // 2.49 * 60/3600 / 700
  CHECK(*cost.amount_usd == exact(0.0415 * 400 / 700));

  // Exactly W old is out: t=160 drops the 100 s event (and the 59 s one).
  cost = window.add("llama", at(160), 0, 50, {"GPU-h100"});
  CHECK(cost.tokens_in_window == 50);
  CHECK(*cost.cost_per_token == exact(0.0415 / 50));
}

TEST_CASE("the input+output basis counts both", "[cost]") {
  const auto catalog = catalog_with_gpus();
  CostWindow window(settings(CostBasis::kInputOutput), catalog);
  const Cost cost = window.add("llama", at(0), 1000, 250, {"GPU-h100"});
  CHECK(cost.tokens_in_window == 1250);
  CHECK(*cost.cost_per_token == exact(0.0000332));  // 2.49 * 60/3600 / 1250
  CHECK(*cost.amount_usd == exact(0.0415));         // 0.0000332 * 1250
  CHECK(cost.basis == "input+output");
}

TEST_CASE("no tokens in the window: the cost is null, never NaN or infinity", "[cost]") {
  const auto catalog = catalog_with_gpus();
  CostWindow window(settings(), catalog);
  const Cost cost = window.add("llama", at(0), 500, 0, {"GPU-h100"});
  CHECK_FALSE(cost.cost_per_token);
  CHECK_FALSE(cost.amount_usd);
  CHECK(cost.tokens_in_window == 0);
  CHECK(std::isfinite(cost.price_per_hour_usd));
  CHECK(std::isfinite(cost.window_s));
  CHECK_FALSE(window.latest().at("llama"));
}

TEST_CASE("a GPU without metrics, or of a model not in the catalog, is not priced", "[cost]") {
  auto catalog = catalog_with_gpus();
  catalog.observe_gpu("GPU-b200", "NVIDIA B200");
  CHECK(catalog.entry_for_gpu("GPU-never-seen") == nullptr);
  CHECK(catalog.entry_for_gpu("GPU-b200") == nullptr);
  CostWindow window(settings(), catalog);
  const Cost cost = window.add("llama", at(0), 0, 250, {"GPU-never-seen", "GPU-b200"});
  CHECK(cost.price_per_hour_usd == 0);
  CHECK_FALSE(cost.cost_per_token);
  CHECK_FALSE(cost.amount_usd);
  CHECK(cost.gpu_model.empty());
  CHECK(cost.tokens_in_window == 250);
}

TEST_CASE("a GPU reporting the profile name itself is matched", "[cost]") {
  auto catalog = catalog_with_gpus();
  catalog.observe_gpu("GPU-named", "H100 80GB");
  const auto* entry = catalog.entry_for_gpu("GPU-named");
  REQUIRE(entry != nullptr);
  CHECK(entry->name == "H100 80GB");
}

TEST_CASE("set_price overrides a profile's price; unknown names are refused", "[cost]") {
  auto catalog = catalog_with_gpus();
  CostWindow window(settings(), catalog);
  CHECK(*window.add("llama", at(0), 0, 250, {"GPU-h100"}).cost_per_token == exact(0.000166));
  CHECK(catalog.set_price("H100 80GB", 3.0));
  // Same window (now 500 tokens), new price: 3.0 * 60/3600 / 500.
  CHECK(*window.add("llama", at(1), 0, 250, {"GPU-h100"}).cost_per_token == exact(0.0001));
  CHECK_FALSE(catalog.set_price("B200", 5.0));
}

TEST_CASE("keys share neither tokens nor GPUs", "[cost]") {
  const auto catalog = catalog_with_gpus();
  CostWindow window(settings(), catalog);
  window.add("llama", at(0), 0, 250, {"GPU-h100"});
  const Cost other = window.add("mistral", at(1), 0, 100, {"GPU-a100"});
  CHECK(other.tokens_in_window == 100);
  CHECK(other.gpu_model == "A100 40GB");
  CHECK(*other.cost_per_token == exact(0.000215));  // 1.29 * 60/3600 / 100
  const Cost llama = window.add("llama", at(2), 0, 250, {"GPU-h100"});
  CHECK(llama.tokens_in_window == 500);
  CHECK(llama.gpu_model == "H100 80GB");
  CHECK(*llama.cost_per_token == exact(0.000083));  // 2.49 * 60/3600 / 500
  CHECK(window.latest().size() == 2);
  CHECK(window.latest().at("mistral") == other.cost_per_token);
}

TEST_CASE("out-of-order events count inside the window and are priced outside it", "[cost]") {
  const auto catalog = catalog_with_gpus();
  CostWindow window(settings(), catalog);
  window.add("llama", at(100), 0, 100, {"GPU-h100"});

  // 70 s > 100 - 60: it joins the window; the newest time stays 100 s.
  Cost cost = window.add("llama", at(70), 0, 50, {"GPU-a100"});
  CHECK(cost.tokens_in_window == 150);
  CHECK(cost.price_per_hour_usd == exact(3.78));

  // 40 s <= 100 - 60: too old to count; it is priced at the window's current rate.
  cost = window.add("llama", at(40), 0, 20, {"GPU-a100"});
  CHECK(cost.tokens_in_window == 150);
  CHECK(*cost.cost_per_token == exact(0.063 / 150));  // 3.78 * 60/3600 / 150
  CHECK(*cost.amount_usd == exact(0.063 * 20 / 150));

  // The late 70 s event leaves when its own time falls out: kept at 125 s, dropped at 130 s.
  cost = window.add("llama", at(125), 0, 10, {"GPU-h100"});
  CHECK(cost.tokens_in_window == 160);
  CHECK(cost.gpu_model == "A100 40GB+H100 80GB");
  cost = window.add("llama", at(130), 0, 10, {"GPU-h100"});
  CHECK(cost.tokens_in_window == 120);
  CHECK(cost.gpu_model == "H100 80GB");
}
