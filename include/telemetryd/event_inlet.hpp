#pragma once
// The way into a role's pipeline for components that receive events from outside (the OTLP
// receiver, the model-server scrape): a Kafka producer with acks=all in the processor role, the
// in-process queue of the embedded pipeline in the `all` role. Receivers answer their clients
// from the per-event results, so "accepted" means what the inlet guarantees: durable on every
// in-sync replica, or queued for the embedded store (which the drain flushes on SIGTERM).

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "telemetryd/event.hpp"

namespace telemetryd {

struct Delivery {
  bool ok = false;
  /// Why not, when not ok: librdkafka's error name (e.g. _MSG_TIMED_OUT, _QUEUE_FULL), or
  /// "queue_full" / "stopping" for the embedded queue. Every such failure is worth a retry.
  std::string error;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

class EventInlet {
 public:
  virtual ~EventInlet() = default;
  /// Hands every event over and resumes, on the io thread, with one Delivery per event in order.
  /// `events` must stay alive and unchanged until then (pass a coroutine's named local).
  virtual boost::asio::awaitable<std::vector<Delivery>> publish(
      const std::vector<Event>& events) = 0;
  /// Events handed over and not yet acknowledged, for backpressure (503 before the queue fills).
  virtual std::int64_t in_flight() const = 0;
  /// The most events it holds at once (the embedded queue's capacity); unbounded for Kafka,
  /// where the receivers' own max_in_flight decides.
  virtual std::int64_t capacity() const { return INT64_MAX; }
  /// The topic token.usage.v1 events are published to.
  virtual std::string token_usage_topic() const = 0;
};

/// Filled by the component that owns the role's inlet (ingest in the processor role, embedded in
/// the all role), which the role table lists before every receiver; the inlet is built on first
/// use, so a role without receivers opens no extra Kafka producer.
class EventInletSlot {
 public:
  void provide(std::function<EventInlet&()> factory) { factory_ = std::move(factory); }
  bool available() const { return static_cast<bool>(factory_); }
  /// Throws std::logic_error when no component provided one (a role-table mistake).
  EventInlet& get() const;

 private:
  std::function<EventInlet&()> factory_;
};

}  // namespace telemetryd
