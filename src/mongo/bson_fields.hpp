#pragma once
// Field readers and small filters shared by the MongoDB store's queries (the cost inputs, the
// usage rollups): a field of another type than the contract's reads as absent (a document the
// decoder accepted always has the right one).

#include <bson/bson.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "mongo/bson_ptr.hpp"

namespace telemetryd::mongo {

inline std::string utf8_at(const bson_t* doc, const char* path) {
  bson_iter_t iter, field;
  if (bson_iter_init(&iter, doc) && bson_iter_find_descendant(&iter, path, &field) &&
      BSON_ITER_HOLDS_UTF8(&field)) {
    return bson_iter_utf8(&field, nullptr);
  }
  return {};
}

inline std::optional<double> double_at(const bson_t* doc, const char* path) {
  bson_iter_t iter, field;
  if (bson_iter_init(&iter, doc) && bson_iter_find_descendant(&iter, path, &field) &&
      BSON_ITER_HOLDS_NUMBER(&field)) {
    return bson_iter_as_double(&field);
  }
  return std::nullopt;
}

inline std::optional<std::int64_t> int64_at(const bson_t* doc, const char* path) {
  bson_iter_t iter, field;
  if (bson_iter_init(&iter, doc) && bson_iter_find_descendant(&iter, path, &field) &&
      BSON_ITER_HOLDS_NUMBER(&field)) {
    return bson_iter_as_int64(&field);
  }
  return std::nullopt;
}

/// ts is a BSON date in gpu_metrics, token_usage and the cost documents; 0 when absent.
inline std::int64_t date_at(const bson_t* doc, const char* key) {
  bson_iter_t iter;
  if (bson_iter_init_find(&iter, doc, key) && BSON_ITER_HOLDS_DATE_TIME(&iter)) {
    return bson_iter_date_time(&iter);
  }
  return 0;
}

/// {ts: {$gte: from, $lt: to}}
inline BsonPtr ts_range(std::int64_t from_ms, std::int64_t to_ms) {
  return BsonPtr(
      BCON_NEW("ts", "{", "$gte", BCON_DATE_TIME(from_ms), "$lt", BCON_DATE_TIME(to_ms), "}"));
}

/// Find options projecting these fields (and _id when `with_id`).
inline BsonPtr projection_of(std::initializer_list<const char*> fields, bool with_id) {
  BsonPtr opts(bson_new());
  bson_t projection;
  BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "projection", &projection);
  if (!with_id) BSON_APPEND_INT32(&projection, "_id", 0);
  for (const char* field : fields) BSON_APPEND_INT32(&projection, field, 1);
  bson_append_document_end(opts.get(), &projection);
  return opts;
}

}  // namespace telemetryd::mongo
