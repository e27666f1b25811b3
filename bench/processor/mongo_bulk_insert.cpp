// Baseline for bench/processor: the raw rate of unordered bulk inserts of the same documents
// through libmongoc into the same server, with no Kafka, validation or enrichment in the way.
// Usage: mongo_bulk_insert URI DATABASE COUNT [BATCH]
// Prints one JSON line: {"documents":N,"seconds":S,"cpu_seconds":C}

#include <mongoc/mongoc.h>
#include <simdjson.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "telemetryd/source.hpp"

// libbson declares bson_t 128-byte aligned; vectors of pointers drop the attribute harmlessly.
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace {
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URI DATABASE COUNT [BATCH]\n", argv[0]);
    return 2;
  }
  const std::string uri = argv[1], database = argv[2];
  const std::size_t count = std::stoul(argv[3]);
  const std::size_t batch = argc > 4 ? std::stoul(argv[4]) : 500;

  // The same documents the processor stores: synthetic events, data fields plus _id and ts.
  const auto config =
      telemetryd::load_config({.role = "producer"}, telemetryd::app::role_catalog());
  auto source = telemetryd::SourceRegistry::instance().find("synthetic")->create(config, {});
  std::vector<telemetryd::Event> events;
  std::string error;
  while (events.size() < count) source->sample(events, error);
  events.resize(count);
  std::vector<bson_t*> metrics_docs, usage_docs;
  simdjson::dom::parser parser;
  for (const auto& e : events) {
    simdjson::dom::element doc = parser.parse(e.payload);
    const std::string data = simdjson::minify(doc["data"]);
    bson_error_t bson_error;
    bson_t* b = bson_new_from_json(reinterpret_cast<const uint8_t*>(data.data()),
                                   static_cast<ssize_t>(data.size()), &bson_error);
    bson_t* full = bson_new();
    BSON_APPEND_UTF8(full, "_id", e.id.c_str());
    BSON_APPEND_DATE_TIME(
        full, "ts",
        std::chrono::duration_cast<std::chrono::milliseconds>(e.time.time_since_epoch()).count());
    bson_concat(full, b);
    bson_destroy(b);
    (e.topic == telemetryd::kGpuMetricsTopic ? metrics_docs : usage_docs).push_back(full);
  }

  mongoc_init();
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  bson_t* opts = BCON_NEW("ordered", BCON_BOOL(false));
  const double cpu_before = cpu_seconds();
  const auto started = std::chrono::steady_clock::now();
  for (auto* docs : {&metrics_docs, &usage_docs}) {
    mongoc_collection_t* collection = mongoc_client_get_collection(
        client, database.c_str(), docs == &metrics_docs ? "gpu_metrics" : "token_usage");
    for (std::size_t i = 0; i < docs->size(); i += batch) {
      const std::size_t n = std::min(batch, docs->size() - i);
      bson_error_t insert_error;
      if (!mongoc_collection_insert_many(collection, const_cast<const bson_t**>(docs->data() + i),
                                         n, opts, nullptr, &insert_error)) {
        std::fprintf(stderr, "insert failed: %s\n", insert_error.message);
        return 1;
      }
    }
    mongoc_collection_destroy(collection);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"documents\":%zu,\"seconds\":%.3f,\"cpu_seconds\":%.3f}\n", count, seconds,
              cpu_seconds() - cpu_before);
  for (auto* d : metrics_docs) bson_destroy(d);
  for (auto* d : usage_docs) bson_destroy(d);
  bson_destroy(opts);
  mongoc_client_destroy(client);
  mongoc_cleanup();
  return 0;
}
