#pragma once
// Dead letters to `<topic>.dlq` in Kafka: the original key and bytes, with headers naming the
// reason, the stage and where the event came from.

#include "processor/dead_letters.hpp"
#include "sinks/kafka_sink.hpp"

namespace telemetryd::processor {

class KafkaDeadLetters final : public DeadLetterSink {
 public:
  KafkaDeadLetters(const Config& config, metrics::Registry& metrics, std::string suffix);
  bool send(const DeadLetter& letter) override;
  bool flush(std::chrono::milliseconds timeout) override;

 private:
  std::string suffix_;
  std::uint64_t failed_ = 0;
  sinks::KafkaSink sink_;
};

}  // namespace telemetryd::processor
