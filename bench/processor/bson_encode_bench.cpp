// The processor's per-event BSON cost, in-process: an event's data JSON to a stored document
// with mongo::append_json_object (simdjson) beside libbson's own JSON reader, which it replaced,
// and libmongoc's per-document check before sending (bson_validate with its insert flags), which
// the processor now skips. CPU time per event over the synthetic source's mix.
// Usage: bson_encode_bench [EVENTS]   Prints one JSON line.

#include <bson/bson.h>
#include <simdjson.h>
#include <time.h>

#include <cstdio>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "mongo/json_to_bson.hpp"
#include "telemetryd/source.hpp"

// libbson declares bson_t 128-byte aligned; vectors of pointers drop the attribute harmlessly.
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace {

double cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

template <typename F>
double ns_per_event(const std::vector<std::string>& data, int rounds, F&& encode) {
  const double start = cpu_ns();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& json : data) encode(json);
  }
  return (cpu_ns() - start) / static_cast<double>(data.size() * static_cast<size_t>(rounds));
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::stoul(argv[1]) : 20000;
  const auto config =
      telemetryd::load_config({.role = "producer"}, telemetryd::app::role_catalog());
  auto source = telemetryd::SourceRegistry::instance().find("synthetic")->create(config, {});
  std::vector<telemetryd::Event> events;
  std::string error;
  while (events.size() < count) source->sample(events, error);
  events.resize(count);
  std::vector<std::string> data;
  simdjson::dom::parser parser;
  std::size_t bytes = 0;
  for (const auto& e : events) {
    simdjson::dom::element doc = parser.parse(e.payload);
    data.push_back(std::string(simdjson::minify(doc["data"])));
    bytes += data.back().size();
  }
  constexpr int kRounds = 5;
  bool failed = false;
  const double simd = ns_per_event(data, kRounds, [&](const std::string& json) {
    bson_t doc = BSON_INITIALIZER;
    std::string why;
    failed |= !telemetryd::mongo::append_json_object(&doc, json, why);
    bson_destroy(&doc);
  });
  const double libbson = ns_per_event(data, kRounds, [&](const std::string& json) {
    bson_error_t e;
    bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                     static_cast<ssize_t>(json.size()), &e);
    failed |= doc == nullptr;
    bson_destroy(doc);
  });
  // libmongoc's default insert validation: UTF-8 (NUL allowed) and empty keys.
  std::vector<bson_t*> docs;
  for (const auto& json : data) {
    docs.push_back(bson_new());
    telemetryd::mongo::append_json_object(docs.back(), json, error);
  }
  const auto flags = static_cast<bson_validate_flags_t>(
      BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL | BSON_VALIDATE_EMPTY_KEYS);
  std::size_t i = 0;
  const double validate = ns_per_event(data, kRounds, [&](const std::string&) {
    size_t offset = 0;
    failed |= !bson_validate(docs[i++ % docs.size()], flags, &offset);
  });
  for (auto* d : docs) bson_destroy(d);
  std::printf(
      "{\"events\":%zu,\"mean_bytes\":%zu,\"simdjson_ns\":%.0f,\"libbson_ns\":%.0f,"
      "\"validate_ns\":%.0f,\"failed\":%s}\n",
      count, bytes / count, simd, libbson, validate, failed ? "true" : "false");
  return failed ? 1 : 0;
}
