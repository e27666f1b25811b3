#pragma once
// Builds CloudEvents 1.0 structured-mode JSON and their ids.

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace telemetryd::events {

/// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Time-ordered, so MongoDB's
/// _id index stays append-mostly. The generator is seeded from the OS, never from a workload
/// seed: two runs with the same seed must still produce distinct ids.
class UuidV7Generator {
 public:
  UuidV7Generator();
  std::string next(std::chrono::system_clock::time_point now);

 private:
  std::mt19937_64 rng_;
};

/// The CloudEvents `source` of events this host's `component` makes: "//telemetryd/HOST/COMPONENT".
std::string local_source(std::string_view component);

/// The envelope around an already-encoded `data` object.
std::string encode_cloudevent(std::string_view id, std::string_view source, std::string_view type,
                              std::chrono::system_clock::time_point time, std::string_view subject,
                              std::string_view data_json);

}  // namespace telemetryd::events
