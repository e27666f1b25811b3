#include "processor/cost_window.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace telemetryd::processor {

void GpuCatalog::add(Entry entry) {
  entries_.push_back(std::move(entry));
}

bool GpuCatalog::set_price(const std::string& name, double price_per_hour_usd) {
  bool found = false;
  for (auto& entry : entries_) {
    if (entry.name == name) {
      entry.price_per_hour_usd = price_per_hour_usd;
      found = true;
    }
  }
  return found;
}

void GpuCatalog::observe_gpu(const std::string& gpu_uuid, const std::string& model_name,
                             const std::string& host) {
  gpu_models_[gpu_uuid] = model_name;
  if (host.empty()) return;
  auto [it, inserted] = gpu_hosts_.try_emplace(gpu_uuid, host);
  if (!inserted && it->second == host) return;
  if (!inserted) {  // the GPU moved (a node renamed): forget it under the old host
    auto& old = host_gpus_[it->second];
    old.erase(std::remove(old.begin(), old.end(), gpu_uuid), old.end());
    it->second = host;
  }
  auto& gpus = host_gpus_[host];
  gpus.insert(std::upper_bound(gpus.begin(), gpus.end(), gpu_uuid), gpu_uuid);
}

const std::vector<std::string>& GpuCatalog::gpus_on_host(const std::string& host) const {
  static const std::vector<std::string> kNone;
  const auto it = host_gpus_.find(host);
  return it == host_gpus_.end() ? kNone : it->second;
}

const GpuCatalog::Entry* GpuCatalog::entry_for_gpu(const std::string& gpu_uuid) const {
  const auto model = gpu_models_.find(gpu_uuid);
  if (model == gpu_models_.end()) return nullptr;
  // The profile name is accepted too, so a source that reports "H100 80GB" still gets priced.
  for (const auto& entry : entries_) {
    if (entry.model_name == model->second || entry.name == model->second) return &entry;
  }
  return nullptr;
}

CostWindow::CostWindow(CostSettings settings, const GpuCatalog& catalog)
    : settings_(settings), catalog_(catalog) {}

// The deque is kept sorted by event time, so eviction only ever pops the front. An out-of-order
// event is inserted at its place (usually near the back): it counts while it is inside the
// window, but it never moves the newest time, so it cannot evict newer entries. An event already
// older than newest - W is inserted and evicted at once: it adds nothing to the window and is
// priced at the window's current cost per token.
Cost CostWindow::add(const std::string& key, std::chrono::system_clock::time_point time,
                     std::int64_t input_tokens, std::int64_t output_tokens,
                     const std::vector<std::string>& gpu_uuids) {
  const bool output_only = settings_.basis == CostBasis::kOutput;
  const std::int64_t tokens = output_only ? output_tokens : input_tokens + output_tokens;

  Window& window = windows_[key];
  auto& entries = window.entries;
  auto at = entries.end();  // in-order events stop here at once
  while (at != entries.begin() && std::prev(at)->time > time) --at;
  entries.insert(at, Entry{time, tokens, gpu_uuids});
  window.tokens += tokens;
  for (const auto& uuid : gpu_uuids) ++window.gpu_refs[uuid];

  const auto cutoff = entries.back().time - settings_.window;
  while (!entries.empty() && entries.front().time <= cutoff) {
    window.tokens -= entries.front().tokens;
    for (const auto& uuid : entries.front().gpu_uuids) {
      const auto ref = window.gpu_refs.find(uuid);
      if (--ref->second == 0) window.gpu_refs.erase(ref);
    }
    entries.pop_front();
  }

  Cost cost;
  cost.basis = output_only ? "output" : "input+output";
  cost.window_s = std::chrono::duration<double>(settings_.window).count();
  cost.tokens_in_window = window.tokens;
  std::vector<std::string> names;
  for (const auto& [uuid, refs] : window.gpu_refs) {
    const auto* entry = catalog_.entry_for_gpu(uuid);
    // Unknown GPUs, and non-positive or non-finite prices, add nothing: a bad override must not
    // turn the whole window's cost into NaN.
    if (entry == nullptr || !std::isfinite(entry->price_per_hour_usd) ||
        entry->price_per_hour_usd <= 0) {
      continue;
    }
    cost.price_per_hour_usd += entry->price_per_hour_usd;
    names.push_back(entry->name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const auto& name : names) {
    if (!cost.gpu_model.empty()) cost.gpu_model += '+';
    cost.gpu_model += name;
  }

  if (cost.tokens_in_window > 0 && cost.price_per_hour_usd > 0) {
    cost.cost_per_token = cost.price_per_hour_usd * (cost.window_s / 3600.0) /
                          static_cast<double>(cost.tokens_in_window);
    cost.amount_usd = *cost.cost_per_token * static_cast<double>(tokens);
  }
  latest_[key] = cost.cost_per_token;
  return cost;
}

}  // namespace telemetryd::processor
