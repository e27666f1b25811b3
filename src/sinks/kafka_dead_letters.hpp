#pragma once
// Dead letters to `<topic>.dlq` in Kafka: the original key and bytes, with headers naming the
// reason, the stage and where the event came from. Letters are kept until a flush sees them all
// acknowledged, so a failed delivery is sent again instead of being lost.

#include <vector>

#include "sinks/kafka_sink.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::sinks {

class KafkaDeadLetters final : public DeadLetterSink {
 public:
  KafkaDeadLetters(const Config& config, metrics::Registry& metrics, std::string suffix);
  /// Never blocks on a full queue: false lets the caller retry (and notice a stop).
  bool send(const DeadLetter& letter) override;
  bool flush(std::chrono::milliseconds timeout) override;

 private:
  bool produce(const Event& event);

  std::string suffix_;
  std::uint64_t failed_ = 0;
  std::vector<Event> unacknowledged_;
  sinks::KafkaSink sink_;
};

}  // namespace telemetryd::sinks
