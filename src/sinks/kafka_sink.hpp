#pragma once
// Delivers events to Kafka with librdkafka's idempotent producer. A full local queue is
// backpressure: produce() polls and retries until there is room, so the source slows down and
// nothing is dropped. Delivery reports feed the metrics and the caller's counters.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>

#include "kafka/kafka_handle.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/event.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::sinks {

struct DeliveryReport {
  std::string topic;
  bool ok = false;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

class KafkaSink {
 public:
  using OnDelivery = std::function<void(const DeliveryReport&)>;

  /// Throws StartupError when librdkafka rejects the configuration.
  KafkaSink(const Config& config, metrics::Registry& metrics, OnDelivery on_delivery);
  ~KafkaSink();

  /// Enqueues one event, waiting (and serving delivery reports) while the queue is full.
  /// Returns false only when `abort` became true while waiting, or the error is permanent
  /// (then `error` says why).
  bool produce(const Event& event, const std::atomic<bool>& abort, std::string& error);
  /// Serves delivery reports for up to `timeout`.
  void poll(std::chrono::milliseconds timeout);
  /// Waits up to `timeout` for every queued event; returns how many are still undelivered.
  int flush(std::chrono::milliseconds timeout);
  int queue_depth() const;
  /// librdkafka's fatal error (e.g. idempotence broken), or empty.
  std::string fatal_error() const;

 private:
  static void on_delivery_report(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  metrics::Counter& sent_counter(const std::string& topic);

  kafka::HandlePtr handle_;
  OnDelivery on_delivery_;
  metrics::Family<metrics::Counter>& sent_;
  metrics::Family<metrics::Counter>& errors_;
  metrics::Gauge& queue_depth_;
  metrics::Counter& backpressure_waits_;
  metrics::Histogram& delivery_latency_;
  std::unordered_map<std::string, metrics::Counter*> sent_by_topic_;
};

}  // namespace telemetryd::sinks
