// Proves the test services are real: a Kafka round trip through librdkafka and a document
// round trip through libmongoc, against the servers scripts/services.sh started.

#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>

#include "support/child_process.hpp"

using test_support::required_env;

namespace {

std::string unique_name(const std::string& prefix) {
  return prefix + "-" + std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

rd_kafka_t* make_client(rd_kafka_type_t type,
                        std::initializer_list<std::pair<const char*, std::string>> props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  for (const auto& [key, value] : props) {
    REQUIRE(rd_kafka_conf_set(conf, key, value.c_str(), errstr, sizeof errstr) == RD_KAFKA_CONF_OK);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
  REQUIRE(rk != nullptr);
  return rk;
}

}  // namespace

TEST_CASE("Kafka: messages produced with acks=all are consumed back", "[kafka][itest]") {
  const std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  const std::string topic = unique_name("itest-roundtrip");
  constexpr int kMessages = 100;

  rd_kafka_t* producer = make_client(
      RD_KAFKA_PRODUCER,
      {{"bootstrap.servers", brokers}, {"acks", "all"}, {"enable.idempotence", "true"}});
  for (int i = 0; i < kMessages; ++i) {
    const std::string key = "gpu-" + std::to_string(i % 4);
    const std::string value = "{\"seq\":" + std::to_string(i) + "}";
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    REQUIRE(err == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  CHECK(rd_kafka_flush(producer, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  CHECK(rd_kafka_outq_len(producer) == 0);
  rd_kafka_destroy(producer);

  rd_kafka_t* consumer = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", brokers},
                                                         {"group.id", unique_name("itest-group")},
                                                         {"auto.offset.reset", "earliest"}});
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  REQUIRE(rd_kafka_subscribe(consumer, topics) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);

  std::set<std::string> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (seen.size() < kMessages && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer, 500);
    if (msg == nullptr) continue;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      seen.insert(std::string(static_cast<const char*>(msg->payload), msg->len));
    }
    rd_kafka_message_destroy(msg);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  CHECK(seen.size() == kMessages);
  CHECK(seen.count("{\"seq\":0}") == 1);
  CHECK(seen.count("{\"seq\":99}") == 1);
}

TEST_CASE("FerretDB: a document written through libmongoc reads back", "[mongodb][itest]") {
  mongoc_init();
  const std::string uri = required_env("TELEMETRYD_TEST_MONGO_URI");
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  REQUIRE(client != nullptr);
  const std::string database = unique_name("itest").substr(0, 40);
  mongoc_collection_t* collection = mongoc_client_get_collection(client, database.c_str(), "gpus");

  bson_error_t error;
  bson_t* doc = BCON_NEW("_id", BCON_UTF8("GPU-itest-1"), "model", BCON_UTF8("H100 80GB"),
                         "price_per_hour_usd", BCON_DOUBLE(2.5));
  const bool inserted = mongoc_collection_insert_one(collection, doc, nullptr, nullptr, &error);
  INFO(error.message);
  CHECK(inserted);
  // The same _id again must be refused: later idempotent sinks depend on it.
  CHECK_FALSE(mongoc_collection_insert_one(collection, doc, nullptr, nullptr, &error));
  CHECK(error.code == 11000);
  bson_destroy(doc);

  bson_t* filter = BCON_NEW("_id", BCON_UTF8("GPU-itest-1"));
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(collection, filter, nullptr, nullptr);
  const bson_t* found = nullptr;
  REQUIRE(mongoc_cursor_next(cursor, &found));
  bson_iter_t iter;
  REQUIRE(bson_iter_init_find(&iter, found, "model"));
  CHECK(std::string(bson_iter_utf8(&iter, nullptr)) == "H100 80GB");
  REQUIRE(bson_iter_init_find(&iter, found, "price_per_hour_usd"));
  CHECK(bson_iter_double(&iter) == 2.5);
  CHECK_FALSE(mongoc_cursor_next(cursor, &found));
  mongoc_cursor_destroy(cursor);
  bson_destroy(filter);

  mongoc_database_t* db = mongoc_client_get_database(client, database.c_str());
  mongoc_database_drop(db, nullptr);
  mongoc_database_destroy(db);
  mongoc_collection_destroy(collection);
  mongoc_client_destroy(client);
  mongoc_cleanup();
}
