#include "processor/latest_view.hpp"

#include "processor/store.hpp"

namespace telemetryd::processor {

std::string latest_json_of(const std::vector<LatestSample>& samples, const GpuQuery& query) {
  const LatestSample* newest = nullptr;
  for (const auto& sample : samples) {
    if (!query.gpu_uuid.empty() && sample.gpu_uuid != query.gpu_uuid) continue;
    if (!query.host.empty() && sample.host != query.host) continue;
    if (newest == nullptr || sample.ts_ms > newest->ts_ms) newest = &sample;
  }
  return newest == nullptr ? std::string("null") : newest->document_json;
}

std::string devices_json_of(const std::vector<LatestSample>& samples) {
  std::string out = "[";
  for (const auto& sample : samples) {
    if (out.size() > 1) out += ',';
    out += sample.device_json;
  }
  out += ']';
  return out;
}

LatestViewCache::LatestViewCache(Store& store, std::chrono::milliseconds max_age)
    : store_(store), max_age_(max_age) {}

std::shared_ptr<const LatestViewCache::Snapshot> LatestViewCache::fresh() const {
  std::shared_ptr<const Snapshot> snapshot;
  {
    const std::lock_guard lock(mutex_);
    snapshot = snapshot_;
  }
  if (!snapshot || snapshot->generation != store_.latest_generation() ||
      std::chrono::steady_clock::now() - snapshot->loaded >= max_age_) {
    return nullptr;
  }
  return snapshot;
}

Result<std::shared_ptr<const LatestViewCache::Snapshot>> LatestViewCache::fresh_or_reload() {
  if (auto snapshot = fresh()) return snapshot;
  const std::lock_guard reloading(reload_mutex_);
  if (auto snapshot = fresh()) return snapshot;  // reloaded while this one waited
  // The generation before the read: a write that lands during it makes the copy stale at once.
  const std::uint64_t generation = store_.latest_generation();
  const auto loaded = std::chrono::steady_clock::now();
  Result<std::vector<LatestSample>> samples = store_.latest_samples();
  if (!samples) return samples.error();
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->samples = std::move(samples.value());
  snapshot->devices_json = devices_json_of(snapshot->samples);
  snapshot->generation = generation;
  snapshot->loaded = loaded;
  const std::lock_guard lock(mutex_);
  snapshot_ = snapshot;
  return std::shared_ptr<const Snapshot>(std::move(snapshot));
}

std::optional<std::string> LatestViewCache::cached_latest_json(const GpuQuery& query) const {
  if (auto snapshot = fresh()) return latest_json_of(snapshot->samples, query);
  return std::nullopt;
}

std::optional<std::string> LatestViewCache::cached_devices_json() const {
  if (auto snapshot = fresh()) return snapshot->devices_json;
  return std::nullopt;
}

Result<std::string> LatestViewCache::latest_json(const GpuQuery& query) {
  Result<std::shared_ptr<const Snapshot>> snapshot = fresh_or_reload();
  if (!snapshot) return snapshot.error();
  return latest_json_of(snapshot.value()->samples, query);
}

Result<std::string> LatestViewCache::devices_json() {
  Result<std::shared_ptr<const Snapshot>> snapshot = fresh_or_reload();
  if (!snapshot) return snapshot.error();
  return snapshot.value()->devices_json;
}

}  // namespace telemetryd::processor
