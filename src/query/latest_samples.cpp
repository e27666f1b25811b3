#include "query/latest_samples.hpp"

namespace telemetryd::query {

std::string latest_json_of(const std::vector<LatestSample>& samples, const std::string& gpu_uuid,
                           const std::string& host) {
  const LatestSample* newest = nullptr;
  for (const auto& sample : samples) {
    if (!gpu_uuid.empty() && sample.gpu_uuid != gpu_uuid) continue;
    if (!host.empty() && sample.host != host) continue;
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

}  // namespace telemetryd::query
