#include "mongo/json_to_bson.hpp"

#include <simdjson.h>

#include <cstdint>
#include <limits>

namespace telemetryd::mongo {
namespace {

// BSON array keys are the decimal indexes; bson_uint32_to_string avoids a format call per item.
struct ArrayKey {
  char buffer[16];
  const char* key = nullptr;
  size_t length = 0;
  explicit ArrayKey(uint32_t index) {
    length = bson_uint32_to_string(index, &key, buffer, sizeof buffer);
  }
};

bool append_value(bson_t* doc, const char* key, int key_length, simdjson::dom::element value,
                  std::string& error);

bool append_members(bson_t* doc, simdjson::dom::object object, std::string& error) {
  for (const auto field : object) {
    const std::string_view key = field.key;
    // What libmongoc's check before sending refuses (it is skipped, see MongoStore::write). Keys
    // with '$' or '.' are the server's to judge, per document, as before.
    if (key.empty()) {
      error = "an empty key";
      return false;
    }
    if (key.find('\0') != std::string_view::npos) {
      error = "a key holding a NUL character";
      return false;
    }
    if (key.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
      error = "a key too long for BSON";
      return false;
    }
    if (!append_value(doc, key.data(), static_cast<int>(key.size()), field.value, error)) {
      return false;
    }
  }
  return true;
}

bool append_value(bson_t* doc, const char* key, int key_length, simdjson::dom::element value,
                  std::string& error) {
  using simdjson::dom::element_type;
  switch (value.type()) {
    case element_type::OBJECT: {
      bson_t child;
      if (!bson_append_document_begin(doc, key, key_length, &child)) break;
      const simdjson::dom::object members = value.get_object().value_unsafe();
      const bool ok = append_members(&child, members, error);
      bson_append_document_end(doc, &child);
      return ok;
    }
    case element_type::ARRAY: {
      bson_t child;
      if (!bson_append_array_begin(doc, key, key_length, &child)) break;
      uint32_t index = 0;
      bool ok = true;
      const simdjson::dom::array items = value.get_array().value_unsafe();
      for (const auto item : items) {
        const ArrayKey item_key(index++);
        ok = append_value(&child, item_key.key, static_cast<int>(item_key.length), item, error);
        if (!ok) break;
      }
      bson_append_array_end(doc, &child);
      return ok;
    }
    case element_type::STRING: {
      const std::string_view s = value.get_string().value_unsafe();
      if (s.size() > static_cast<size_t>(std::numeric_limits<int>::max())) break;
      if (bson_append_utf8(doc, key, key_length, s.data(), static_cast<int>(s.size()))) return true;
      break;
    }
    case element_type::INT64: {
      const int64_t n = value.get_int64().value_unsafe();
      const bool ok =
          n >= std::numeric_limits<int32_t>::min() && n <= std::numeric_limits<int32_t>::max()
              ? bson_append_int32(doc, key, key_length, static_cast<int32_t>(n))
              : bson_append_int64(doc, key, key_length, n);
      if (ok) return true;
      break;
    }
    case element_type::UINT64:
      // Above INT64_MAX: BSON has no unsigned integer, and libbson's reader refused these too
      // rather than round them to a double.
      error = "an integer above 9223372036854775807";
      return false;
    case element_type::DOUBLE:
      if (bson_append_double(doc, key, key_length, value.get_double().value_unsafe())) return true;
      break;
    case element_type::BOOL:
      if (bson_append_bool(doc, key, key_length, value.get_bool().value_unsafe())) return true;
      break;
    case element_type::NULL_VALUE:
      if (bson_append_null(doc, key, key_length)) return true;
      break;
  }
  if (error.empty()) error = "the document grew past BSON's size limit";
  return false;
}

}  // namespace

bool append_json_object(bson_t* doc, std::string_view json, std::string& error) {
  // One parser per thread: its buffers are reused from event to event.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (const auto code = parser.parse(json.data(), json.size()).get(root)) {
    error = simdjson::error_message(code);
    return false;
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) {
    error = "not a JSON object";
    return false;
  }
  return append_members(doc, object, error);
}

}  // namespace telemetryd::mongo
