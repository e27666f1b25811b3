#pragma once
// The `gpus` catalog the store keeps and /v1/gpus serves: the GPU profiles (the synthetic
// fleet's, or gpu_profiles_file) with the price the cost model charges for each
// (src/cost/price_catalog.hpp), so the catalog and the costs never disagree.

#include <string>
#include <vector>

namespace telemetryd::events {

class GpuCatalog {
 public:
  struct Entry {
    std::string name;        // profile name, e.g. "H100 80GB"
    std::string model_name;  // as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    double price_per_hour_usd = 0;
  };
  void add(Entry entry) { entries_.push_back(std::move(entry)); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

}  // namespace telemetryd::events
