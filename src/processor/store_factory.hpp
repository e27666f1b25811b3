#pragma once
// Which store(s) the processor role writes to: processor.store = mongodb (default), influxdb, or
// both. With both, a batch is done only once MongoDB and InfluxDB acknowledged it; queries are
// served from MongoDB.

#include <memory>
#include <vector>

#include "processor/store.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::processor {

/// The processor.store key, for the processor section.
std::vector<KeySpec> store_keys();

/// Builds the configured store; throws StartupError for unusable settings.
std::unique_ptr<Store> make_processor_store(const Config& config);

/// Writes each batch to `primary` (queried) and then `secondary` (write-only). A batch the
/// primary acknowledged is not written to it again when the same batch is retried because the
/// secondary failed, so MongoDB does not count the retry as duplicates.
class TeeStore final : public Store {
 public:
  TeeStore(std::unique_ptr<Store> primary, std::unique_ptr<Store> secondary);
  Result<bool> prepare(const GpuCatalog& catalog) override;
  Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const UsageQuery& query) override;
  Result<std::string> gpu_series_json(const SeriesQuery& query) override;
  Result<std::string> devices_json() override;
  bool supports_queries() const override { return primary_->supports_queries(); }

 private:
  std::unique_ptr<Store> primary_;
  std::unique_ptr<Store> secondary_;
  // The primary's outcome of the last batch it acknowledged, by the batch's event ids.
  std::uint64_t acknowledged_fingerprint_ = 0;
  std::optional<WriteOutcome> acknowledged_;
};

}  // namespace telemetryd::processor
