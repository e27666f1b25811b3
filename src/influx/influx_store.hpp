#pragma once
// The processor's InfluxDB store: every gpu_metrics and token_usage event becomes one point
// (line_protocol.hpp), written in requests of at most `batch_size` points. Writes are idempotent
// by series and timestamp: a retry or redelivery rewrites the same points. InfluxDB cannot tell
// a rewrite from a first write, so every point written counts as inserted (no duplicates).
// Queries (/gpu/info, /v1/usage, /v1/gpus, /v1/gpus/{uuid}/metrics, /v1/devices) are not served
// from InfluxDB: use its own query API or Grafana, or run with processor.sinks: [mongodb,
// influxdb].

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "influx/influx_writer.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::influx {

/// Gives every point a (series, timestamp) slot of its own: points of one series and time but
/// different event ids move to the next free time unit; an event id seen in the last kCapacity
/// points gets its earlier slot again (retries and redeliveries stay idempotent).
class SlotTracker {
 public:
  static constexpr std::size_t kCapacity = 1 << 18;  // ~30 MB; ~10 s of points at 25k/s
  /// Rewrites the timestamps of `lines` (at `indices`, encoded from `batch`) where needed.
  void assign(const std::vector<std::size_t>& indices, const std::vector<StoredEvent>& batch,
              std::vector<std::string>& lines);

 private:
  struct Slot {
    std::uint64_t series;  // hash of measurement and tag set
    std::int64_t time;
    bool operator==(const Slot&) const = default;
  };
  struct SlotHash {
    std::size_t operator()(const Slot& s) const {
      return static_cast<std::size_t>(s.series ^
                                      (static_cast<std::uint64_t>(s.time) * 0x9e3779b97f4a7c15ULL));
    }
  };
  static std::uint64_t hash(std::string_view text);
  void remember(Slot slot, std::uint64_t id);

  std::unordered_map<Slot, std::uint64_t, SlotHash> slots_;  // slot -> event id hash
  std::unordered_map<std::uint64_t, Slot> by_id_;
  std::deque<std::uint64_t> order_;  // oldest first, for eviction
};

struct StoreSettings {
  WriterSettings writer;
  std::size_t batch_size = 5000;  // points per HTTP request
};

class InfluxStore final : public Store {
 public:
  explicit InfluxStore(StoreSettings settings);

  /// v1: CREATE DATABASE (idempotent). v2: the bucket must exist (checked through
  /// /api/v2/buckets; InfluxDB 1.8's compatibility API has none, then /ping only).
  Result<bool> prepare(const events::GpuCatalog& catalog) override;
  Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const UsageQuery& query) override;
  Result<std::string> gpu_series_json(const query::SeriesQuery& query) override;
  Result<std::string> devices_json() override;
  bool supports_queries() const override { return false; }

 private:
  Result<bool> create_database();
  // Writes the points at `indices`, narrowing down partial writes; adds to `outcome`.
  Result<bool> write_points(std::vector<std::size_t> indices, const std::vector<StoredEvent>& batch,
                            const std::vector<std::string>& lines, WriteOutcome& outcome);

  StoreSettings settings_;
  InfluxWriter writer_;
  simdjson::dom::parser parser_;
  SlotTracker slots_;
};

/// The index (into `lines`) of the points a partial write dropped, per its message: the points of
/// a conflicting measurement that carry the conflicting field, and unparsable lines.
std::vector<std::size_t> points_named_by(const PartialWrite& partial,
                                         const std::vector<std::size_t>& indices,
                                         const std::vector<std::string>& lines);

}  // namespace telemetryd::influx
