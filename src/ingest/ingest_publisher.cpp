#include "ingest/ingest_publisher.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>

#include "kafka/client_properties.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::ingest {

namespace asio = boost::asio;

// One request's events. Lives until its last delivery report has been handled on the io thread.
struct IngestPublisher::Batch {
  using Handler = asio::any_completion_handler<void(std::vector<Delivery>)>;
  Batch(IngestPublisher& owner, std::size_t size, Handler h)
      : results(size),
        outstanding(size),
        handler(std::move(h)),
        work(asio::make_work_guard(owner.io_)) {}
  std::vector<Delivery> results;
  std::size_t outstanding;
  Handler handler;
  // Keeps the io loop running while a request waits: a drain must not end before it is answered.
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  void finish_one() {
    if (--outstanding == 0) {
      std::move(handler)(std::move(results));
      work.reset();
    }
  }
};

namespace {
// What librdkafka carries per message: the batch and the item's place in it.
struct MessageTag {
  std::shared_ptr<void> batch;
  std::size_t index;
};
}  // namespace

IngestPublisher::IngestPublisher(asio::io_context& io, const Config& config,
                                 metrics::Registry& metrics, std::chrono::milliseconds ack_timeout)
    : io_(io),
      token_usage_topic_(config.str("ingest.topics.token_usage")),
      delivered_(metrics.counter("ingest_events_published_total",
                                 "Ingested events the brokers acknowledged.", {"topic"})),
      failed_(metrics.counter("ingest_publish_failures_total",
                              "Ingested events Kafka did not take, by librdkafka error name.",
                              {"topic", "reason"})),
      ack_latency_(metrics
                       .histogram("ingest_ack_latency_seconds",
                                  "Time from enqueue to the brokers' acknowledgement.")
                       .with({})) {
  kafka::Properties properties = kafka::producer_properties(config);
  properties["acks"] = "all";
  properties["enable.idempotence"] = "true";
  properties["message.timeout.ms"] = std::to_string(ack_timeout.count());
  // A request waits for its batch: a short linger keeps the added latency small.
  properties["linger.ms"] = "2";
  rd_kafka_conf_t* conf = kafka::make_conf(properties);
  rd_kafka_conf_set_dr_msg_cb(conf, &IngestPublisher::on_delivery_report);
  rd_kafka_conf_set_opaque(conf, this);
  handle_ = kafka::make_handle_from_conf(RD_KAFKA_PRODUCER, conf);
  poller_ = std::thread([this] {
    while (!stopping_.load()) rd_kafka_poll(handle_.get(), 100);
  });
}

IngestPublisher::~IngestPublisher() {
  shutdown(std::chrono::milliseconds(0));
  // Destroyed here, while the members its callbacks use are still alive.
  handle_.reset();
}

void IngestPublisher::shutdown(std::chrono::milliseconds timeout) {
  if (poller_.joinable()) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (rd_kafka_outq_len(handle_.get()) > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stopping_ = true;
    poller_.join();
  }
  if (!handle_) return;
  // Whatever is still queued fails now, so every waiting request gets an answer (503).
  rd_kafka_purge(handle_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(handle_.get(), 0);
  const int left = rd_kafka_outq_len(handle_.get());
  if (left > 0) log::warn("ingest", "events left undelivered at shutdown", {{"count", left}});
}

void IngestPublisher::on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* message,
                                         void* opaque) {
  auto* self = static_cast<IngestPublisher*>(opaque);
  std::unique_ptr<MessageTag> tag(static_cast<MessageTag*>(message->_private));
  Delivery delivery;
  delivery.ok = message->err == RD_KAFKA_RESP_ERR_NO_ERROR;
  delivery.partition = message->partition;
  delivery.offset = message->offset;
  const std::string topic = rd_kafka_topic_name(message->rkt);
  if (delivery.ok) {
    self->delivered_.with({topic}).Increment();
  } else {
    delivery.error = rd_kafka_err2name(message->err);
    self->failed_.with({topic, delivery.error}).Increment();
  }
  auto batch = std::static_pointer_cast<Batch>(tag->batch);
  self->ack_latency_.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - batch->started).count());
  self->in_flight_.fetch_sub(1);
  const std::size_t index = tag->index;
  asio::post(self->io_,
             [batch = std::move(batch), index, delivery = std::move(delivery)]() mutable {
               batch->results[index] = std::move(delivery);
               batch->finish_one();
             });
}

asio::awaitable<std::vector<Delivery>> IngestPublisher::publish(const std::vector<Event>& events) {
  return asio::async_initiate<const asio::use_awaitable_t<>, void(std::vector<Delivery>)>(
      [this, &events](auto handler) {
        auto batch =
            std::make_shared<Batch>(*this, events.size(), Batch::Handler(std::move(handler)));
        if (events.empty() || stopping_.load()) {
          for (auto& result : batch->results) result.error = "_SHUTTING_DOWN";
          asio::post(io_, [batch] {
            batch->outstanding = 1;
            batch->finish_one();
          });
          return;
        }
        // Items that cannot be enqueued are answered at once; the rest on their reports. The
        // batch's own hold on `outstanding` is released last, so it cannot finish early.
        ++batch->outstanding;
        for (std::size_t i = 0; i < events.size(); ++i) {
          const Event& event = events[i];
          rd_kafka_headers_t* headers = rd_kafka_headers_new(1);
          rd_kafka_header_add(headers, "content-type", -1, "application/cloudevents+json", -1);
          auto* tag = new MessageTag{batch, i};
          const rd_kafka_resp_err_t err = rd_kafka_producev(
              handle_.get(), RD_KAFKA_V_TOPIC(event.topic.c_str()),
              RD_KAFKA_V_KEY(event.key.data(), event.key.size()),
              RD_KAFKA_V_VALUE(const_cast<char*>(event.payload.data()), event.payload.size()),
              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
              RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
          if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            in_flight_.fetch_add(1);
            continue;
          }
          rd_kafka_headers_destroy(headers);
          delete tag;
          batch->results[i].error = rd_kafka_err2name(err);
          failed_.with({event.topic, batch->results[i].error}).Increment();
          batch->finish_one();
        }
        asio::post(io_, [batch] { batch->finish_one(); });
      },
      asio::use_awaitable);
}

}  // namespace telemetryd::ingest
