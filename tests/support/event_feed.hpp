#pragma once
// Valid events for integration tests to put on Kafka, as kafka_writer.hpp's Messages (produce()
// sends them): from the real synthetic source, or one at a time at a chosen time. Header-only,
// with Catch2.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "events/cloudevent.hpp"
#include "events/event_id.hpp"
#include "events/gpu_metrics.hpp"
#include "events/token_usage.hpp"
#include "support/kafka_writer.hpp"
#include "telemetryd/source.hpp"

namespace test_support {

// Valid synthetic events from the real synthetic source, routed to the fixture's topics.
inline std::vector<Message> synthetic_events(const std::string& gpu_topic,
                                             const std::string& usage_topic, std::size_t count) {
  const telemetryd::Config config =
      telemetryd::load_config({.role = "producer"}, telemetryd::app::role_catalog());
  auto source = telemetryd::SourceRegistry::instance()
                    .find("synthetic")
                    ->create(config, telemetryd::Topics{gpu_topic, usage_topic});
  std::vector<telemetryd::Event> events;
  std::string error;
  while (events.size() < count) source->sample(events, error);
  events.resize(count);
  std::vector<Message> out;
  for (auto& e : events) out.push_back({e.topic, e.key, e.payload});
  return out;
}

// One GPU sample at `ms`, keyed by its GPU as docs/events.md says; its id derives from both.
inline Message gpu_metrics_event(const std::string& topic, const telemetryd::events::GpuSample& s,
                                 std::int64_t ms, const std::string& source) {
  namespace events = telemetryd::events;
  return {topic, s.gpu_uuid,
          events::encode_cloudevent(
              events::deterministic_uuid_v7(ms, s.gpu_uuid), source, "io.telemetryd.gpu.metrics.v1",
              std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)), s.gpu_uuid,
              events::encode_gpu_metrics_data(s))};
}

// One request at `ms`, keyed by its deployment (its model when it has none); its id derives
// from `ms` and `seed`.
inline Message token_usage_event(const std::string& topic, const std::string& seed, std::int64_t ms,
                                 const telemetryd::events::TokenUsage& u,
                                 const std::string& source) {
  namespace events = telemetryd::events;
  return {topic, u.deployment.value_or(u.model),
          events::encode_cloudevent(
              events::deterministic_uuid_v7(ms, seed), source, "io.telemetryd.token.usage.v1",
              std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)), u.tenant_id,
              events::encode_token_usage_data(u))};
}

}  // namespace test_support
