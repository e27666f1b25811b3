#pragma once
// Events for integration tests to put on Kafka: valid ones from the real synthetic source, and
// an idempotent producer loop that waits on a full queue and fails the test on a lost message.
// Header-only: it REQUIREs, so it lives with Catch2.

#include <librdkafka/rdkafka.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "telemetryd/source.hpp"

namespace test_support {

struct KafkaMessage {
  std::string topic, key, value;
};

// Valid synthetic events from the real synthetic source, routed to the fixture's topics.
inline std::vector<KafkaMessage> synthetic_events(const std::string& gpu_topic,
                                                  const std::string& usage_topic,
                                                  std::size_t count) {
  const telemetryd::Config config =
      telemetryd::load_config({.role = "producer"}, telemetryd::app::role_catalog());
  auto source = telemetryd::SourceRegistry::instance()
                    .find("synthetic")
                    ->create(config, telemetryd::Topics{gpu_topic, usage_topic});
  std::vector<telemetryd::Event> events;
  std::string error;
  while (events.size() < count) source->sample(events, error);
  events.resize(count);
  std::vector<KafkaMessage> out;
  for (auto& e : events) out.push_back({e.topic, e.key, e.payload});
  return out;
}

// Produces with the default partitioner (by key), idempotent; fails the test when a message is
// not delivered. Returns the partitions each topic got.
inline std::map<std::string, std::set<std::int32_t>> produce(
    const std::string& brokers, const std::vector<KafkaMessage>& messages) {
  struct Delivered {
    std::map<std::string, std::set<std::int32_t>> partitions;
    std::size_t failed = 0;
  } delivered;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof errstr);
  rd_kafka_conf_set_opaque(conf, &delivered);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* d = static_cast<Delivered*>(opaque);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++d->failed;
      return;
    }
    d->partitions[rd_kafka_topic_name(m->rkt)].insert(m->partition);
  });
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  REQUIRE(producer != nullptr);
  for (const auto& m : messages) {
    for (;;) {
      const auto err = rd_kafka_producev(
          producer, RD_KAFKA_V_TOPIC(m.topic.c_str()), RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(m.value.data()), m.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      REQUIRE(err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
      rd_kafka_poll(producer, 50);
    }
  }
  REQUIRE(rd_kafka_flush(producer, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
  REQUIRE(delivered.failed == 0);
  return delivered.partitions;
}

}  // namespace test_support
