#include "mongo/bson_json.hpp"

#include <chrono>

#include "telemetryd/time_format.hpp"

namespace telemetryd::mongo {
namespace {

void write_value(JsonWriter& json, const bson_iter_t* iter);

void write_children(JsonWriter& json, const bson_iter_t* parent, bool as_array) {
  bson_iter_t child;
  if (!bson_iter_recurse(parent, &child)) {
    as_array ? json.begin_array().end_array() : json.begin_object().end_object();
    return;
  }
  as_array ? json.begin_array() : json.begin_object();
  while (bson_iter_next(&child)) {
    if (!as_array) json.key(bson_iter_key(&child));
    write_value(json, &child);
  }
  as_array ? json.end_array() : json.end_object();
}

void write_value(JsonWriter& json, const bson_iter_t* iter) {
  switch (bson_iter_type(iter)) {
    case BSON_TYPE_UTF8: {
      uint32_t length = 0;
      const char* text = bson_iter_utf8(iter, &length);
      json.value(std::string_view(text, length));
      break;
    }
    case BSON_TYPE_INT32:
      json.value(static_cast<std::int64_t>(bson_iter_int32(iter)));
      break;
    case BSON_TYPE_INT64:
      json.value(static_cast<std::int64_t>(bson_iter_int64(iter)));
      break;
    case BSON_TYPE_DOUBLE:
      json.value(bson_iter_double(iter));
      break;
    case BSON_TYPE_BOOL:
      json.value(bson_iter_bool(iter));
      break;
    case BSON_TYPE_DATE_TIME:
      json.value(rfc3339_utc(std::chrono::system_clock::time_point(
          std::chrono::milliseconds(bson_iter_date_time(iter)))));
      break;
    case BSON_TYPE_DOCUMENT:
      write_children(json, iter, false);
      break;
    case BSON_TYPE_ARRAY:
      write_children(json, iter, true);
      break;
    default:
      json.null();
      break;  // null, and types this project never stores
  }
}

}  // namespace

void write_bson_value(JsonWriter& json, const bson_iter_t* iter) {
  write_value(json, iter);
}

void write_bson_document(JsonWriter& json, const bson_t* document) {
  bson_iter_t iter;
  json.begin_object();
  if (bson_iter_init(&iter, document)) {
    while (bson_iter_next(&iter)) {
      json.key(bson_iter_key(&iter));
      write_value(json, &iter);
    }
  }
  json.end_object();
}

}  // namespace telemetryd::mongo
