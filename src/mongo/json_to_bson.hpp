#pragma once
// An event's `data` JSON to BSON, with simdjson instead of libbson's JSON reader: the processor's
// hot path (the performance issue's profile put about 30% of its CPU in libbson reading each
// event's JSON a second time).

#include <bson/bson.h>

#include <string>
#include <string_view>

namespace telemetryd::mongo {

/// Appends the members of the JSON object `json` to `doc`, typed as libbson's JSON reader types
/// plain JSON (an integer is int32 when it fits, else int64; other numbers double; strings,
/// booleans, null, documents, arrays). Unlike that reader it gives extended JSON ({"$date": ..})
/// no meaning. It refuses an empty key, as libmongoc's check of each document before sending
/// does, so that check can be skipped, a key holding a NUL, which BSON cannot hold, and an
/// integer above INT64_MAX, which libbson's reader refused too (no silent rounding). On false,
/// `error` says why and `doc` may hold part of the members.
bool append_json_object(bson_t* doc, std::string_view json, std::string& error);

}  // namespace telemetryd::mongo
