#include "cost/cost_model.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::cost {
namespace {

constexpr double kJoulesPerKwh = 3.6e6;

// What the window knows of one GPU from its samples.
struct GpuWindow {
  std::string model_name;  // of its latest sample inside the window
  std::string host;        // of its latest sample inside the window
  double utilization_sum = 0;
  int utilization_samples = 0;
  std::optional<double> energy_j;  // sum of the counter's increments that end in the window
  std::optional<double> price;     // per hour, when the catalog knows the model
  std::int64_t tokens = 0;         // of the events that ran on it
};

// Energy: the counter's increments between consecutive samples, each counted in the window of
// its later sample, so adjacent windows split a GPU's energy without overlap. A decrease (the
// driver reloaded) starts over from the new value.
void add_energy(const std::map<std::string, std::vector<const GpuSampleRow*>>& by_gpu,
                std::map<std::string, GpuWindow>& gpus, std::int64_t start) {
  for (const auto& [uuid, samples] : by_gpu) {
    const auto gpu = gpus.find(uuid);
    if (gpu == gpus.end()) continue;  // no sample inside the window: not present
    const GpuSampleRow* previous = nullptr;
    for (const GpuSampleRow* s : samples) {  // sorted by time
      if (!s->energy_consumed_mj) continue;
      if (s->time_ms >= start) {
        auto& energy = gpu->second.energy_j;
        const std::int64_t delta =
            previous != nullptr ? *s->energy_consumed_mj - *previous->energy_consumed_mj : 0;
        // No baseline yet: the counter is there, its first increment is not known.
        energy = energy.value_or(0) + (delta > 0 ? static_cast<double>(delta) / 1000.0 : 0.0);
      }
      previous = s;
    }
  }
}

std::string host_target(const std::string& host) {
  return "host:" + host;
}

}  // namespace

std::int64_t random_token() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  return static_cast<std::int64_t>(random() >> 1) | 1;
}

std::int64_t window_start(std::int64_t time_ms, std::int64_t window_ms) {
  return time_ms - (((time_ms % window_ms) + window_ms) % window_ms);
}

std::optional<double> UsageCost::cost_per_token() const {
  if (!amortized_usd || tokens <= 0) return std::nullopt;
  return *amortized_usd / static_cast<double>(tokens);
}

WindowResult price_window(std::int64_t start, const WindowInputs& inputs, const Settings& settings,
                          const PriceCatalog& catalog) {
  const std::int64_t end = start + settings.window_ms;
  const double window_s = static_cast<double>(settings.window_ms) / 1000.0;

  // GPUs seen in the window (samples inside it) and their baselines (samples before it). Rows
  // are sorted first so that every sum runs in the same order whatever order the store returned
  // them in: the result is a function of the rows as a set.
  std::vector<const GpuSampleRow*> rows;
  for (const GpuSampleRow& s : inputs.samples) {
    if (s.time_ms < end) rows.push_back(&s);
  }
  std::sort(rows.begin(), rows.end(), [](const GpuSampleRow* a, const GpuSampleRow* b) {
    return std::tie(a->gpu_uuid, a->time_ms, a->host, a->model_name) <
           std::tie(b->gpu_uuid, b->time_ms, b->host, b->model_name);
  });
  std::map<std::string, GpuWindow> gpus;  // only GPUs with a sample inside the window
  std::map<std::string, std::vector<const GpuSampleRow*>> by_gpu;  // baselines too
  std::map<std::string, std::set<std::string>> host_gpus;          // host -> GPUs sampled inside
  for (const GpuSampleRow* s : rows) {
    by_gpu[s->gpu_uuid].push_back(s);
    if (s->time_ms < start) continue;
    GpuWindow& g = gpus[s->gpu_uuid];
    // The latest sample names the model and host (rows are sorted by time).
    g.model_name = s->model_name;
    g.host = s->host;
    if (s->utilization_gpu_percent && std::isfinite(*s->utilization_gpu_percent)) {
      g.utilization_sum += std::clamp(*s->utilization_gpu_percent, 0.0, 100.0);
      ++g.utilization_samples;
    }
  }
  for (const auto& [uuid, g] : gpus) {
    if (!g.host.empty()) host_gpus[g.host].insert(uuid);
  }
  add_energy(by_gpu, gpus, start);
  for (auto& [uuid, g] : gpus) g.price = catalog.price_for(g.model_name);

  // Placements: configured ones replace what was learned for their deployment.
  std::map<std::string, std::set<std::string>> placed;  // deployment -> targets
  std::set<std::string> configured;
  for (const PlacementRow& p : settings.configured) {
    placed[p.deployment].insert(p.target);
    configured.insert(p.deployment);
  }
  for (const PlacementRow& p : inputs.placements) {
    if (configured.count(p.deployment) != 0) continue;
    if (p.first_seen_ms >= end || p.last_seen_ms + settings.placement_ttl_ms < start) continue;
    placed[p.deployment].insert(p.target);
  }

  const auto gpus_of_target = [&](const std::string& target, std::set<std::string>& out) {
    if (target.rfind("gpu:", 0) == 0) {
      out.insert(target.substr(4));
    } else if (target.rfind("host:", 0) == 0) {
      const auto it = host_gpus.find(target.substr(5));
      if (it != host_gpus.end()) out.insert(it->second.begin(), it->second.end());
    }
  };

  // Each event's GPU set, then every GPU's tokens.
  const bool output_only = settings.basis == TokenBasis::kOutput;
  WindowResult result;
  std::vector<std::vector<std::string>> sets(inputs.usage.size());
  for (std::size_t i = 0; i < inputs.usage.size(); ++i) {
    const UsageRow& u = inputs.usage[i];
    UsageCost c;
    c.id = u.id;
    c.time_ms = u.time_ms;
    c.model = u.model;
    c.tenant_id = u.tenant_id;
    c.deployment = u.deployment;
    c.window_start_ms = start;
    c.window_s = window_s;
    c.basis = output_only ? "output" : "input+output";
    c.tokens =
        std::max<std::int64_t>(0, output_only ? u.output_tokens : u.input_tokens + u.output_tokens);
    c.energy_price_usd_per_kwh = settings.energy_price_usd_per_kwh;
    std::set<std::string> set;
    if (!u.gpu_uuids.empty()) {
      set.insert(u.gpu_uuids.begin(), u.gpu_uuids.end());
      c.placement = "gpu_uuids";
    } else if (!u.host.empty()) {
      gpus_of_target(host_target(u.host), set);
      c.placement = "host";
    } else if (const auto it = placed.find(u.deployment);
               !u.deployment.empty() && it != placed.end()) {
      for (const auto& target : it->second) gpus_of_target(target, set);
      c.placement = configured.count(u.deployment) != 0 ? "configured" : "deployment";
    } else {
      c.placement = "none";
    }
    sets[i].assign(set.begin(), set.end());
    for (const auto& uuid : sets[i]) {
      if (const auto g = gpus.find(uuid); g != gpus.end()) g->second.tokens += c.tokens;
    }
    result.costs.push_back(std::move(c));
  }

  std::set<std::pair<std::string, std::string>> unpriced;
  for (std::size_t i = 0; i < inputs.usage.size(); ++i) {
    UsageCost& c = result.costs[i];
    c.gpus = sets[i];
    if (c.gpus.empty()) {
      // A placement whose hosts sent nothing in the window is a lack of metrics, not of
      // placement.
      const std::string reason = c.placement == "none" ? "no_placement" : "no_gpu_metrics";
      c.amortized_reason = c.utilization_reason = c.energy_reason = reason;
      continue;
    }
    double amortized = 0, utilization = 0, gpu_seconds = 0, energy_j = 0, tokens_in_window = 0;
    std::size_t present = 0;
    std::set<std::string> names;
    for (const auto& uuid : c.gpus) {
      const auto it = gpus.find(uuid);
      if (it == gpus.end()) {
        c.amortized_reason = "no_gpu_metrics";
        continue;
      }
      const GpuWindow& g = it->second;
      tokens_in_window += static_cast<double>(g.tokens);
      ++present;
      // An event with no tokens takes no share; a GPU whose events have none shares nothing.
      const double share =
          g.tokens > 0 ? static_cast<double>(c.tokens) / static_cast<double>(g.tokens) : 0.0;
      // Energy needs no price: it is counted for every GPU that has the counter.
      if (g.energy_j) {
        energy_j += share * *g.energy_j;
      } else if (c.energy_reason.empty()) {
        c.energy_reason = "no_energy_counter";
      }
      if (!g.price || !std::isfinite(*g.price)) {
        unpriced.emplace(uuid, g.model_name);
        if (c.amortized_reason.empty()) c.amortized_reason = "unpriced_gpu";
        continue;
      }
      const GpuPrice* entry = catalog.find(g.model_name);
      names.insert(entry != nullptr ? entry->name : g.model_name);
      c.price_per_hour_usd += *g.price;
      amortized += share * *g.price * window_s / 3600.0;
      if (g.utilization_samples > 0) {
        const double busy_s = window_s * g.utilization_sum / g.utilization_samples / 100.0;
        gpu_seconds += share * busy_s;
        utilization += share * busy_s * *g.price / 3600.0;
      } else if (c.utilization_reason.empty()) {
        c.utilization_reason = "no_utilization";
      }
    }
    if (present > 0) {
      c.tokens_in_window =
          static_cast<std::int64_t>(std::llround(tokens_in_window / static_cast<double>(present)));
    }
    for (const auto& name : names) {
      if (!c.gpu_model.empty()) c.gpu_model += '+';
      c.gpu_model += name;
    }
    // A basis is all or nothing: a partial sum over some of the GPUs would understate it.
    // Utilisation is priced, so an unpriced GPU nulls it too; energy only lacks a GPU's
    // metrics.
    if (!c.amortized_reason.empty()) {
      c.utilization_reason = c.amortized_reason;
      if (c.amortized_reason == "no_gpu_metrics") c.energy_reason = c.amortized_reason;
    } else {
      c.amortized_usd = amortized;
    }
    if (c.utilization_reason.empty()) {
      c.gpu_seconds = gpu_seconds;
      c.utilization_usd = utilization;
    }
    if (c.energy_reason.empty()) {
      c.energy_j = energy_j;
      c.energy_usd = energy_j / kJoulesPerKwh * settings.energy_price_usd_per_kwh;
    }
  }
  std::set<std::string> models;
  for (const auto& [uuid, model] : unpriced) {
    result.unpriced_gpus.emplace_back(uuid, model);
    models.insert(model);
  }
  result.unpriced_models.assign(models.begin(), models.end());
  return result;
}

std::string cost_block_json(const UsageCost& c) {
  const auto optional = [](JsonWriter& json, const char* key, const std::optional<double>& v) {
    json.key(key);
    v ? json.value(*v) : json.null();
  };
  JsonWriter json;
  json.begin_object();
  optional(json, "amount_usd", c.amortized_usd);  // the amortised basis, as before
  optional(json, "cost_per_token", c.cost_per_token());
  json.key("price_per_hour_usd")
      .value(c.price_per_hour_usd)
      .key("window_s")
      .value(c.window_s)
      .key("window_start")
      .value(rfc3339_utc(
          std::chrono::system_clock::time_point(std::chrono::milliseconds(c.window_start_ms))))
      .key("tokens")
      .value(c.tokens)
      .key("tokens_in_window")
      .value(c.tokens_in_window)
      .key("gpu_model")
      .value(c.gpu_model)
      .key("basis")
      .value(c.basis)
      .key("placement")
      .value(c.placement)
      .key("gpus")
      .begin_array();
  for (const auto& uuid : c.gpus) json.value(uuid);
  json.end_array();
  optional(json, "gpu_seconds", c.gpu_seconds);
  optional(json, "energy_j", c.energy_j);
  json.key("energy_price_usd_per_kwh").value(c.energy_price_usd_per_kwh);
  optional(json, "amortized_usd", c.amortized_usd);
  optional(json, "utilization_usd", c.utilization_usd);
  optional(json, "energy_usd", c.energy_usd);
  json.key("null_reasons").begin_object();
  if (!c.amortized_reason.empty()) json.key("amortized").value(c.amortized_reason);
  if (!c.utilization_reason.empty()) json.key("utilization").value(c.utilization_reason);
  if (!c.energy_reason.empty()) json.key("energy").value(c.energy_reason);
  json.end_object().end_object();
  return json.take();
}

bool cost_changed(const StoredCost& stored, const UsageCost& priced) {
  if (!stored.priced) return true;
  // The money and the quantities behind it: a change of GPU-seconds or joules matters even when
  // a zero price keeps the money equal.
  const auto differs = [](const std::optional<double>& a, const std::optional<double>& b) {
    if (a.has_value() != b.has_value()) return true;
    if (!a) return false;
    return std::abs(*a - *b) > 1e-9 * std::max({1e-12, std::abs(*a), std::abs(*b)});
  };
  return differs(stored.amortized_usd, priced.amortized_usd) ||
         differs(stored.utilization_usd, priced.utilization_usd) ||
         differs(stored.energy_usd, priced.energy_usd) ||
         differs(stored.gpu_seconds, priced.gpu_seconds) ||
         differs(stored.energy_j, priced.energy_j);
}

}  // namespace telemetryd::cost
