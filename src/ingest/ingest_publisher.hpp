#pragma once
// Publishes ingested events to Kafka and tells the HTTP handler, without blocking the io thread,
// when every broker in sync has each of them: a request is answered 202 only after its delivery
// report. librdkafka calls delivery reports on this class's poll thread; each report is posted
// back to the io thread, where the waiting request resumes.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "kafka/kafka_handle.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/event.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::ingest {

class IngestPublisher final : public EventInlet {
 public:
  /// Forces acks=all and idempotence whatever kafka.producer.* says: a 202 must mean every
  /// in-sync replica has the event. `ack_timeout` bounds the wait (message.timeout.ms).
  IngestPublisher(boost::asio::io_context& io, const Config& config, metrics::Registry& metrics,
                  std::chrono::milliseconds ack_timeout);
  ~IngestPublisher() override;
  IngestPublisher(const IngestPublisher&) = delete;
  IngestPublisher& operator=(const IngestPublisher&) = delete;

  /// Enqueues every event and resumes once each has its delivery report (or could not be
  /// enqueued). `events` must stay alive and unchanged until then: pass a coroutine's named
  /// local (GCC 12 corrupts temporaries that live across a co_await).
  boost::asio::awaitable<std::vector<Delivery>> publish(const std::vector<Event>& events) override;

  /// Waits up to `timeout` for queued events, then stops the poll thread. Reports that arrive
  /// later are still delivered to their requests as failures when the io loop runs them.
  void shutdown(std::chrono::milliseconds timeout);
  std::int64_t in_flight() const override { return in_flight_.load(); }
  std::string token_usage_topic() const override { return token_usage_topic_; }

 private:
  struct Batch;
  static void on_delivery_report(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);

  boost::asio::io_context& io_;
  std::string token_usage_topic_;
  kafka::HandlePtr handle_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> in_flight_{0};
  metrics::Family<metrics::Counter>& delivered_;
  metrics::Family<metrics::Counter>& failed_;
  metrics::Histogram& ack_latency_;
  std::thread poller_;
};

}  // namespace telemetryd::ingest
