#include "ingest/metadata_normalizer.hpp"

#include <simdjson.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>

#include "events/event_decoder.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::ingest {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr std::string_view kRequired[] = {"gpu_uuid", "host", "model_name"};
constexpr std::string_view kOptionalStrings[] = {"serial", "vbios_version", "driver_version",
                                                 "cuda_version", "pci_bus_id"};

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

template <typename T>
bool contains(const T& list, std::string_view name) {
  for (std::string_view item : list)
    if (item == name) return true;
  return false;
}

// Memory given in a unit other than bytes: the field name carries the unit.
struct MemoryField {
  std::string_view name;
  double factor;
};
constexpr MemoryField kMemoryFields[] = {
    {"memory_total_bytes", 1.0},
    {"memory_total_kib", 1024.0},
    {"memory_total_mib", 1024.0 * 1024},
    {"memory_total_mb", 1024.0 * 1024},  // nvidia-smi says MiB and writes "MB"
    {"memory_total_gib", 1024.0 * 1024 * 1024},
    {"memory_total_gb", 1024.0 * 1024 * 1024},
};

const MemoryField* memory_field(std::string_view name) {
  for (const auto& field : kMemoryFields)
    if (field.name == name) return &field;
  return nullptr;
}

bool to_bytes(double value, double factor, std::int64_t& bytes) {
  const double total = value * factor;
  if (!std::isfinite(total) || total < 0 || total > 9.0e18) return false;
  bytes = static_cast<std::int64_t>(std::llround(total));
  return true;
}

InputError wrong(std::string_view field, std::string message) {
  return {"wrong_type", std::move(message), std::string(field)};
}

}  // namespace

bool parse_memory_size(std::string_view text, std::int64_t& bytes) {
  text = trim(text);
  std::size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
    ++digits;
  if (digits == 0) return false;
  char* end = nullptr;
  const std::string number(text.substr(0, digits));
  const double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size()) return false;
  const std::string_view unit = trim(text.substr(digits));
  double factor = 0;
  if (unit.empty() || iequals(unit, "B") || iequals(unit, "bytes")) {
    factor = 1;
  } else if (iequals(unit, "KiB") || iequals(unit, "KB")) {
    factor = 1024.0;
  } else if (iequals(unit, "MiB") || iequals(unit, "MB")) {
    factor = 1024.0 * 1024;
  } else if (iequals(unit, "GiB") || iequals(unit, "GB")) {
    factor = 1024.0 * 1024 * 1024;
  } else if (iequals(unit, "TiB") || iequals(unit, "TB")) {
    factor = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return false;
  }
  return to_bytes(value, factor, bytes);
}

NormalizeResult normalize_metadata(std::string_view body) {
  simdjson::dom::parser parser;
  element root;
  if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) {
    return InputError{"invalid_json", "the body is not valid JSON", ""};
  }
  simdjson::dom::object object;
  if (root.get(object) != simdjson::SUCCESS) {
    return InputError{"invalid_json", "the body must be a JSON object", ""};
  }

  NormalizedMetadata out;
  std::string strings[3];
  std::string observed_at;
  std::optional<std::int64_t> memory;
  std::string memory_source;
  std::optional<bool> mig_mode;
  JsonWriter rest;  // optional and unknown fields, in the order received
  rest.begin_object();

  for (auto field : object) {
    const std::string_view name = field.key;
    const element value = field.value;
    if (contains(kRequired, name) || contains(kOptionalStrings, name)) {
      std::string_view text;
      if (value.get(text) != simdjson::SUCCESS)
        return wrong(name, std::string(name) + " must be a string");
      text = trim(text);
      for (std::size_t i = 0; i < 3; ++i)
        if (name == kRequired[i]) strings[i] = std::string(text);
      // The contract never carries empty strings: an empty optional field is left out.
      if (contains(kOptionalStrings, name) && !text.empty()) rest.key(name).value(text);
    } else if (name == "observed_at") {
      std::string_view text;
      if (value.get(text) != simdjson::SUCCESS)
        return wrong(name, "observed_at must be an RFC 3339 date-time string");
      if (!events::parse_rfc3339(trim(text), out.observed_at))
        return InputError{"invalid_value",
                          "observed_at must be an RFC 3339 date-time, e.g. 2026-12-01T10:00:00Z",
                          "observed_at"};
      observed_at = rfc3339_utc(out.observed_at);
    } else if (name == "memory_total" || memory_field(name) != nullptr) {
      if (memory) {
        return InputError{
            "invalid_value",
            "memory is given twice (" + memory_source + " and " + std::string(name) + "); send one",
            std::string(name)};
      }
      std::int64_t bytes = 0;
      bool ok = false;
      std::string_view text;
      double number = 0;
      std::int64_t integer = 0;
      std::uint64_t unsigned_integer = 0;
      const double factor = name == "memory_total" ? 1.0 : memory_field(name)->factor;
      if (value.get(text) == simdjson::SUCCESS) {
        ok = name == "memory_total" && parse_memory_size(text, bytes);
      } else if (value.get(integer) == simdjson::SUCCESS) {
        ok = to_bytes(static_cast<double>(integer), factor, bytes);
        if (ok && factor == 1.0) bytes = integer;
      } else if (value.get(unsigned_integer) == simdjson::SUCCESS) {
        ok = to_bytes(static_cast<double>(unsigned_integer), factor, bytes);
      } else if (value.get(number) == simdjson::SUCCESS) {
        ok = factor != 1.0 && to_bytes(number, factor, bytes);
      }
      if (!ok || bytes < 0) {
        return InputError{"invalid_value",
                          std::string(name) +
                              " must be a size >= 0: an integer of bytes, a number in the unit "
                              "its name gives, or memory_total as text such as \"80 GiB\"",
                          std::string(name)};
      }
      memory = bytes;
      memory_source = std::string(name);
    } else if (name == "mig_mode") {
      bool flag = false;
      std::string_view text;
      if (value.get(flag) == simdjson::SUCCESS) {
        mig_mode = flag;
      } else if (value.get(text) == simdjson::SUCCESS &&
                 (iequals(trim(text), "enabled") || iequals(trim(text), "disabled"))) {
        mig_mode = iequals(trim(text), "enabled");
      } else {
        return wrong(name, "mig_mode must be true, false, \"Enabled\" or \"Disabled\"");
      }
    } else {
      rest.key(name).raw(simdjson::minify(value));
    }
  }

  for (std::size_t i = 0; i < 3; ++i) {
    if (strings[i].empty()) {
      return InputError{"missing_field",
                        std::string(kRequired[i]) + " is required (a non-empty string)",
                        std::string(kRequired[i])};
    }
  }
  if (observed_at.empty()) {
    return InputError{"missing_field", "observed_at is required (an RFC 3339 date-time)",
                      "observed_at"};
  }

  JsonWriter json;
  json.begin_object()
      .key("gpu_uuid")
      .value(strings[0])
      .key("host")
      .value(strings[1])
      .key("model_name")
      .value(strings[2])
      .key("observed_at")
      .value(observed_at);
  if (memory) json.key("memory_total_bytes").value(*memory);
  if (mig_mode) json.key("mig_mode").value(*mig_mode);
  rest.end_object();
  // Splice the remaining members in: `rest` is `{...}`, possibly `{}`.
  const std::string& tail = rest.str();
  std::string data = json.take();
  if (tail.size() > 2) {
    data += ',';
    data.append(tail, 1, tail.size() - 2);
  }
  data += '}';
  out.data_json = std::move(data);
  out.gpu_uuid = strings[0];
  return out;
}

}  // namespace telemetryd::ingest
