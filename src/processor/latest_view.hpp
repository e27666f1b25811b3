#pragma once
// The latest sample of every GPU, as the query side answers /gpu/info and /v1/devices from it.
// Each queryable store keeps it on write (gpu_latest, newest wins: docs/query-api.md) and hands
// it out whole with Store::latest_samples(); LatestViewCache keeps a copy in memory, so those
// routes cost no database round trip and O(GPUs) at most.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "telemetryd/result.hpp"

namespace telemetryd::processor {

struct GpuQuery;
class Store;

/// One GPU's latest stored sample.
struct LatestSample {
  std::string gpu_uuid;
  std::string host;
  std::int64_t ts_ms = 0;
  std::string document_json;  // the stored document, as /gpu/info answers it
  std::string device_json;    // its kDeviceFields, as one /v1/devices entry
};

/// /gpu/info's answer from the view: the newest sample matching the filter, or "null".
std::string latest_json_of(const std::vector<LatestSample>& samples, const GpuQuery& query);
/// /v1/devices' list from the view (in the samples' order, gpu_uuid order from the stores).
std::string devices_json_of(const std::vector<LatestSample>& samples);

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
    std::vector<LatestSample> samples;
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
