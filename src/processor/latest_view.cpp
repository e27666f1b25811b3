#include "processor/latest_view.hpp"

#include "telemetryd/sink.hpp"

namespace telemetryd::processor {

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
  Result<std::vector<query::LatestSample>> samples = store_.latest_samples();
  if (!samples) return samples.error();
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->samples = std::move(samples.value());
  snapshot->devices_json = query::devices_json_of(snapshot->samples);
  snapshot->generation = generation;
  snapshot->loaded = loaded;
  const std::lock_guard lock(mutex_);
  snapshot_ = snapshot;
  return std::shared_ptr<const Snapshot>(std::move(snapshot));
}

std::optional<std::string> LatestViewCache::cached_latest_json(const GpuQuery& query) const {
  if (auto snapshot = fresh())
    return query::latest_json_of(snapshot->samples, query.gpu_uuid, query.host);
  return std::nullopt;
}

std::optional<std::string> LatestViewCache::cached_devices_json() const {
  if (auto snapshot = fresh()) return snapshot->devices_json;
  return std::nullopt;
}

Result<std::string> LatestViewCache::latest_json(const GpuQuery& query) {
  Result<std::shared_ptr<const Snapshot>> snapshot = fresh_or_reload();
  if (!snapshot) return snapshot.error();
  return query::latest_json_of(snapshot.value()->samples, query.gpu_uuid, query.host);
}

Result<std::string> LatestViewCache::devices_json() {
  Result<std::shared_ptr<const Snapshot>> snapshot = fresh_or_reload();
  if (!snapshot) return snapshot.error();
  return snapshot.value()->devices_json;
}

}  // namespace telemetryd::processor
