#pragma once
// Valid events for integration tests to put on Kafka, from the real synthetic source, as
// kafka_writer.hpp's Messages (produce() sends them). Header-only, with Catch2.

#include <string>
#include <vector>

#include "app/roles.hpp"
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

}  // namespace test_support
