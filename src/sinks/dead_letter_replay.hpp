#pragma once
// What `telemetryd dlq replay` decides without Kafka: where a dead letter came from (its
// headers), whether it passes the operator's filters, and which headers the replayed message
// carries. The header names live here so the writer (KafkaDeadLetters) and the reader agree.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace telemetryd::sinks {

inline constexpr std::string_view kDeadLetterReasonHeader = "x-telemetryd-reason";
inline constexpr std::string_view kDeadLetterDetailHeader = "x-telemetryd-detail";
inline constexpr std::string_view kDeadLetterStageHeader = "x-telemetryd-stage";
inline constexpr std::string_view kDeadLetterTopicHeader = "x-telemetryd-source-topic";
inline constexpr std::string_view kDeadLetterPartitionHeader = "x-telemetryd-source-partition";
inline constexpr std::string_view kDeadLetterOffsetHeader = "x-telemetryd-source-offset";
// Provenance of a replayed message: `<dlq topic>/<partition>/<offset>` and the letter's reason.
inline constexpr std::string_view kReplayedFromHeader = "x-telemetryd-replayed-from";
inline constexpr std::string_view kReplayReasonHeader = "x-telemetryd-replay-reason";

using Headers = std::vector<std::pair<std::string, std::string>>;

/// The dead-letter headers of one letter; a missing or unparsable number is -1.
struct DeadLetterOrigin {
  std::string reason;
  std::string detail;
  std::string stage;
  std::string topic;  // the source topic; empty when the header is missing
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

DeadLetterOrigin dead_letter_origin(const Headers& headers);

/// The operator's selection; an empty list or an unset bound selects everything.
struct ReplayFilter {
  std::vector<std::string> reasons;
  std::vector<std::string> stages;
  std::optional<std::int32_t> partition;    // source partition
  std::optional<std::int64_t> from_offset;  // source offset, included
  std::optional<std::int64_t> to_offset;    // source offset, included
  std::optional<std::int64_t> since_ms;     // dead-letter time (the letter's timestamp), included
  std::optional<std::int64_t> until_ms;     // excluded
};

/// A letter whose header or timestamp (`time_ms` < 0: none) a set bound needs but lacks never
/// matches: replaying it would be a guess.
bool matches(const ReplayFilter& filter, const DeadLetterOrigin& origin, std::int64_t time_ms);

/// The replayed message's headers: the letter's own minus the dead-letter and earlier replay
/// headers, in order, then where it was replayed from and why it had been dead-lettered.
Headers replay_headers(const Headers& letter_headers, std::string_view dlq_topic,
                       std::int32_t dlq_partition, std::int64_t dlq_offset,
                       std::string_view reason);

/// `to` when given, else the source topic; empty when neither is known.
std::string replay_destination(std::string_view to, const DeadLetterOrigin& origin);

}  // namespace telemetryd::sinks
