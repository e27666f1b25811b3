#include "worker/metadata_document.hpp"

#pragma GCC diagnostic ignored "-Wignored-attributes"
#ifdef __clang__
// The same attribute seen from clang: bson_t is declared 128-byte aligned, which heap bson_t
// from bson_new() are not either; libbson does not rely on it.
#pragma clang diagnostic ignored "-Walign-mismatch"
#endif

#include <cmath>
#include <set>
#include <string_view>
#include <vector>

namespace telemetryd::worker {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// Envelope fields of the stored documents; a data field of the same name is kept as data_<name>.
const std::set<std::string, std::less<>> kReserved{"_id",    "event_id",    "ts",
                                                   "source", "received_at", "updated_at"};

struct UnitSuffix {
  std::string_view suffix;
  double bytes;
};
constexpr UnitSuffix kMemoryUnits[] = {
    {"_kib", 1024.0}, {"_mib", 1048576.0}, {"_gib", 1073741824.0}, {"_tib", 1099511627776.0},
    {"_kb", 1e3},     {"_mb", 1e6},        {"_gb", 1e9},           {"_tb", 1e12},
};

struct Field {
  std::string name;
  element value;
  bool nested = false;  // came out of a nested object
};

// MongoDB cannot store '.' in names, nor a leading '$'.
std::string storable_name(std::string name) {
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  if (!name.empty() && name[0] == '$') name[0] = '_';
  if (kReserved.count(name) > 0) name = "data_" + name;
  return name;
}

void flatten(object obj, const std::string& prefix, std::vector<Field>& out) {
  for (auto field : obj) {
    std::string name =
        prefix.empty() ? std::string(field.key) : prefix + "_" + std::string(field.key);
    object nested;
    if (field.value.get(nested) == simdjson::SUCCESS) {
      flatten(nested, name, out);
    } else {
      out.push_back({std::move(name), field.value, !prefix.empty()});
    }
  }
}

bool append_value(bson_t* doc, const std::string& key, element value, std::string& error);

bool append_array(bson_t* doc, const std::string& key, array items, std::string& error) {
  bson_t child;
  if (!bson_append_array_begin(doc, key.c_str(), static_cast<int>(key.size()), &child)) {
    error = "cannot append array " + key;
    return false;
  }
  std::size_t i = 0;
  for (element item : items) {
    const std::string index = std::to_string(i++);
    if (!append_value(&child, index, item, error)) return false;
  }
  return bson_append_array_end(doc, &child);
}

bool append_value(bson_t* doc, const std::string& key, element value, std::string& error) {
  if (key.find('\0') != std::string::npos) {
    error = "a field name contains NUL";
    return false;
  }
  const int len = static_cast<int>(key.size());
  bool ok = false;
  // Named locals rather than value_unsafe() temporaries (GCC 12 flags those as dangling).
  std::string_view text;
  std::int64_t i64 = 0;
  std::uint64_t u64 = 0;
  double number = 0;
  bool flag = false;
  array items;
  object obj;
  switch (value.type()) {
    case element_type::STRING:
      ok = value.get(text) == simdjson::SUCCESS &&
           bson_append_utf8(doc, key.c_str(), len, text.data(), static_cast<int>(text.size()));
      break;
    case element_type::INT64:
      ok = value.get(i64) == simdjson::SUCCESS && bson_append_int64(doc, key.c_str(), len, i64);
      break;
    case element_type::UINT64:  // above int64: a double is the closest BSON has
      ok = value.get(u64) == simdjson::SUCCESS &&
           bson_append_double(doc, key.c_str(), len, static_cast<double>(u64));
      break;
    case element_type::DOUBLE:
      ok = value.get(number) == simdjson::SUCCESS &&
           bson_append_double(doc, key.c_str(), len, number);
      break;
    case element_type::BOOL:
      ok = value.get(flag) == simdjson::SUCCESS && bson_append_bool(doc, key.c_str(), len, flag);
      break;
    case element_type::NULL_VALUE:
      ok = bson_append_null(doc, key.c_str(), len);
      break;
    case element_type::ARRAY:
      if (value.get(items) != simdjson::SUCCESS) break;
      return append_array(doc, key, items, error);
    case element_type::OBJECT: {  // inside arrays only; top-level objects are flattened
      if (value.get(obj) != simdjson::SUCCESS) break;
      bson_t child;
      if (!bson_append_document_begin(doc, key.c_str(), len, &child)) break;
      for (auto field : obj) {
        if (!append_value(&child, storable_name(std::string(field.key)), field.value, error))
          return false;
      }
      ok = bson_append_document_end(doc, &child);
      break;
    }
  }
  if (!ok && error.empty()) error = "cannot append field " + key + " (document too large?)";
  return ok;
}

// <base>_<unit> with a non-negative number -> (<base>_bytes, bytes); false when not a memory unit.
bool to_bytes(const std::string& name, element value, std::string& bytes_name,
              std::int64_t& bytes) {
  double amount = 0;
  if (value.get(amount) != simdjson::SUCCESS || !std::isfinite(amount) || amount < 0) return false;
  for (const auto& unit : kMemoryUnits) {
    if (name.size() > unit.suffix.size() && name.ends_with(unit.suffix)) {
      const double total = std::round(amount * unit.bytes);
      if (total >= 9223372036854775808.0) return false;  // 2^63: keep the original
      bytes_name = name.substr(0, name.size() - unit.suffix.size()) + "_bytes";
      bytes = static_cast<std::int64_t>(total);
      return true;
    }
  }
  return false;
}

}  // namespace

bool is_newer(const DeviceVersion& candidate, const DeviceVersion& current) {
  if (candidate.observed_at_ms != current.observed_at_ms)
    return candidate.observed_at_ms > current.observed_at_ms;
  return candidate.event_id > current.event_id;
}

std::int64_t to_epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Result<MetadataDocument> transform_metadata(const events::DecodedEvent& event,
                                            simdjson::dom::parser& parser) {
  element root;
  object data;
  if (parser.parse(event.data_json).get(root) != simdjson::SUCCESS ||
      root.get(data) != simdjson::SUCCESS) {
    return Error::permanent("data is not a JSON object");
  }
  MetadataDocument doc;
  doc.event_id = event.id;
  doc.gpu_uuid = event.gpu_uuid;
  doc.source = event.source;
  doc.event_time_ms = to_epoch_ms(event.time);
  doc.version.event_id = event.id;
  std::string_view observed_text;
  std::chrono::system_clock::time_point observed;
  if (data.at_key("observed_at").get(observed_text) != simdjson::SUCCESS ||
      !events::parse_rfc3339(observed_text, observed)) {
    return Error::permanent("data.observed_at is not an RFC 3339 date-time");
  }
  doc.version.observed_at_ms = to_epoch_ms(observed);

  std::vector<Field> fields;
  flatten(data, "", fields);
  // Names the event has at the top level win over flattened and converted ones.
  std::set<std::string, std::less<>> taken;
  for (auto field : data) {
    object nested;
    if (field.value.get(nested) != simdjson::SUCCESS)
      taken.insert(storable_name(std::string(field.key)));
  }
  std::set<std::string, std::less<>> written;
  doc.fields.reset(bson_new());
  std::string error;
  for (const Field& field : fields) {
    const std::string name = storable_name(field.name);
    const bool top_level = !field.nested;
    if (written.count(name) > 0 || (!top_level && taken.count(name) > 0)) continue;
    if (name == "observed_at" && top_level) {
      BSON_APPEND_DATE_TIME(doc.fields.get(), "observed_at", doc.version.observed_at_ms);
      written.insert(name);
      continue;
    }
    std::string bytes_name;
    std::int64_t bytes = 0;
    if (to_bytes(name, field.value, bytes_name, bytes) && taken.count(bytes_name) == 0 &&
        written.count(bytes_name) == 0) {
      bson_append_int64(doc.fields.get(), bytes_name.c_str(), static_cast<int>(bytes_name.size()),
                        bytes);
      written.insert(bytes_name);
      continue;
    }
    if (!append_value(doc.fields.get(), name, field.value, error)) return Error::permanent(error);
    written.insert(name);
  }
  return doc;
}

BsonPtr log_document(const MetadataDocument& doc, std::int64_t received_at_ms) {
  BsonPtr out(bson_new());
  BSON_APPEND_UTF8(out.get(), "_id", doc.event_id.c_str());
  BSON_APPEND_DATE_TIME(out.get(), "ts", doc.event_time_ms);
  BSON_APPEND_UTF8(out.get(), "source", doc.source.c_str());
  BSON_APPEND_DATE_TIME(out.get(), "received_at", received_at_ms);
  bson_concat(out.get(), doc.fields.get());
  return out;
}

BsonPtr device_document(const MetadataDocument& doc, std::int64_t updated_at_ms) {
  BsonPtr out(bson_new());
  BSON_APPEND_UTF8(out.get(), "_id", doc.gpu_uuid.c_str());
  BSON_APPEND_UTF8(out.get(), "event_id", doc.event_id.c_str());
  BSON_APPEND_DATE_TIME(out.get(), "ts", doc.event_time_ms);
  BSON_APPEND_UTF8(out.get(), "source", doc.source.c_str());
  BSON_APPEND_DATE_TIME(out.get(), "updated_at", updated_at_ms);
  bson_concat(out.get(), doc.fields.get());
  return out;
}

BsonPtr device_filter(const MetadataDocument& doc) {
  return BsonPtr(BCON_NEW("_id", BCON_UTF8(doc.gpu_uuid.c_str()), "$or", "[", "{", "observed_at",
                          "{", "$lt", BCON_DATE_TIME(doc.version.observed_at_ms), "}", "}", "{",
                          "observed_at", BCON_DATE_TIME(doc.version.observed_at_ms), "event_id",
                          "{", "$lt", BCON_UTF8(doc.event_id.c_str()), "}", "}", "]"));
}

}  // namespace telemetryd::worker
