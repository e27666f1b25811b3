#pragma once
// BSON to plain JSON for API responses: dates become RFC 3339 strings and numbers stay numbers,
// instead of MongoDB's extended JSON ({"$date": ...}) that API clients should not have to know.

#include <bson/bson.h>

#include "telemetryd/json_writer.hpp"

namespace telemetryd::mongo {

void write_bson_document(JsonWriter& json, const bson_t* document);
/// The value `iter` points at, converted the same way.
void write_bson_value(JsonWriter& json, const bson_iter_t* iter);

}  // namespace telemetryd::mongo
