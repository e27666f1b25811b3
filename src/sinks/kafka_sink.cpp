#include "sinks/kafka_sink.hpp"

#include "kafka/client_properties.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::sinks {

namespace {
std::int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

KafkaSink::KafkaSink(const Config& config, metrics::Registry& metrics, OnDelivery on_delivery)
    : on_delivery_(std::move(on_delivery)),
      sent_(metrics.counter("producer_messages_sent_total", "Events the brokers acknowledged.",
                            {"topic"})),
      errors_(metrics.counter("producer_delivery_errors_total",
                              "Events whose delivery failed, by librdkafka error name.",
                              {"topic", "reason"})),
      queue_depth_(
          metrics
              .gauge("producer_queue_depth", "Events queued in librdkafka, waiting for delivery.")
              .with({})),
      backpressure_waits_(metrics
                              .counter("producer_backpressure_waits_total",
                                       "Times the local queue was full and the source waited.")
                              .with({})),
      delivery_latency_(metrics
                            .histogram("producer_delivery_latency_seconds",
                                       "Time from enqueue to broker acknowledgement.")
                            .with({})) {
  rd_kafka_conf_t* conf = kafka::make_conf(kafka::producer_properties(config));
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaSink::on_delivery_report);
  rd_kafka_conf_set_opaque(conf, this);
  handle_ = kafka::make_handle_from_conf(RD_KAFKA_PRODUCER, conf);
}

KafkaSink::~KafkaSink() = default;

metrics::Counter& KafkaSink::sent_counter(const std::string& topic) {
  auto it = sent_by_topic_.find(topic);
  if (it == sent_by_topic_.end()) {
    it = sent_by_topic_.emplace(topic, &sent_.with({topic})).first;
  }
  return *it->second;
}

void KafkaSink::on_delivery_report(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message,
                                   void* opaque) {
  auto* self = static_cast<KafkaSink*>(opaque);
  DeliveryReport report{rd_kafka_topic_name(message->rkt),
                        message->err == RD_KAFKA_RESP_ERR_NO_ERROR, message->err};
  if (report.ok) {
    self->sent_counter(report.topic).Increment();
    const auto enqueued = reinterpret_cast<std::intptr_t>(message->_private);
    self->delivery_latency_.Observe(static_cast<double>(steady_now_ns() - enqueued) / 1e9);
  } else {
    self->errors_.with({report.topic, rd_kafka_err2name(message->err)}).Increment();
  }
  if (self->on_delivery_) self->on_delivery_(report);
}

bool KafkaSink::produce(const Event& event, const std::atomic<bool>& abort, std::string& error) {
  bool waited = false;
  for (;;) {
    // librdkafka owns the headers only when producev succeeds, so they are built per attempt.
    rd_kafka_headers_t* headers = rd_kafka_headers_new(1 + event.headers.size());
    if (event.cloudevent) {
      rd_kafka_header_add(headers, "content-type", -1, "application/cloudevents+json", -1);
    }
    for (const auto& [name, value] : event.headers) {
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        handle_.get(), RD_KAFKA_V_TOPIC(event.topic.c_str()),
        RD_KAFKA_V_KEY(event.key.data(), event.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(event.payload.data()), event.payload.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::intptr_t>(steady_now_ns()))),
        RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_headers_destroy(headers);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      error = std::string("produce failed: ") + rd_kafka_err2str(err);
      return false;
    }
    if (!waited) backpressure_waits_.Increment();
    waited = true;
    if (abort.load(std::memory_order_relaxed)) {
      error = "stopped while the queue was full";
      return false;
    }
    // Serving delivery reports is what frees queue space.
    poll(std::chrono::milliseconds(50));
  }
}

void KafkaSink::poll(std::chrono::milliseconds timeout) {
  rd_kafka_poll(handle_.get(), static_cast<int>(timeout.count()));
  queue_depth_.Set(rd_kafka_outq_len(handle_.get()));
}

int KafkaSink::flush(std::chrono::milliseconds timeout) {
  rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  const int left = rd_kafka_outq_len(handle_.get());
  queue_depth_.Set(left);
  return left;
}

int KafkaSink::queue_depth() const {
  return rd_kafka_outq_len(handle_.get());
}

std::string KafkaSink::fatal_error() const {
  char errstr[512];
  if (rd_kafka_fatal_error(handle_.get(), errstr, sizeof errstr) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    return {};
  }
  return errstr;
}

}  // namespace telemetryd::sinks
