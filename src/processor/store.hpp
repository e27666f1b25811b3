#pragma once
// Where the processor keeps events: MongoDB and/or InfluxDB for the processor role, SQLite for
// the embedded `all` role. Writes are idempotent by event id, so a redelivered event is stored
// once.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "processor/cost_window.hpp"
#include "processor/event_decoder.hpp"
#include "processor/gpu_series.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::processor {

struct StoredEvent {
  const DecodedEvent* event = nullptr;
  std::optional<Cost> cost;  // token usage only
};

struct WriteOutcome {
  std::size_t gpu_metrics_inserted = 0;
  std::size_t token_usage_inserted = 0;
  std::size_t duplicates = 0;
  /// Batch index and reason of documents the store refused for good (they go to the DLQ).
  std::vector<std::pair<std::size_t, std::string>> rejected;
};

struct GpuQuery {
  std::string gpu_uuid;  // empty: any
  std::string host;      // empty: any
};

struct UsageQuery {
  std::string group_by = "model";  // "model" or "tenant"
  std::optional<std::chrono::system_clock::time_point> from;
  std::optional<std::chrono::system_clock::time_point> to;
};

class Store {
 public:
  virtual ~Store() = default;
  /// Ensures indexes and upserts the GPU catalog. Retryable errors mean the server is away.
  virtual Result<bool> prepare(const GpuCatalog& catalog) = 0;
  virtual Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) = 0;
  /// The latest gpu_metrics document as JSON, or "null" when none matches.
  virtual Result<std::string> latest_gpu_json(const GpuQuery& query) = 0;
  /// The gpus catalog as a JSON array.
  virtual Result<std::string> gpus_json() = 0;
  /// Token and cost totals grouped by model or tenant, as a JSON array.
  virtual Result<std::string> usage_json(const UsageQuery& query) = 0;
  /// One GPU's samples in [from, to) bucketed by step, as series_points_json's array (empty
  /// when the range has none), or "null" when the store holds no sample of that GPU at all.
  virtual Result<std::string> gpu_series_json(const SeriesQuery& query) = 0;
  /// The latest sample of every GPU (kDeviceFields), one object per gpu_uuid in gpu_uuid order,
  /// as a JSON array.
  virtual Result<std::string> devices_json() = 0;
  /// False for a write-only store (InfluxDB): the query routes then answer 501.
  virtual bool supports_queries() const { return true; }
};

}  // namespace telemetryd::processor
