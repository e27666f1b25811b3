#pragma once
// GPU history for GET /v1/gpus/{uuid}/metrics and GET /v1/devices, shared by the stores: the
// summarised fields, the step format and bucket arithmetic, a bucketing accumulator, and the JSON
// both stores answer with, so MongoDB and SQLite return the same document.
//
// Buckets are aligned to the Unix epoch (a bucket starts at a multiple of the step), like
// InfluxDB's GROUP BY time(): the same step gives the same buckets on every refresh, and the
// first and last bucket of a range may be partial.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace telemetryd::query {

/// A numeric field of a stored gpu_metrics document that the series summarises.
struct SeriesField {
  const char* path;  // dotted path in the stored document: "activity.sm_active_percent"
  bool integer;      // an integer in the event contract: its max is written as an integer
};

inline constexpr std::array<SeriesField, 8> kSeriesFields{{
    {"utilization_gpu_percent", false},
    {"utilization_memory_percent", false},
    {"memory_used_bytes", true},
    {"power_draw_watts", false},
    {"temperature_gpu_celsius", false},
    {"clock_sm_mhz", true},
    {"activity.sm_active_percent", false},
    {"activity.tensor_active_percent", false},
}};

/// The fields of each /v1/devices entry, in response order (absent ones are omitted).
inline constexpr std::array<const char*, 10> kDeviceFields{"gpu_uuid",
                                                           "host",
                                                           "model_name",
                                                           "ts",
                                                           "utilization_gpu_percent",
                                                           "utilization_memory_percent",
                                                           "memory_used_bytes",
                                                           "memory_total_bytes",
                                                           "power_draw_watts",
                                                           "temperature_gpu_celsius"};

/// More buckets than this in one answer is a 400: ask for a larger step or a shorter range.
inline constexpr std::int64_t kMaxSeriesPoints = 10000;
/// Without `step`, the smallest step of the ladder 1s, 2s, 5s, 10s, 15s, 30s, 1m, 2m, 5m, 10m,
/// 15m, 30m, 1h, 2h, 3h, 6h, 12h, 1d (then whole days) giving at most this many buckets.
inline constexpr std::int64_t kDefaultSeriesPoints = 1000;
/// Without `from`, the range is this long and ends at `to` (default: now).
inline constexpr std::chrono::hours kDefaultSeriesRange{1};
/// A longer range `to - from` is a 400: it bounds what one query makes the store read.
inline constexpr std::chrono::days kMaxSeriesRange{31};
/// A longer GPU uuid in the path is a 400 (NVML's are 40 bytes, MIG instances' 45).
inline constexpr std::size_t kMaxGpuUuidBytes = 128;

struct SeriesQuery {
  std::string gpu_uuid;
  std::chrono::system_clock::time_point from;  // inclusive
  std::chrono::system_clock::time_point to;    // exclusive
  std::int64_t step_ms = 1000;
};

struct FieldStats {
  double avg = 0;
  double max = 0;
};

struct SeriesPoint {
  std::int64_t bucket_ms = 0;  // the bucket's start
  std::int64_t samples = 0;    // documents in the bucket
  // Per kSeriesFields entry; empty when no document in the bucket has the field.
  std::array<std::optional<FieldStats>, kSeriesFields.size()> fields;
};

/// The start of the step-aligned bucket holding `ts_ms` (a floor, also before 1970).
std::int64_t bucket_start(std::int64_t ts_ms, std::int64_t step_ms);
/// How many buckets the range [from_ms, to_ms) touches; 0 when it is empty.
std::int64_t bucket_count(std::int64_t from_ms, std::int64_t to_ms, std::int64_t step_ms);
/// `<n>ms`, `<n>s`, `<n>m`, `<n>h`, `<n>d`, or `<n>` seconds; n a positive integer of at most
/// 9 digits. False for anything else.
bool parse_step(std::string_view text, std::int64_t& step_ms);
/// The largest whole unit: 500ms, 10s, 2m, 1h, 1d.
std::string format_step(std::int64_t step_ms);
/// The default step for [from_ms, to_ms), see kDefaultSeriesPoints.
std::int64_t default_step(std::int64_t from_ms, std::int64_t to_ms);

/// Buckets samples one at a time, in any order: MongoStore's way, as FerretDB's aggregation has
/// no arithmetic on dates and no $avg or $max to group with.
class SeriesBuilder {
 public:
  explicit SeriesBuilder(std::int64_t step_ms) : step_ms_(step_ms) {}
  /// Starts a sample at `ts_ms`; add_value then adds its fields.
  void add_sample(std::int64_t ts_ms);
  void add_value(std::size_t field, double value);
  /// The non-empty buckets, oldest first.
  std::vector<SeriesPoint> take();

 private:
  struct Sums {
    std::int64_t count = 0;
    double sum = 0;
    double max = 0;
  };
  struct Bucket {
    std::int64_t samples = 0;
    std::array<Sums, kSeriesFields.size()> fields{};
  };
  std::int64_t step_ms_;
  std::map<std::int64_t, Bucket> buckets_;
  Bucket* current_ = nullptr;
};

/// The points as the JSON array the route embeds:
/// [{"ts":"<RFC 3339>","samples":n,"utilization_gpu_percent":{"avg":..,"max":..},...,
///   "activity":{"sm_active_percent":{"avg":..,"max":..}}}]
std::string series_points_json(const std::vector<SeriesPoint>& points);

}  // namespace telemetryd::query
