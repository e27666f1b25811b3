#pragma once
// Kafka for integration tests, from the test's side: create topics with a partition count, and
// produce keyed messages with an idempotent producer (librdkafka's default partitioner, so a
// key always lands on the same partition). Header-only: it REQUIREs, so it lives with Catch2.

#include <librdkafka/rdkafka.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace test_support {

struct Message {
  std::string topic, key, value;
};

inline void create_topics(const std::string& brokers, const std::vector<std::string>& names,
                          int partitions) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr);
  rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  REQUIRE(admin != nullptr);
  std::vector<rd_kafka_NewTopic_t*> topics;
  for (const auto& name : names) {
    topics.push_back(rd_kafka_NewTopic_new(name.c_str(), partitions, 1, errstr, sizeof errstr));
    REQUIRE(topics.back() != nullptr);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
  rd_kafka_CreateTopics(admin, topics.data(), topics.size(), nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  REQUIRE(event != nullptr);
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
  REQUIRE(result != nullptr);
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  REQUIRE(count == names.size());
  for (std::size_t i = 0; i < count; ++i) {
    INFO(rd_kafka_topic_result_name(results[i])
         << ": "
         << (rd_kafka_topic_result_error_string(results[i]) != nullptr
                 ? rd_kafka_topic_result_error_string(results[i])
                 : ""));
    CHECK(rd_kafka_topic_result_error(results[i]) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  for (auto* t : topics) rd_kafka_NewTopic_destroy(t);
  rd_kafka_destroy(admin);
}

// Produces with the default partitioner (by key); returns the partitions each topic got.
inline std::map<std::string, std::set<std::int32_t>> produce(const std::string& brokers,
                                                             const std::vector<Message>& messages) {
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
