#pragma once
// InfluxDB line protocol for the processor's events: one point per event, measurement
// gpu_metrics or token_usage. Tags carry the low-cardinality identity (host, GPU, model, tenant),
// fields the values, the event id and source; the timestamp is the event's time.
//
// Two points with the same measurement, tag set and timestamp are one point in InfluxDB (the
// later overwrites the earlier). The event id is NOT a tag: a tag per event makes a series per
// event, and InfluxDB's series index (max-series-per-database 1M by default) and query speed
// degrade with series count, not point count. Instead the point's time is the event's
// millisecond plus a sub-millisecond offset derived from the event id (a 64-bit hash modulo
// 10^6 ns). A redelivered event (same id) lands on the same series and nanosecond and simply
// rewrites itself (idempotent); two distinct events of one series within one millisecond collide
// only if their ids hash to the same nanosecond (1e-6 per such pair, but bursts of hundreds of
// events per series and millisecond do hit it), and InfluxStore's SlotTracker moves the later
// one to the next free nanosecond (docs/influxdb.md).

#include <cstdint>
#include <string>
#include <string_view>

#include "telemetryd/sink.hpp"

namespace telemetryd::influx {

enum class Precision { kNanoseconds, kMilliseconds };

/// Escapes a measurement name: commas and spaces.
void append_measurement(std::string& out, std::string_view name);
/// Escapes a tag key, tag value or field key: commas, equals signs and spaces.
void append_key(std::string& out, std::string_view key);
/// A double-quoted string field value with quotes and backslashes escaped.
void append_string_field(std::string& out, std::string_view value);

/// The sub-millisecond offset of an event id, in nanoseconds (0..999999).
std::int64_t id_offset_ns(std::string_view event_id);
/// The point time: event time truncated to the millisecond, plus the id offset (ns precision),
/// or just the millisecond (ms precision).
std::int64_t point_time(const events::DecodedEvent& event, Precision precision);

/// Appends one point and its newline. On failure (a tag value InfluxDB cannot carry: a newline,
/// or a trailing backslash) appends nothing and returns the reason.
std::string encode_point(std::string& out, const StoredEvent& stored, Precision precision,
                         simdjson::dom::parser& parser);

inline std::string_view measurement_of(events::EventKind kind) {
  return kind == events::EventKind::kTokenUsage ? "token_usage" : "gpu_metrics";
}

}  // namespace telemetryd::influx
