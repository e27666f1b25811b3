#pragma once
// An owned bson_t, destroyed with the pointer.

#include <bson/bson.h>

#include <memory>

namespace telemetryd::mongo {

struct BsonDeleter {
  void operator()(bson_t* b) const { bson_destroy(b); }
};
using BsonPtr = std::unique_ptr<bson_t, BsonDeleter>;

}  // namespace telemetryd::mongo
