#include "sinks/dead_letter_replay.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace telemetryd::sinks {
namespace {

template <typename Number>
Number parse_number(const std::string& text) {
  Number value = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() ? value : -1;
}

bool listed(const std::vector<std::string>& list, const std::string& value) {
  return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

DeadLetterOrigin dead_letter_origin(const Headers& headers) {
  DeadLetterOrigin origin;
  for (const auto& [name, value] : headers) {
    if (name == kDeadLetterReasonHeader) origin.reason = value;
    if (name == kDeadLetterDetailHeader) origin.detail = value;
    if (name == kDeadLetterStageHeader) origin.stage = value;
    if (name == kDeadLetterTopicHeader) origin.topic = value;
    if (name == kDeadLetterPartitionHeader) origin.partition = parse_number<std::int32_t>(value);
    if (name == kDeadLetterOffsetHeader) origin.offset = parse_number<std::int64_t>(value);
  }
  return origin;
}

bool matches(const ReplayFilter& filter, const DeadLetterOrigin& origin, std::int64_t time_ms) {
  if (!listed(filter.reasons, origin.reason) || !listed(filter.stages, origin.stage)) return false;
  if (filter.partition && origin.partition != *filter.partition) return false;
  if ((filter.from_offset || filter.to_offset) && origin.offset < 0) return false;
  if (filter.from_offset && origin.offset < *filter.from_offset) return false;
  if (filter.to_offset && origin.offset > *filter.to_offset) return false;
  if ((filter.since_ms || filter.until_ms) && time_ms < 0) return false;
  if (filter.since_ms && time_ms < *filter.since_ms) return false;
  if (filter.until_ms && time_ms >= *filter.until_ms) return false;
  return true;
}

Headers replay_headers(const Headers& letter_headers, std::string_view dlq_topic,
                       std::int32_t dlq_partition, std::int64_t dlq_offset,
                       std::string_view reason) {
  static constexpr std::array<std::string_view, 8> kDropped{
      kDeadLetterReasonHeader, kDeadLetterDetailHeader,    kDeadLetterStageHeader,
      kDeadLetterTopicHeader,  kDeadLetterPartitionHeader, kDeadLetterOffsetHeader,
      kReplayedFromHeader,     kReplayReasonHeader};
  Headers out;
  for (const auto& header : letter_headers) {
    if (std::find(kDropped.begin(), kDropped.end(), header.first) == kDropped.end()) {
      out.push_back(header);
    }
  }
  out.emplace_back(kReplayedFromHeader, std::string(dlq_topic) + "/" +
                                            std::to_string(dlq_partition) + "/" +
                                            std::to_string(dlq_offset));
  out.emplace_back(kReplayReasonHeader, std::string(reason));
  return out;
}

std::string replay_destination(std::string_view to, const DeadLetterOrigin& origin) {
  return to.empty() ? origin.topic : std::string(to);
}

}  // namespace telemetryd::sinks
