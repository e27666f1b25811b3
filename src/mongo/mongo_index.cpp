#include "mongo/mongo_index.hpp"

#include "mongo/mongo_errors.hpp"

namespace telemetryd::mongo {

Result<bool> create_index(mongoc_client_t* client, const std::string& database,
                          const char* collection, const char* name, const bson_t* key,
                          std::int64_t expire_after_seconds) {
  bson_t index;
  bson_init(&index);
  BSON_APPEND_DOCUMENT(&index, "key", key);
  BSON_APPEND_UTF8(&index, "name", name);
  if (expire_after_seconds > 0)
    BSON_APPEND_INT64(&index, "expireAfterSeconds", expire_after_seconds);
  bson_t* command =
      BCON_NEW("createIndexes", BCON_UTF8(collection), "indexes", "[", BCON_DOCUMENT(&index), "]");
  bson_error_t error;
  const bool ok =
      mongoc_client_command_simple(client, database.c_str(), command, nullptr, nullptr, &error);
  bson_destroy(command);
  bson_destroy(&index);
  if (!ok) return classify(error);
  return true;
}

}  // namespace telemetryd::mongo
