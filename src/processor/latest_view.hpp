#pragma once
// An in-memory copy of a store's latest view (query/latest_samples.hpp), so /gpu/info and
// /v1/devices cost no database round trip and O(GPUs) at most.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "query/latest_samples.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd {
struct GpuQuery;
class Store;
}  // namespace telemetryd

namespace telemetryd::processor {

/// An in-memory copy of a store's latest view. It is read again when this process stored new
/// GPU samples since (Store::latest_generation) or when it is older than `max_age`: other
/// processors may write the same database, so an answer is at most max_age behind them and
/// never behind this process's own writes. One reload at a time; readers meanwhile wait for it.
class LatestViewCache {
 public:
  LatestViewCache(Store& store, std::chrono::milliseconds max_age);

  /// The answers from a copy that needs no reload, or nullopt (then call the Result ones, which
  /// may read the store, on a thread that may block).
  std::optional<std::string> cached_latest_json(const GpuQuery& query) const;
  std::optional<std::string> cached_devices_json() const;
  Result<std::string> latest_json(const GpuQuery& query);
  Result<std::string> devices_json();

 private:
  struct Snapshot {
    std::vector<query::LatestSample> samples;
    std::string devices_json;
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point loaded;
  };
  std::shared_ptr<const Snapshot> fresh() const;
  Result<std::shared_ptr<const Snapshot>> fresh_or_reload();

  Store& store_;
  std::chrono::milliseconds max_age_;
  mutable std::mutex mutex_;  // guards snapshot_
  std::shared_ptr<const Snapshot> snapshot_;
  std::mutex reload_mutex_;
};

}  // namespace telemetryd::processor
