// The cost model (src/cost/cost_model.hpp) on hand-made windows, docs/cost.md's worked example
// read from the document itself, and the price catalog.

#include <simdjson.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include "cost/cost_model.hpp"
#include "cost/price_catalog.hpp"
#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::cost;

namespace {

constexpr std::int64_t kStart = 1796126400000;  // 2026-12-01T12:00:00Z

bool close_to(double a, double b, double relative = 1e-9) {
  return std::abs(a - b) <= relative * std::max({1e-12, std::abs(a), std::abs(b)});
}

GpuSampleRow sample(const std::string& gpu, const std::string& host, std::int64_t t_s, double util,
                    std::int64_t energy_mj, const std::string& model = "NVIDIA H200") {
  return {gpu, host, model, kStart + t_s * 1000, util, energy_mj};
}

UsageRow usage(const std::string& id, std::int64_t output_tokens) {
  UsageRow u;
  u.id = id;
  u.time_ms = kStart + 5000;
  u.model = "m";
  u.tenant_id = "t";
  u.output_tokens = output_tokens;
  return u;
}

}  // namespace

TEST_CASE("a deployment-only event is priced on all three bases through its placement", "[cost]") {
  WindowInputs in;
  in.samples = {sample("GPU-1", "node-1", -5, 40, 1000000),
                sample("GPU-1", "node-1", 20, 60, 2000000)};
  in.placements = {{"chat", "host:node-1", kStart - 3600000, kStart - 1000}};
  UsageRow known = usage("a", 100);
  known.deployment = "chat";
  UsageRow unknown = usage("b", 100);
  unknown.deployment = "nobody-knows";
  in.usage = {known, unknown};
  const auto result = price_window(kStart, in, Settings{}, PriceCatalog::builtin());
  REQUIRE(result.costs.size() == 2);
  const UsageCost& a = result.costs[0];
  CHECK(a.placement == "deployment");
  CHECK(a.gpus == std::vector<std::string>{"GPU-1"});
  REQUIRE(a.amortized_usd);
  CHECK(close_to(*a.amortized_usd, 3.79 * 60 / 3600));  // the only request: the whole GPU
  REQUIRE(a.gpu_seconds);
  CHECK(close_to(*a.gpu_seconds, 60 * 0.60));  // the one in-window sample: 60%
  REQUIRE(a.energy_j);
  CHECK(close_to(*a.energy_j, 1000.0));  // 1,000,000 mJ since the baseline
  REQUIRE(a.energy_usd);
  CHECK(close_to(*a.energy_usd, 1000.0 / 3.6e6 * 0.12));
  CHECK(a.gpu_model == "H200");
  const UsageCost& b = result.costs[1];
  CHECK_FALSE(b.amortized_usd);
  CHECK_FALSE(b.utilization_usd);
  CHECK_FALSE(b.energy_usd);
  CHECK(b.amortized_reason == "no_placement");
  CHECK(b.energy_reason == "no_placement");
  CHECK(cost_block_json(b).find("\"null_reasons\":{\"amortized\":\"no_placement\"") !=
        std::string::npos);
}

TEST_CASE(
    "a placement serves only its time: first seen before the window, last seen within the ttl",
    "[cost]") {
  WindowInputs in;
  in.samples = {sample("GPU-1", "node-1", 10, 50, 1)};
  UsageRow u = usage("a", 10);
  u.deployment = "chat";
  in.usage = {u};
  Settings settings;
  settings.placement_ttl_ms = 60000;
  in.placements = {{"chat", "host:node-1", kStart + 60000, kStart + 70000}};  // after the window
  CHECK(price_window(kStart, in, settings, PriceCatalog::builtin()).costs[0].amortized_reason ==
        "no_placement");
  in.placements = {{"chat", "host:node-1", kStart - 500000, kStart - 200000}};  // expired
  CHECK(price_window(kStart, in, settings, PriceCatalog::builtin()).costs[0].amortized_reason ==
        "no_placement");
  in.placements = {{"chat", "host:node-1", kStart - 500000, kStart - 30000}};
  CHECK(price_window(kStart, in, settings, PriceCatalog::builtin()).costs[0].amortized_usd);
  // A configured placement replaces what was learned.
  settings.configured = {{"chat", "gpu:GPU-9", 0, 0}};
  const auto configured = price_window(kStart, in, settings, PriceCatalog::builtin()).costs[0];
  CHECK(configured.placement == "configured");
  CHECK(configured.amortized_reason == "no_gpu_metrics");  // GPU-9 sent nothing
}

TEST_CASE("models sharing a GPU split its window; nothing is counted twice", "[cost]") {
  WindowInputs in;
  in.samples = {sample("GPU-1", "n", 1, 100, 0), sample("GPU-1", "n", 31, 100, 30000000),
                sample("GPU-2", "n", 1, 100, 0), sample("GPU-2", "n", 31, 100, 30000000)};
  for (int i = 0; i < 30; ++i) {
    UsageRow u = usage("a" + std::to_string(i), 10 + i);
    u.model = i % 3 == 0 ? "small" : "large";
    u.gpu_uuids =
        i % 3 == 0 ? std::vector<std::string>{"GPU-1"} : std::vector<std::string>{"GPU-1", "GPU-2"};
    in.usage.push_back(u);
  }
  const auto result = price_window(kStart, in, Settings{}, PriceCatalog::builtin());
  double amortized = 0, energy = 0, seconds = 0;
  for (const auto& c : result.costs) {
    REQUIRE(c.amortized_usd);
    amortized += *c.amortized_usd;
    energy += *c.energy_j;
    seconds += *c.gpu_seconds;
  }
  CHECK(close_to(amortized, 2 * 3.79 * 60 / 3600));
  CHECK(close_to(energy, 2 * 30000.0));
  CHECK(close_to(seconds, 2 * 60.0));

  // The result does not depend on the order of the rows.
  WindowInputs shuffled = in;
  std::mt19937 random(7);
  std::shuffle(shuffled.usage.begin(), shuffled.usage.end(), random);
  std::shuffle(shuffled.samples.begin(), shuffled.samples.end(), random);
  const auto again = price_window(kStart, shuffled, Settings{}, PriceCatalog::builtin());
  for (const auto& c : again.costs) {
    const auto same = std::find_if(result.costs.begin(), result.costs.end(),
                                   [&](const UsageCost& o) { return o.id == c.id; });
    REQUIRE(same != result.costs.end());
    CHECK(cost_block_json(*same) == cost_block_json(c));
  }
}

TEST_CASE("an unpriced GPU makes the basis null with a reason and is reported", "[cost]") {
  WindowInputs in;
  in.samples = {sample("GPU-1", "n", 1, 50, 0, "NVIDIA Mystery 9000"),
                sample("GPU-2", "n", 1, 50, 0)};
  UsageRow u = usage("a", 10);
  u.gpu_uuids = {"GPU-1", "GPU-2"};
  in.usage = {u};
  const auto result = price_window(kStart, in, Settings{}, PriceCatalog::builtin());
  CHECK_FALSE(result.costs[0].amortized_usd);  // never a partial sum over the priced one
  CHECK(result.costs[0].amortized_reason == "unpriced_gpu");
  CHECK(result.costs[0].utilization_reason == "unpriced_gpu");
  CHECK(result.unpriced_models == std::vector<std::string>{"NVIDIA Mystery 9000"});
  // Priced once the catalog knows it.
  const auto priced =
      price_window(kStart, in, Settings{}, catalog_with({"NVIDIA Mystery 9000=1.5"}, {}));
  CHECK(priced.costs[0].amortized_usd);
  CHECK(priced.unpriced_models.empty());
}

TEST_CASE("a GPU sampled only before the window is not there; an unpriced one still has energy",
          "[cost]") {
  WindowInputs in;
  in.samples = {sample("GPU-1", "n", -20, 50, 1000000),  // before the window only
                sample("GPU-2", "n", -20, 50, 0, "NVIDIA Mystery 9000"),
                sample("GPU-2", "n", 20, 50, 6000000, "NVIDIA Mystery 9000")};
  UsageRow named = usage("a", 10);
  named.gpu_uuids = {"GPU-1"};
  UsageRow unpriced = usage("b", 10);
  unpriced.gpu_uuids = {"GPU-2"};
  in.usage = {named, unpriced};
  const auto result = price_window(kStart, in, Settings{}, PriceCatalog::builtin());
  const UsageCost& a = result.costs[0];
  CHECK(a.amortized_reason == "no_gpu_metrics");
  CHECK(a.utilization_reason == "no_gpu_metrics");
  CHECK(a.energy_reason == "no_gpu_metrics");
  CHECK_FALSE(a.amortized_usd);
  const UsageCost& b = result.costs[1];
  CHECK(b.amortized_reason == "unpriced_gpu");
  CHECK(b.utilization_reason == "unpriced_gpu");
  REQUIRE(b.energy_j);  // energy needs no GPU price
  CHECK(close_to(*b.energy_j, 6000.0));
  CHECK(b.energy_usd);
  CHECK(b.energy_reason.empty());
  // A placement whose host sent nothing in the window lacks metrics, not a placement.
  UsageRow placed = usage("c", 10);
  placed.deployment = "chat";
  in.usage = {placed};
  in.placements = {{"chat", "host:elsewhere", kStart - 1000, kStart}};
  CHECK(price_window(kStart, in, Settings{}, PriceCatalog::builtin()).costs[0].amortized_reason ==
        "no_gpu_metrics");
}

TEST_CASE("energy counts the counter's increases ending in the window; a reset starts over",
          "[cost]") {
  WindowInputs in;
  in.samples = {sample("GPU-1", "n", -30, 50, 5000000), sample("GPU-1", "n", 0, 50, 6000000),
                sample("GPU-1", "n", 20, 50, 1000000),  // driver reloaded: counter restarted
                sample("GPU-1", "n", 40, 50, 3000000), sample("GPU-1", "n", 60, 50, 9000000)};
  UsageRow u = usage("a", 10);
  u.gpu_uuids = {"GPU-1"};
  in.usage = {u};
  const auto c = price_window(kStart, in, Settings{}, PriceCatalog::builtin()).costs[0];
  REQUIRE(c.energy_j);
  // -30 -> 0: 1000 J (its later sample is in the window); 0 -> 20: reset, 0; 20 -> 40: 2000 J;
  // 40 -> 60: in the next window.
  CHECK(close_to(*c.energy_j, 3000.0));
  // A GPU without the counter: null energy, the other bases still priced.
  in.samples = {{"GPU-1", "n", "NVIDIA H200", kStart + 1000, 50.0, std::nullopt}};
  const auto none = price_window(kStart, in, Settings{}, PriceCatalog::builtin()).costs[0];
  CHECK(none.amortized_usd);
  CHECK(none.utilization_usd);
  CHECK_FALSE(none.energy_usd);
  CHECK(none.energy_reason == "no_energy_counter");
}

TEST_CASE("docs/cost.md's worked example is what the model computes", "[cost][docs]") {
  std::ifstream file(test_support::source_root() + "/docs/cost.md");
  REQUIRE(file);
  std::stringstream text;
  text << file.rdbuf();
  const std::string doc = text.str();

  // The inputs: the JSON block after the inputs marker.
  const auto marker = doc.find("<!-- worked-example:inputs");
  REQUIRE(marker != std::string::npos);
  const auto open = doc.find("```json\n", marker);
  const auto close = doc.find("```", open + 8);
  REQUIRE((open != std::string::npos && close != std::string::npos));
  const std::string json = doc.substr(open + 8, close - open - 8);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);

  Settings settings;
  const std::int64_t start = root["window_start_ms"].get_int64().value();
  settings.window_ms = static_cast<std::int64_t>(root["window_s"].get_double().value() * 1000);
  settings.energy_price_usd_per_kwh = root["energy_price_usd_per_kwh"].get_double().value();
  std::vector<std::string> prices;
  for (auto p : root["prices"].get_array()) prices.emplace_back(p.get_string().value());
  const PriceCatalog catalog = catalog_with({}, prices);
  WindowInputs in;
  for (auto s : root["samples"].get_array()) {
    in.samples.push_back({std::string(s["gpu"].get_string().value()),
                          std::string(s["host"].get_string().value()), "NVIDIA H200",
                          start + s["t_s"].get_int64().value() * 1000,
                          s["util"].get_double().value(), s["energy_mj"].get_int64().value()});
  }
  for (auto p : root["placements"].get_array()) {
    in.placements.push_back({std::string(p["deployment"].get_string().value()),
                             std::string(p["target"].get_string().value()), start - 1000, start});
  }
  for (auto u : root["usage"].get_array()) {
    UsageRow row;
    row.id = std::string(u["id"].get_string().value());
    row.time_ms = start + 1000;
    row.tenant_id = std::string(u["tenant"].get_string().value());
    row.model = std::string(u["model"].get_string().value());
    std::string_view text_value;
    if (!u["deployment"].get(text_value)) row.deployment = std::string(text_value);
    if (!u["host"].get(text_value)) row.host = std::string(text_value);
    simdjson::dom::array gpus;
    if (!u["gpus"].get(gpus)) {
      for (auto g : gpus) row.gpu_uuids.emplace_back(g.get_string().value());
    }
    row.output_tokens = u["output_tokens"].get_int64().value();
    in.usage.push_back(row);
  }
  const auto result = price_window(start, in, settings, catalog);

  // The expected table: one row per request after the expected marker.
  const auto expected = doc.find("<!-- worked-example:expected");
  REQUIRE(expected != std::string::npos);
  std::istringstream lines(doc.substr(expected));
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("| e", 0) != 0) {
      if (rows > 0) break;
      continue;
    }
    std::vector<std::string> cells;
    std::stringstream cells_in(line.substr(1));
    std::string cell;
    while (std::getline(cells_in, cell, '|')) {
      const auto first = cell.find_first_not_of(' ');
      const auto last = cell.find_last_not_of(' ');
      cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
    }
    REQUIRE(cells.size() >= 8);
    INFO(line);
    const auto it = std::find_if(result.costs.begin(), result.costs.end(),
                                 [&](const UsageCost& c) { return c.id == cells[0]; });
    REQUIRE(it != result.costs.end());
    CHECK(it->placement == cells[1]);
    const auto check = [&](const std::optional<double>& got, const std::string& want) {
      if (want == "null") {
        CHECK_FALSE(got);
      } else {
        REQUIRE(got);
        CHECK(close_to(*got, std::stod(want)));
      }
    };
    check(it->amortized_usd, cells[2]);
    check(it->gpu_seconds, cells[3]);
    check(it->utilization_usd, cells[4]);
    check(it->energy_j, cells[5]);
    check(it->energy_usd, cells[6]);
    CHECK(it->amortized_reason == cells[7]);
    ++rows;
  }
  CHECK(rows == static_cast<int>(result.costs.size()));
  CHECK(rows == 4);
}

TEST_CASE("the price catalog knows current GPUs by NVML's names; overrides are checked", "[cost]") {
  const PriceCatalog catalog = PriceCatalog::builtin();
  for (const char* model :
       {"NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-40GB",
        "NVIDIA A100-SXM4-80GB", "NVIDIA L40S", "NVIDIA L4", "NVIDIA A10G",
        "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA B200"}) {
    INFO(model);
    const auto price = catalog.price_for(model);
    REQUIRE(price);
    CHECK(*price > 0);
  }
  CHECK(catalog.price_for("H100 80GB"));  // the short name too
  CHECK_FALSE(catalog.price_for("NVIDIA H300"));
  CHECK_FALSE(check_price_override("NVIDIA H200=3.10"));
  CHECK_FALSE(check_price_override("H200=3.10"));
  CHECK(check_price_override("NVIDIA H300=3.10").value().find("no GPU named 'NVIDIA H300'") !=
        std::string::npos);
  CHECK(check_price_override("NVIDIA H200=cheap"));
  CHECK(check_price_override("NVIDIA H200=-1"));
  CHECK(check_price_override("NVIDIA H200=1x"));
  CHECK_FALSE(check_extra_gpu("NVIDIA H300=9"));
  CHECK(check_extra_gpu("NVIDIA H300"));
  const PriceCatalog changed = catalog_with({"NVIDIA H300=9"}, {"H200=3.10"});
  CHECK(changed.price_for("NVIDIA H200") == 3.10);
  CHECK(changed.price_for("NVIDIA H300") == 9.0);
}
