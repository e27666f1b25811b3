#include "support/mongo_probe.hpp"

#include <mongoc/mongoc.h>

namespace test_support {

namespace {
struct MongoInit {
  MongoInit() { mongoc_init(); }
};

// The query document of `json`, or an empty one for empty text; false when it is not JSON.
bool init_filter(bson_t* filter, const std::string& json) {
  if (json.empty()) {
    bson_init(filter);
    return true;
  }
  bson_error_t error;
  return bson_init_from_json(filter, json.data(), static_cast<ssize_t>(json.size()), &error);
}
}  // namespace

std::int64_t count_documents(const std::string& uri, const std::string& database,
                             const std::string& collection, const std::string& filter_json) {
  static MongoInit init;
  bson_t filter;
  if (!init_filter(&filter, filter_json)) return -1;
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  if (client == nullptr) {
    bson_destroy(&filter);
    return -1;
  }
  mongoc_collection_t* coll =
      mongoc_client_get_collection(client, database.c_str(), collection.c_str());
  bson_error_t error;
  const std::int64_t count =
      mongoc_collection_count_documents(coll, &filter, nullptr, nullptr, nullptr, &error);
  bson_destroy(&filter);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  return count;
}

std::vector<std::string> find_documents_json(const std::string& uri, const std::string& database,
                                             const std::string& collection,
                                             const std::string& filter_json) {
  static MongoInit init;
  std::vector<std::string> out;
  bson_t filter;
  if (!init_filter(&filter, filter_json)) return out;
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  if (client == nullptr) {
    bson_destroy(&filter);
    return out;
  }
  mongoc_collection_t* coll =
      mongoc_client_get_collection(client, database.c_str(), collection.c_str());
  bson_t* opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(coll, &filter, opts, nullptr);
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor, &doc)) {
    char* json = bson_as_relaxed_extended_json(doc, nullptr);
    out.emplace_back(json);
    bson_free(json);
  }
  bson_error_t error;
  if (mongoc_cursor_error(cursor, &error)) out.clear();
  mongoc_cursor_destroy(cursor);
  bson_destroy(opts);
  bson_destroy(&filter);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  return out;
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

void drop_collection(const std::string& uri, const std::string& database,
                     const std::string& collection) {
  static MongoInit init;
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  if (client == nullptr) return;
  mongoc_collection_t* c =
      mongoc_client_get_collection(client, database.c_str(), collection.c_str());
  mongoc_collection_drop(c, nullptr);
  mongoc_collection_destroy(c);
  mongoc_client_destroy(client);
}

}  // namespace test_support
