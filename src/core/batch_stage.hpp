#pragma once
// What a Kafka consumer loop drives: a stage that takes messages one at a time, writes them in
// batches, and reports which offsets are done (stored, duplicate, or dead-lettered and
// acknowledged) so the loop can move offsets past them and no further. The processor's
// ProcessorCore and the worker's WorkerCore are stages; FanOutStage runs several as one.
// Not thread-safe: the consumer thread drives a stage.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "telemetryd/result.hpp"

namespace telemetryd::core {

/// One Kafka message as a stage sees it; the views live only for the accept() call.
struct IncomingMessage {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = -1;
  std::string_view key;
  std::string_view value;
};

using PartitionKey = std::pair<std::string, std::int32_t>;
/// Highest offset per partition such that it and every earlier accepted message are done.
using DoneOffsets = std::map<PartitionKey, std::int64_t>;

class BatchStage {
 public:
  virtual ~BatchStage() = default;
  /// Takes one message (into the pending batch, or dead-letters it). False: it could not be
  /// taken now (e.g. the dead-letter queue is full); the loop offers the same message again.
  virtual bool accept(const IncomingMessage& message) = 0;
  /// Messages taken and not yet done; the loop flushes when this reaches its batch size...
  virtual std::size_t pending() const = 0;
  /// ...or when the oldest of them has waited the batch timeout.
  virtual std::chrono::steady_clock::time_point oldest_pending() const = 0;
  /// Makes the pending messages durable. A retryable error keeps them (the loop pauses, backs
  /// off and calls again; a retry must not write or count twice). On success `done` is set to
  /// the offsets finished since the last success (partitions with nothing new are absent).
  virtual Result<bool> flush(DoneOffsets& done) = 0;
  /// Forgets pending messages of partitions this process no longer owns; Kafka redelivers them.
  virtual void abandon(const std::function<bool(const PartitionKey&)>& revoked) = 0;
};

}  // namespace telemetryd::core
