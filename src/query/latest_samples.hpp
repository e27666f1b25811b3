#pragma once
// The latest sample of every GPU, as the query side answers /gpu/info and /v1/devices from it.
// Each queryable store keeps it on write (gpu_latest, newest wins: docs/query-api.md) and hands
// it out whole with Store::latest_samples(); processor::LatestViewCache keeps a copy in memory,
// so those routes cost no database round trip and O(GPUs) at most.

#include <cstdint>
#include <string>
#include <vector>

namespace telemetryd::query {

/// One GPU's latest stored sample.
struct LatestSample {
  std::string gpu_uuid;
  std::string host;
  std::int64_t ts_ms = 0;
  std::string document_json;  // the stored document, as /gpu/info answers it
  std::string device_json;    // its kDeviceFields, as one /v1/devices entry
};

/// /gpu/info's answer from the view: the newest sample matching the filter (empty: any), or
/// "null".
std::string latest_json_of(const std::vector<LatestSample>& samples, const std::string& gpu_uuid,
                           const std::string& host);

/// /v1/devices' list from the view (in the samples' order, gpu_uuid order from the stores).
std::string devices_json_of(const std::vector<LatestSample>& samples);

}  // namespace telemetryd::query
