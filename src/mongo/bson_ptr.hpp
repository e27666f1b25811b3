#pragma once
// An owned bson_t, destroyed with the pointer.

#include <bson/bson.h>

#include <memory>

namespace telemetryd::mongo {

struct BsonDeleter {
  void operator()(bson_t* b) const { bson_destroy(b); }
};
// libbson declares bson_t 128-byte aligned; a smart pointer drops that attribute from the
// template argument, which is harmless for a pointer.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
using BsonPtr = std::unique_ptr<bson_t, BsonDeleter>;
#pragma GCC diagnostic pop

}  // namespace telemetryd::mongo
