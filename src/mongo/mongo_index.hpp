#pragma once
// Index creation shared by the MongoDB stores (processor and worker): createIndexes is
// idempotent, so each store runs it on every prepare.

#include <mongoc/mongoc.h>

#include <cstdint>
#include <string>

#include "telemetryd/result.hpp"

namespace telemetryd::mongo {

/// One index on database.collection; `expire_after_seconds` > 0 makes it a TTL index. Errors are
/// classified like every store error (mongo_errors.hpp).
Result<bool> create_index(mongoc_client_t* client, const std::string& database,
                          const char* collection, const char* name, const bson_t* key,
                          std::int64_t expire_after_seconds = 0);

}  // namespace telemetryd::mongo
