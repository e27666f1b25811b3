#pragma once
// One find, every document handed to a callback: the cursor loop the store's queries and the
// latest view share.

#include <mongoc/mongoc.h>

#include "mongo/mongo_errors.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::mongo {

/// Runs a find on `collection` and hands every document to `each`; the cursor's error, if any.
template <typename Each>
Result<bool> for_each_found(mongoc_collection_t* collection, const bson_t* filter,
                            const bson_t* opts, Each&& each) {
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(collection, filter, opts, nullptr);
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor, &doc)) each(doc);
  bson_error_t error;
  const bool failed = mongoc_cursor_error(cursor, &error);
  mongoc_cursor_destroy(cursor);
  if (failed) return classify(error);
  return true;
}

}  // namespace telemetryd::mongo
