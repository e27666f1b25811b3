#include "processor/kafka_dead_letters.hpp"

#include "telemetryd/log.hpp"

namespace telemetryd::processor {

KafkaDeadLetters::KafkaDeadLetters(const Config& config, metrics::Registry& metrics,
                                   std::string suffix)
    : suffix_(std::move(suffix)),
      sink_(config, metrics, [this](const sinks::DeliveryReport& report) {
        if (!report.ok) {
          ++failed_;
          log::error("processor", "dead letter not delivered",
                     {{"topic", report.topic}, {"error", rd_kafka_err2str(report.error)}});
        }
      }) {}

bool KafkaDeadLetters::send(const DeadLetter& letter) {
  Event event;
  event.topic = std::string(letter.topic) + suffix_;
  event.key = letter.key;
  event.payload = letter.value;
  event.cloudevent = false;
  event.headers = {{"x-telemetryd-reason", std::string(letter.reason)},
                   {"x-telemetryd-detail", std::string(letter.detail)},
                   {"x-telemetryd-stage", std::string(letter.stage)},
                   {"x-telemetryd-source-topic", std::string(letter.topic)},
                   {"x-telemetryd-source-partition", std::to_string(letter.partition)},
                   {"x-telemetryd-source-offset", std::to_string(letter.offset)}};
  const std::atomic<bool> never{false};
  std::string error;
  if (!sink_.produce(event, never, error)) {
    log::error("processor", "dead letter not queued", {{"error", error}});
    return false;
  }
  return true;
}

bool KafkaDeadLetters::flush(std::chrono::milliseconds timeout) {
  return sink_.flush(timeout) == 0 && failed_ == 0;
}

}  // namespace telemetryd::processor
