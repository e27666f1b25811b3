#include "support/mongo_probe.hpp"

#include <mongoc/mongoc.h>

namespace test_support {

namespace {
struct MongoInit {
  MongoInit() { mongoc_init(); }
};
}  // namespace

std::int64_t count_documents(const std::string& uri, const std::string& database,
                             const std::string& collection) {
  static MongoInit init;
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  if (client == nullptr) return -1;
  mongoc_collection_t* coll =
      mongoc_client_get_collection(client, database.c_str(), collection.c_str());
  bson_t filter;
  bson_init(&filter);
  bson_error_t error;
  const std::int64_t count =
      mongoc_collection_count_documents(coll, &filter, nullptr, nullptr, nullptr, &error);
  bson_destroy(&filter);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  return count;
}

void drop_database(const std::string& uri, const std::string& database) {
  static MongoInit init;
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  if (client == nullptr) return;
  mongoc_database_t* db = mongoc_client_get_database(client, database.c_str());
  mongoc_database_drop(db, nullptr);
  mongoc_database_destroy(db);
  mongoc_client_destroy(client);
}

}  // namespace test_support
