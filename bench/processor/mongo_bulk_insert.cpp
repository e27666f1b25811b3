// Baseline for bench/processor: the raw rate of unordered bulk inserts through libmongoc into the
// same server, with no Kafka, validation or enrichment in the way.
// Usage: mongo_bulk_insert URI DATABASE COUNT [BATCH] [--copy-from SOURCE_DATABASE]
// Without --copy-from it inserts COUNT synthetic events' data fields plus _id and ts (lighter than
// what the processor stores). With it, it first reads every document the processor stored in
// SOURCE_DATABASE's gpu_metrics and token_usage and creates the same indexes in DATABASE, then
// times inserting exactly those documents: the ceiling for the processor on this store.
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

// Every document of database.collection, in memory.
std::vector<bson_t*> read_all(mongoc_client_t* client, const std::string& database,
                              const char* collection_name) {
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client, database.c_str(), collection_name);
  bson_t filter = BSON_INITIALIZER;
  mongoc_cursor_t* cursor = mongoc_collection_find_with_opts(collection, &filter, nullptr, nullptr);
  std::vector<bson_t*> docs;
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor, &doc)) docs.push_back(bson_copy(doc));
  bson_error_t error;
  if (mongoc_cursor_error(cursor, &error)) {
    std::fprintf(stderr, "reading %s.%s failed: %s\n", database.c_str(), collection_name,
                 error.message);
    std::exit(1);
  }
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(collection);
  return docs;
}

// The source collection's indexes (all but _id's), created on the target collection.
void copy_indexes(mongoc_client_t* client, const std::string& source, const std::string& target,
                  const char* collection_name) {
  mongoc_collection_t* from = mongoc_client_get_collection(client, source.c_str(), collection_name);
  mongoc_cursor_t* cursor = mongoc_collection_find_indexes_with_opts(from, nullptr);
  bson_t command = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&command, "createIndexes", collection_name);
  bson_t indexes;
  BSON_APPEND_ARRAY_BEGIN(&command, "indexes", &indexes);
  int n = 0;
  const bson_t* index = nullptr;
  while (mongoc_cursor_next(cursor, &index)) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, index, "name") &&
        std::string(bson_iter_utf8(&it, nullptr)) == "_id_")
      continue;
    bson_t copy;
    const std::string key = std::to_string(n++);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, key.c_str(), &copy);
    bson_copy_to_excluding_noinit(index, &copy, "v", "ns", nullptr);
    bson_append_document_end(&indexes, &copy);
  }
  bson_append_array_end(&command, &indexes);
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(from);
  bson_error_t error;
  if (n > 0 &&
      !mongoc_client_command_simple(client, target.c_str(), &command, nullptr, nullptr, &error)) {
    std::fprintf(stderr, "createIndexes on %s.%s failed: %s\n", target.c_str(), collection_name,
                 error.message);
    std::exit(1);
  }
  bson_destroy(&command);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string copy_from;
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--copy-from") {
      copy_from = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      break;
    }
  }
  if (args.size() < 3) {
    std::fprintf(stderr, "usage: %s URI DATABASE COUNT [BATCH] [--copy-from SOURCE_DATABASE]\n",
                 argv[0]);
    return 2;
  }
  const std::string uri = args[0], database = args[1];
  std::size_t count = std::stoul(args[2]);
  const std::size_t batch = args.size() > 3 ? std::stoul(args[3]) : 500;
  mongoc_init();
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  std::vector<bson_t*> metrics_docs, usage_docs;
  if (!copy_from.empty()) {
    metrics_docs = read_all(client, copy_from, "gpu_metrics");
    usage_docs = read_all(client, copy_from, "token_usage");
    copy_indexes(client, copy_from, database, "gpu_metrics");
    copy_indexes(client, copy_from, database, "token_usage");
    count = metrics_docs.size() + usage_docs.size();
  }

  // Synthetic events' data fields plus _id and ts.
  const auto config =
      telemetryd::load_config({.role = "producer"}, telemetryd::app::role_catalog());
  auto source = telemetryd::SourceRegistry::instance().find("synthetic")->create(config, {});
  std::vector<telemetryd::Event> events;
  std::string error;
  while (copy_from.empty() && events.size() < count) source->sample(events, error);
  if (copy_from.empty()) events.resize(count);
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
