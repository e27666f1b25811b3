#include "support/kafka_reader.hpp"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <stdexcept>

namespace test_support {

std::string unique_topic(const std::string& prefix) {
  return prefix + "-" + std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

std::vector<ConsumedMessage> read_topics(const std::string& brokers,
                                         const std::vector<std::string>& topics,
                                         std::size_t expected, std::chrono::seconds timeout,
                                         std::chrono::seconds settle) {
  return read_topics(std::map<std::string, std::string>{{"bootstrap.servers", brokers}}, topics,
                     expected, timeout, settle);
}

std::vector<ConsumedMessage> read_topics(const std::map<std::string, std::string>& properties,
                                         const std::vector<std::string>& topics,
                                         std::size_t expected, std::chrono::seconds timeout,
                                         std::chrono::seconds settle) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  std::map<std::string, std::string> all = properties;
  all["group.id"] = unique_topic("itest-reader");
  all["auto.offset.reset"] = "earliest";
  all["enable.auto.commit"] = "false";
  for (const auto& [key, value] : all) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      throw std::runtime_error(errstr);
    }
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (consumer == nullptr) throw std::runtime_error(errstr);
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
  for (const auto& topic : topics)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, list);
  rd_kafka_topic_partition_list_destroy(list);

  std::vector<ConsumedMessage> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool settling = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!settling && out.size() >= expected) {
      settling = true;
      deadline = std::chrono::steady_clock::now() + settle;
    }
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer, 200);
    if (msg == nullptr) continue;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ConsumedMessage m{rd_kafka_topic_name(msg->rkt),
                        std::string(static_cast<const char*>(msg->key), msg->key_len),
                        std::string(static_cast<const char*>(msg->payload), msg->len),
                        {}};
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          m.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
        }
      }
      out.push_back(std::move(m));
    }
    rd_kafka_message_destroy(msg);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

}  // namespace test_support
