#pragma once
// Event ids for receivers that must turn the same outside fact into the same event every time:
// an OTLP span exported twice, a scrape interval replayed after a crash. The id decides
// duplicates downstream (stores insert by id), so determinism here is what "stored once" rests on.

#include <cstdint>
#include <string>
#include <string_view>

namespace telemetryd::events {

/// A lowercase RFC 9562 version-7 UUID: the 48-bit Unix time `time_ms` (so ids sort by time as
/// v7 ids should), version 7, variant 10, and the other 74 bits from SHA-256(`seed`). The same
/// inputs always give the same id; different seeds collide with probability 2^-74.
std::string deterministic_uuid_v7(std::int64_t time_ms, std::string_view seed);

}  // namespace telemetryd::events
