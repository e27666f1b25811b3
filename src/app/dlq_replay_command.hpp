#pragma once
// `telemetryd dlq replay`: reads the processor's dead-letter topics up to their end at start and
// sends the original bytes and key of the selected letters back to their source topic (or
// another), with provenance headers; --dry-run only prints them. The store keeps one document
// per event id, so replaying a letter twice stores nothing twice (docs/events.md).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace telemetryd::app {

struct DlqReplayOptions {
  std::string config_file;
  std::vector<std::string> overrides;
  std::vector<std::string> topics;  // empty: the processor's <topic><dlq_suffix> pair
  std::string to;                   // empty: each letter's source topic
  std::vector<std::string> reasons;
  std::vector<std::string> stages;
  std::optional<std::int32_t> partition;  // of the source topic
  std::optional<std::int64_t> from_offset;
  std::optional<std::int64_t> to_offset;
  std::string since;  // RFC 3339, the letter's time
  std::string until;
  bool dry_run = false;
};

/// Prints one JSON line per letter sent (or that would be sent) and a summary line on stdout.
/// The exit code: 0 done, 78 bad options or configuration, 1 Kafka failed (the dead-letter
/// topics could not be read to their end, or a replayed message was not acknowledged).
int dlq_replay(const DlqReplayOptions& options);

}  // namespace telemetryd::app
