// History filler for bench/read_path: GPUS x SAMPLES gpu_metrics documents shaped as the daemon
// stores them (MongoStore::write's BSON, SqliteStore::write's row and JSON document), one sample
// per GPU per second ending now, written straight into the database in bulk: a million samples
// through Kafka and the processor would take the benchmark's whole time.
// Usage: read_path_fill mongodb URI DATABASE GPUS SAMPLES
//        read_path_fill sqlite FILE GPUS SAMPLES [USAGE_DAYS REQUESTS_PER_MINUTE]
// With USAGE_DAYS, the SQLite file also gets that many days of token usage ending now (two
// models x two tenants, one deployment, round robin), and its usage rollups are dropped, so
// the daemon's next start marks and rolls up every minute as after an upgrade.
// The latest view (gpu_latest) is dropped, so the daemon's next start fills it from this
// history, as it does after an upgrade (and a release without the view ignores it). Prints one JSON
// line: {"samples":N,"seconds":S}.

#include <mongoc/mongoc.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

// libbson declares bson_t 128-byte aligned; vectors of pointers drop the attribute harmlessly.
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace {

using Clock = std::chrono::system_clock;

// One sample's fields: what the synthetic source sends for an H100, varied by GPU and second.
struct Sample {
  std::string id, gpu_uuid, host;
  Clock::time_point time;
  double utilization, power, temperature;
  std::int64_t memory_used;
};

Sample sample_of(int gpu, int second, int samples, Clock::time_point now) {
  char uuid[64];
  std::snprintf(uuid, sizeof uuid, "GPU-readpath-%04d", gpu);
  const int phase = (gpu * 7 + second) % 100;
  return {std::string(uuid) + "-" + std::to_string(second),
          uuid,
          "node-" + std::to_string(gpu / 8),
          now - std::chrono::seconds(samples - second),
          static_cast<double>(phase),
          100.0 + phase * 5.5,
          40.0 + phase / 4.0,
          1000000000LL * (phase % 80)};
}

constexpr const char* kModel = "NVIDIA H100 80GB HBM3";
constexpr std::int64_t kMemoryTotal = 85899345920;

int fill_mongo(const std::string& uri, const std::string& database, int gpus, int samples) {
  mongoc_init();
  mongoc_client_t* client = mongoc_client_new(uri.c_str());
  if (client == nullptr) {
    std::fprintf(stderr, "invalid URI\n");
    return 2;
  }
  mongoc_collection_t* latest =
      mongoc_client_get_collection(client, database.c_str(), "gpu_latest");
  mongoc_collection_drop(latest, nullptr);  // absent: nothing to drop
  mongoc_collection_destroy(latest);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client, database.c_str(), "gpu_metrics");
  bson_t* opts = BCON_NEW("ordered", BCON_BOOL(false));
  const auto now = Clock::now();
  std::vector<bson_t*> batch;
  int status = 0;
  const auto flush = [&] {
    bson_error_t error;
    if (!batch.empty() &&
        !mongoc_collection_insert_many(collection, const_cast<const bson_t**>(batch.data()),
                                       batch.size(), opts, nullptr, &error)) {
      std::fprintf(stderr, "insert failed: %s\n", error.message);
      status = 1;
    }
    for (bson_t* doc : batch) bson_destroy(doc);
    batch.clear();
  };
  // Second by second across the GPUs, as samples arrive.
  for (int second = 0; second < samples && status == 0; ++second) {
    for (int gpu = 0; gpu < gpus; ++gpu) {
      const Sample s = sample_of(gpu, second, samples, now);
      batch.push_back(BCON_NEW(
          "_id", BCON_UTF8(s.id.c_str()), "ts", BCON_DATE_TIME(telemetryd::unix_ms(s.time)),
          "source", BCON_UTF8("bench/read_path"), "received_at",
          BCON_DATE_TIME(telemetryd::unix_ms(s.time)), "gpu_uuid", BCON_UTF8(s.gpu_uuid.c_str()),
          "host", BCON_UTF8(s.host.c_str()), "model_name", BCON_UTF8(kModel), "collector",
          BCON_UTF8("synthetic"), "utilization_gpu_percent", BCON_DOUBLE(s.utilization),
          "utilization_memory_percent", BCON_DOUBLE(s.utilization / 2), "memory_used_bytes",
          BCON_INT64(s.memory_used), "memory_total_bytes", BCON_INT64(kMemoryTotal),
          "power_draw_watts", BCON_DOUBLE(s.power), "temperature_gpu_celsius",
          BCON_DOUBLE(s.temperature), "clock_sm_mhz", BCON_INT64(1980)));
      if (batch.size() == 1000) flush();
    }
  }
  flush();
  bson_destroy(opts);
  mongoc_collection_destroy(collection);
  mongoc_client_destroy(client);
  mongoc_cleanup();
  return status;
}

int fill_sqlite(const std::string& path, int gpus, int samples) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    return 2;
  }
  sqlite3_exec(db, "DROP TABLE IF EXISTS gpu_latest", nullptr, nullptr, nullptr);
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(
      db, "INSERT INTO gpu_metrics (id, ts, gpu_uuid, host, doc) VALUES (?1, ?2, ?3, ?4, ?5)", -1,
      &insert, nullptr);
  if (insert == nullptr) {
    std::fprintf(stderr, "%s (start the all role once on this file first)\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return 2;
  }
  const auto now = Clock::now();
  int status = 0;
  for (int second = 0; second < samples && status == 0; ++second) {
    for (int gpu = 0; gpu < gpus; ++gpu) {
      const Sample s = sample_of(gpu, second, samples, now);
      telemetryd::JsonWriter json;
      json.begin_object()
          .key("_id")
          .value(s.id)
          .key("ts")
          .value(telemetryd::rfc3339_utc(s.time))
          .key("source")
          .value("bench/read_path")
          .key("received_at")
          .value(telemetryd::rfc3339_utc(s.time))
          .key("gpu_uuid")
          .value(s.gpu_uuid)
          .key("host")
          .value(s.host)
          .key("model_name")
          .value(kModel)
          .key("collector")
          .value("synthetic")
          .key("utilization_gpu_percent")
          .value(s.utilization)
          .key("utilization_memory_percent")
          .value(s.utilization / 2)
          .key("memory_used_bytes")
          .value(s.memory_used)
          .key("memory_total_bytes")
          .value(kMemoryTotal)
          .key("power_draw_watts")
          .value(s.power)
          .key("temperature_gpu_celsius")
          .value(s.temperature)
          .key("clock_sm_mhz")
          .value(std::int64_t{1980})
          .end_object();
      sqlite3_reset(insert);
      sqlite3_bind_text(insert, 1, s.id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(insert, 2, telemetryd::unix_ms(s.time));
      sqlite3_bind_text(insert, 3, s.gpu_uuid.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(insert, 4, s.host.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(insert, 5, json.str().c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(insert) != SQLITE_DONE) {
        std::fprintf(stderr, "insert failed: %s\n", sqlite3_errmsg(db));
        status = 1;
      }
    }
  }
  sqlite3_finalize(insert);
  sqlite3_exec(db, status == 0 ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return status;
}

// Days of requests, `per_minute` each minute, as SqliteStore::write stores them.
int fill_sqlite_usage(const std::string& path, int days, int per_minute) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return 2;
  sqlite3_exec(db, "DROP TABLE IF EXISTS usage_minutes; DROP TABLE IF EXISTS usage_marks; BEGIN",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO token_usage (id, ts, model, tenant_id, input_tokens, "
                     "output_tokens, amount_usd, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
                     -1, &insert, nullptr);
  if (insert == nullptr) {
    std::fprintf(stderr, "%s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return 2;
  }
  const std::int64_t end = telemetryd::unix_ms(Clock::now());
  const std::int64_t requests = static_cast<std::int64_t>(days) * 1440 * per_minute;
  const std::int64_t step = 60000 / per_minute;
  int status = 0;
  for (std::int64_t i = 0; i < requests && status == 0; ++i) {
    const std::int64_t ts = end - (requests - i) * step;
    const std::string id = "usage-" + std::to_string(i);
    const std::string model = "model-" + std::to_string(i % 2);
    const std::string tenant = "tenant-" + std::to_string((i / 2) % 2);
    const std::int64_t input = 100 + i % 900, output = 20 + i % 300;
    telemetryd::JsonWriter json;
    json.begin_object()
        .key("_id")
        .value(id)
        .key("ts")
        .value(telemetryd::rfc3339_utc(Clock::time_point(std::chrono::milliseconds(ts))))
        .key("source")
        .value("bench/read_path")
        .key("model")
        .value(model)
        .key("tenant_id")
        .value(tenant)
        .key("deployment")
        .value("chat")
        .key("input_tokens")
        .value(input)
        .key("output_tokens")
        .value(output)
        .end_object();
    sqlite3_reset(insert);
    sqlite3_bind_text(insert, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 2, ts);
    sqlite3_bind_text(insert, 3, model.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(insert, 4, tenant.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 5, input);
    sqlite3_bind_int64(insert, 6, output);
    sqlite3_bind_text(insert, 7, json.str().c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(insert) != SQLITE_DONE) {
      std::fprintf(stderr, "insert failed: %s\n", sqlite3_errmsg(db));
      status = 1;
    }
  }
  sqlite3_finalize(insert);
  sqlite3_exec(db, status == 0 ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string kind = argc > 1 ? argv[1] : "";
  if (!((kind == "mongodb" && argc == 6) || (kind == "sqlite" && (argc == 5 || argc == 7)))) {
    std::fprintf(stderr,
                 "usage: %s mongodb URI DATABASE GPUS SAMPLES | sqlite FILE GPUS SAMPLES "
                 "[USAGE_DAYS REQUESTS_PER_MINUTE]\n",
                 argv[0]);
    return 2;
  }
  const bool usage = kind == "sqlite" && argc == 7;
  const int gpus = std::stoi(argv[kind == "mongodb" ? 4 : 3]);
  const int samples = std::stoi(argv[kind == "mongodb" ? 5 : 4]);
  const auto started = std::chrono::steady_clock::now();
  int status = kind == "mongodb" ? fill_mongo(argv[2], argv[3], gpus, samples)
                                 : fill_sqlite(argv[2], gpus, samples);
  if (status == 0 && usage) {
    status = fill_sqlite_usage(argv[2], std::stoi(argv[5]), std::stoi(argv[6]));
  }
  if (status != 0) return status;
  std::printf("{\"samples\":%lld,\"seconds\":%.3f}\n", static_cast<long long>(gpus) * samples,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return 0;
}
