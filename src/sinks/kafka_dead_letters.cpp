#include "sinks/kafka_dead_letters.hpp"

#include "sinks/dead_letter_replay.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::sinks {

KafkaDeadLetters::KafkaDeadLetters(const Config& config, metrics::Registry& metrics,
                                   std::string suffix)
    : suffix_(std::move(suffix)),
      sink_(config, metrics, [this](const sinks::DeliveryReport& report) {
        if (!report.ok) {
          ++failed_;
          log::error("processor", "dead letter not delivered, will send again",
                     {{"topic", report.topic}, {"error", rd_kafka_err2str(report.error)}});
        }
      }) {}

bool KafkaDeadLetters::produce(const Event& event) {
  // Already "aborted": a full queue answers false at once instead of blocking the consumer.
  const std::atomic<bool> no_wait{true};
  std::string error;
  return sink_.produce(event, no_wait, error);
}

bool KafkaDeadLetters::send(const DeadLetter& letter) {
  Event event;
  event.topic = std::string(letter.topic) + suffix_;
  event.key = letter.key;
  event.payload = letter.value;
  event.cloudevent = false;
  event.headers = {{std::string(kDeadLetterReasonHeader), std::string(letter.reason)},
                   {std::string(kDeadLetterDetailHeader), std::string(letter.detail)},
                   {std::string(kDeadLetterStageHeader), std::string(letter.stage)},
                   {std::string(kDeadLetterTopicHeader), std::string(letter.topic)},
                   {std::string(kDeadLetterPartitionHeader), std::to_string(letter.partition)},
                   {std::string(kDeadLetterOffsetHeader), std::to_string(letter.offset)}};
  if (!produce(event)) return false;
  unacknowledged_.push_back(std::move(event));
  return true;
}

bool KafkaDeadLetters::flush(std::chrono::milliseconds timeout) {
  if (sink_.flush(timeout) != 0) return false;
  if (failed_ > 0) {
    // Which letter failed is not known here: send the whole unacknowledged set again (the DLQ
    // may then hold a letter twice; its headers name the source offset for deduplication).
    failed_ = 0;
    for (const auto& event : unacknowledged_) {
      if (!produce(event)) {
        failed_ = 1;  // queue full: the next flush tries again
        break;
      }
    }
    return false;
  }
  unacknowledged_.clear();
  return true;
}

}  // namespace telemetryd::sinks
