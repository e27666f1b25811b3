#pragma once
// A collection handle of a pooled client, destroyed on scope exit.

#include <mongoc/mongoc.h>

#include <string>

namespace telemetryd::mongo {

class Collection {
 public:
  Collection(mongoc_client_t* client, const std::string& database, const char* name)
      : collection_(mongoc_client_get_collection(client, database.c_str(), name)) {}
  ~Collection() { mongoc_collection_destroy(collection_); }
  Collection(const Collection&) = delete;
  Collection& operator=(const Collection&) = delete;
  mongoc_collection_t* get() const { return collection_; }

 private:
  mongoc_collection_t* collection_;
};

}  // namespace telemetryd::mongo
