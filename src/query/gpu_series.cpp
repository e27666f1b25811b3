#include "query/gpu_series.hpp"

#include <charconv>
#include <cmath>

#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::query {

namespace {

constexpr std::int64_t kSecond = 1000;
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;

// Averages of byte counts are large: plain decimals read better than 8.05e+10 in an API answer.
void write_number(JsonWriter& json, double value) {
  if (!std::isfinite(value) || std::fabs(value) >= 1e15) {
    json.value(value);
    return;
  }
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed);
  if (ec != std::errc{}) {
    json.value(value);
    return;
  }
  json.raw(std::string_view(buf, static_cast<std::size_t>(end - buf)));
}

void write_stats(JsonWriter& json, const SeriesField& field, const FieldStats& stats) {
  json.begin_object().key("avg");
  write_number(json, stats.avg);
  json.key("max");
  if (field.integer) {
    json.value(static_cast<std::int64_t>(std::llround(stats.max)));
  } else {
    write_number(json, stats.max);
  }
  json.end_object();
}

}  // namespace

std::int64_t bucket_start(std::int64_t ts_ms, std::int64_t step_ms) {
  return ts_ms - ((ts_ms % step_ms) + step_ms) % step_ms;
}

std::int64_t bucket_count(std::int64_t from_ms, std::int64_t to_ms, std::int64_t step_ms) {
  if (to_ms <= from_ms) return 0;
  return (bucket_start(to_ms - 1, step_ms) - bucket_start(from_ms, step_ms)) / step_ms + 1;
}

bool parse_step(std::string_view text, std::int64_t& step_ms) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 9) return false;
  std::int64_t n = 0;
  std::from_chars(text.data(), text.data() + digits, n);
  const std::string_view unit = text.substr(digits);
  std::int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s" || unit.empty()) {
    scale = kSecond;
  } else if (unit == "m") {
    scale = kMinute;
  } else if (unit == "h") {
    scale = kHour;
  } else if (unit == "d") {
    scale = kDay;
  } else {
    return false;
  }
  if (n <= 0) return false;
  step_ms = n * scale;  // at most 999999999 days: no overflow
  return true;
}

std::string format_step(std::int64_t step_ms) {
  for (const auto& [scale, unit] : {std::pair{kDay, "d"}, std::pair{kHour, "h"},
                                    std::pair{kMinute, "m"}, std::pair{kSecond, "s"}}) {
    if (step_ms % scale == 0) return std::to_string(step_ms / scale) + unit;
  }
  return std::to_string(step_ms) + "ms";
}

std::int64_t default_step(std::int64_t from_ms, std::int64_t to_ms) {
  for (const std::int64_t step :
       {kSecond, 2 * kSecond, 5 * kSecond, 10 * kSecond, 15 * kSecond, 30 * kSecond, kMinute,
        2 * kMinute, 5 * kMinute, 10 * kMinute, 15 * kMinute, 30 * kMinute, kHour, 2 * kHour,
        3 * kHour, 6 * kHour, 12 * kHour, kDay}) {
    if (bucket_count(from_ms, to_ms, step) <= kDefaultSeriesPoints) return step;
  }
  // Whole days: start near the answer (the count is at most one more than range / step).
  std::int64_t days = std::max<std::int64_t>(1, (to_ms - from_ms) / (kDefaultSeriesPoints * kDay));
  while (bucket_count(from_ms, to_ms, days * kDay) > kDefaultSeriesPoints) ++days;
  return days * kDay;
}

void SeriesBuilder::add_sample(std::int64_t ts_ms) {
  current_ = &buckets_[bucket_start(ts_ms, step_ms_)];
  ++current_->samples;
}

void SeriesBuilder::add_value(std::size_t field, double value) {
  if (current_ == nullptr || field >= kSeriesFields.size() || !std::isfinite(value)) return;
  Sums& sums = current_->fields[field];
  sums.max = sums.count == 0 ? value : std::max(sums.max, value);
  sums.sum += value;
  ++sums.count;
}

std::vector<SeriesPoint> SeriesBuilder::take() {
  std::vector<SeriesPoint> points;
  points.reserve(buckets_.size());
  for (const auto& [start, bucket] : buckets_) {
    SeriesPoint point;
    point.bucket_ms = start;
    point.samples = bucket.samples;
    for (std::size_t i = 0; i < kSeriesFields.size(); ++i) {
      const Sums& sums = bucket.fields[i];
      if (sums.count > 0) {
        point.fields[i] = FieldStats{sums.sum / static_cast<double>(sums.count), sums.max};
      }
    }
    points.push_back(point);
  }
  buckets_.clear();
  current_ = nullptr;
  return points;
}

std::string series_points_json(const std::vector<SeriesPoint>& points) {
  JsonWriter json;
  json.begin_array();
  for (const auto& point : points) {
    json.begin_object()
        .key("ts")
        .value(rfc3339_utc(
            std::chrono::system_clock::time_point(std::chrono::milliseconds(point.bucket_ms))))
        .key("samples")
        .value(point.samples);
    // Top-level fields first, then each nested object ("activity") with its members, so a
    // group is written once however many of its fields are present.
    std::string open_group;
    for (std::size_t i = 0; i < kSeriesFields.size(); ++i) {
      if (!point.fields[i]) continue;
      const std::string_view path = kSeriesFields[i].path;
      const auto dot = path.find('.');
      const std::string_view group = dot == std::string_view::npos ? "" : path.substr(0, dot);
      if (group != open_group) {
        if (!open_group.empty()) json.end_object();
        if (!group.empty()) json.key(group).begin_object();
        open_group = group;
      }
      json.key(dot == std::string_view::npos ? path : path.substr(dot + 1));
      write_stats(json, kSeriesFields[i], *point.fields[i]);
    }
    if (!open_group.empty()) json.end_object();
    json.end_object();
  }
  json.end_array();
  return json.take();
}

}  // namespace telemetryd::query
