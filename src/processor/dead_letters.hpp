#pragma once
// Where events the processor cannot store go, with the reason, intact. The processor role sends
// them to `<topic>.dlq` in Kafka; the embedded `all` role keeps them in its SQLite file.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace telemetryd::processor {

struct DeadLetter {
  std::string_view topic;  // where the event came from
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string_view key;
  std::string_view value;   // the original bytes
  std::string_view reason;  // bounded label, e.g. missing_field
  std::string_view detail;
  std::string_view stage;  // "validate" or "store"
};

class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  /// Queues one dead letter; false when it cannot even be queued (then the batch is retried).
  virtual bool send(const DeadLetter& letter) = 0;
  /// Waits until every queued dead letter is acknowledged; false on timeout or failure.
  virtual bool flush(std::chrono::milliseconds timeout) = 0;
};

}  // namespace telemetryd::processor
