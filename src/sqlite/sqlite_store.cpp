#include "sqlite/sqlite_store.hpp"

#include <memory>

#include "telemetryd/errors.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::sqlite {

using processor::EventKind;

namespace {

struct StatementDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// The stored document, shaped like MongoStore's as the API returns it: envelope fields, then the
// event's data fields at the top level, then the cost block.
std::string document_json(const processor::StoredEvent& stored) {
  const auto& e = *stored.event;
  JsonWriter json;
  json.begin_object()
      .key("_id")
      .value(e.id)
      .key("ts")
      .value(rfc3339_utc(e.time))
      .key("source")
      .value(e.source)
      .key("received_at")
      .value(rfc3339_utc(std::chrono::system_clock::now()));
  std::string out = json.take();
  const std::string_view data = e.data_json;
  if (data.size() > 2) {
    out += ',';
    out.append(data.substr(1, data.size() - 2));
  }
  if (stored.cost) {
    const auto& c = *stored.cost;
    JsonWriter cost;
    cost.begin_object().key("amount_usd");
    c.amount_usd ? cost.value(*c.amount_usd) : cost.null();
    cost.key("cost_per_token");
    c.cost_per_token ? cost.value(*c.cost_per_token) : cost.null();
    cost.key("price_per_hour_usd")
        .value(c.price_per_hour_usd)
        .key("window_s")
        .value(c.window_s)
        .key("tokens_in_window")
        .value(c.tokens_in_window)
        .key("gpu_model")
        .value(c.gpu_model)
        .key("basis")
        .value(c.basis)
        .end_object();
    out += ",\"cost\":" + cost.take();
  }
  out += '}';
  return out;
}

}  // namespace

SqliteStore::SqliteStore(const std::string& path) : path_(path) {
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    throw StartupError("embedded: cannot open " + path + ": " + message);
  }
  sqlite3_busy_timeout(db_, 5000);
}

SqliteStore::~SqliteStore() {
  sqlite3_close(db_);
}

std::string SqliteStore::error_message() const {
  return sqlite3_errmsg(db_);
}

Result<bool> SqliteStore::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    return Error::permanent(path_ + ": " + message);
  }
  return true;
}

Result<bool> SqliteStore::prepare(const processor::GpuCatalog& catalog) {
  const std::lock_guard lock(mutex_);
  for (const char* sql : {
           "PRAGMA journal_mode=WAL",
           "PRAGMA synchronous=NORMAL",
           "CREATE TABLE IF NOT EXISTS gpu_metrics (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, "
           "gpu_uuid TEXT NOT NULL, host TEXT NOT NULL, doc TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS gpu_metrics_gpu_uuid_ts ON gpu_metrics (gpu_uuid, ts)",
           "CREATE INDEX IF NOT EXISTS gpu_metrics_host_ts ON gpu_metrics (host, ts)",
           "CREATE TABLE IF NOT EXISTS token_usage (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, "
           "model TEXT NOT NULL, tenant_id TEXT NOT NULL, input_tokens INTEGER NOT NULL, "
           "output_tokens INTEGER NOT NULL, amount_usd REAL, doc TEXT NOT NULL)",
           "CREATE INDEX IF NOT EXISTS token_usage_model_ts ON token_usage (model, ts)",
           "CREATE INDEX IF NOT EXISTS token_usage_tenant_ts ON token_usage (tenant_id, ts)",
           "CREATE TABLE IF NOT EXISTS gpus (name TEXT PRIMARY KEY, doc TEXT NOT NULL)",
           "CREATE TABLE IF NOT EXISTS dead_letters (topic TEXT, partition INTEGER, "
           "offset INTEGER, key BLOB, value BLOB, reason TEXT, detail TEXT, stage TEXT, at "
           "INTEGER)",
       }) {
    if (auto r = exec(sql); !r) return r;
  }
  Statement upsert;
  {
    sqlite3_stmt* raw = nullptr;
    sqlite3_prepare_v2(db_,
                       "INSERT INTO gpus (name, doc) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE "
                       "SET doc = excluded.doc",
                       -1, &raw, nullptr);
    upsert.reset(raw);
  }
  for (const auto& entry : catalog.entries()) {
    JsonWriter json;
    json.begin_object()
        .key("_id")
        .value(entry.name)
        .key("name")
        .value(entry.name)
        .key("model_name")
        .value(entry.model_name)
        .key("price_per_hour_usd")
        .value(entry.price_per_hour_usd)
        .end_object();
    sqlite3_reset(upsert.get());
    bind_text(upsert.get(), 1, entry.name);
    bind_text(upsert.get(), 2, json.str());
    if (sqlite3_step(upsert.get()) != SQLITE_DONE) return Error::permanent(error_message());
  }
  return true;
}

Result<processor::WriteOutcome> SqliteStore::write(
    const std::vector<processor::StoredEvent>& batch) {
  const std::lock_guard lock(mutex_);
  processor::WriteOutcome outcome;
  // A busy or locked file may pass: retryable, never a reason to dead-letter valid events.
  if (auto r = exec("BEGIN"); !r) return Error::retryable(r.error().message);
  sqlite3_stmt* raw_metrics = nullptr;
  sqlite3_stmt* raw_usage = nullptr;
  sqlite3_prepare_v2(
      db_,
      "INSERT OR IGNORE INTO gpu_metrics (id, ts, gpu_uuid, host, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
      -1, &raw_metrics, nullptr);
  sqlite3_prepare_v2(db_,
                     "INSERT OR IGNORE INTO token_usage (id, ts, model, tenant_id, input_tokens, "
                     "output_tokens, amount_usd, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     -1, &raw_usage, nullptr);
  const Statement metrics(raw_metrics), usage(raw_usage);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& e = *batch[i].event;
    sqlite3_stmt* s = e.kind == EventKind::kGpuMetrics ? metrics.get() : usage.get();
    if (e.kind != EventKind::kGpuMetrics && e.kind != EventKind::kTokenUsage) continue;
    sqlite3_reset(s);
    bind_text(s, 1, e.id);
    sqlite3_bind_int64(s, 2, to_ms(e.time));
    if (e.kind == EventKind::kGpuMetrics) {
      bind_text(s, 3, e.gpu_uuid);
      bind_text(s, 4, e.host);
      bind_text(s, 5, document_json(batch[i]));
    } else {
      bind_text(s, 3, e.model);
      bind_text(s, 4, e.tenant_id);
      sqlite3_bind_int64(s, 5, e.input_tokens);
      sqlite3_bind_int64(s, 6, e.output_tokens);
      if (batch[i].cost && batch[i].cost->amount_usd) {
        sqlite3_bind_double(s, 7, *batch[i].cost->amount_usd);
      } else {
        sqlite3_bind_null(s, 7);
      }
      bind_text(s, 8, document_json(batch[i]));
    }
    if (sqlite3_step(s) != SQLITE_DONE) {
      const std::string message = error_message();
      exec("ROLLBACK");
      // A full disk or a locked file may pass; retrying keeps the events.
      return Error::retryable(path_ + ": " + message);
    }
    if (sqlite3_changes(db_) == 0) {
      ++outcome.duplicates;
    } else {
      ++(e.kind == EventKind::kGpuMetrics ? outcome.gpu_metrics_inserted
                                          : outcome.token_usage_inserted);
    }
  }
  if (auto r = exec("COMMIT"); !r) {
    exec("ROLLBACK");
    return Error::retryable(r.error().message);
  }
  return outcome;
}

Result<std::string> SqliteStore::latest_gpu_json(const processor::GpuQuery& query) {
  const std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  sqlite3_prepare_v2(db_,
                     "SELECT doc FROM gpu_metrics WHERE (?1 = '' OR gpu_uuid = ?1) AND (?2 = '' OR "
                     "host = ?2) ORDER BY ts DESC LIMIT 1",
                     -1, &raw, nullptr);
  const Statement s(raw);
  bind_text(s.get(), 1, query.gpu_uuid);
  bind_text(s.get(), 2, query.host);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW)
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)));
  if (rc == SQLITE_DONE) return std::string("null");
  return Error::retryable(error_message());
}

Result<std::string> SqliteStore::gpus_json() {
  const std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  sqlite3_prepare_v2(db_, "SELECT doc FROM gpus ORDER BY name", -1, &raw, nullptr);
  const Statement s(raw);
  JsonWriter json;
  json.begin_array();
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    json.raw(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)));
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  json.end_array();
  return json.take();
}

Result<std::string> SqliteStore::usage_json(const processor::UsageQuery& query) {
  const std::lock_guard lock(mutex_);
  const std::string column = query.group_by == "tenant" ? "tenant_id" : "model";
  const std::string sql = "SELECT " + column +
                          ", count(*), sum(input_tokens), sum(output_tokens), total(amount_usd) "
                          "FROM token_usage WHERE ts >= ?1 AND ts < ?2 GROUP BY " +
                          column + " ORDER BY " + column;
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
    return Error::retryable(error_message());
  const Statement s(raw);
  sqlite3_bind_int64(s.get(), 1, query.from ? to_ms(*query.from) : INT64_MIN);
  sqlite3_bind_int64(s.get(), 2, query.to ? to_ms(*query.to) : INT64_MAX);
  JsonWriter json;
  json.begin_array();
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    json.begin_object()
        .key("_id")
        .value(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)))
        .key("requests")
        .value(static_cast<std::int64_t>(sqlite3_column_int64(s.get(), 1)))
        .key("input_tokens")
        .value(static_cast<std::int64_t>(sqlite3_column_int64(s.get(), 2)))
        .key("output_tokens")
        .value(static_cast<std::int64_t>(sqlite3_column_int64(s.get(), 3)))
        .key("cost_usd")
        .value(sqlite3_column_double(s.get(), 4))
        .end_object();
  }
  json.end_array();
  return json.take();
}

Result<std::string> SqliteStore::gpu_series_json(const processor::SeriesQuery& query) {
  // The bucket is the epoch-aligned floor (processor::bucket_start) in SQL; avg and max skip
  // documents without the field (NULL), as MongoStore's accumulator does.
  std::string sql = "SELECT ts - ((ts % ?3) + ?3) % ?3 AS bucket, count(*)";
  for (const auto& field : processor::kSeriesFields) {
    const std::string extract = "json_extract(doc, '$." + std::string(field.path) + "')";
    sql += ", avg(" + extract + "), max(" + extract + ")";
  }
  sql +=
      " FROM gpu_metrics WHERE gpu_uuid = ?1 AND ts >= ?2 AND ts < ?4 GROUP BY bucket ORDER BY "
      "bucket";
  const std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
    return Error::retryable(error_message());
  const Statement s(raw);
  bind_text(s.get(), 1, query.gpu_uuid);
  sqlite3_bind_int64(s.get(), 2, to_ms(query.from));
  sqlite3_bind_int64(s.get(), 3, query.step_ms);
  sqlite3_bind_int64(s.get(), 4, to_ms(query.to));
  std::vector<processor::SeriesPoint> points;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    processor::SeriesPoint point;
    point.bucket_ms = sqlite3_column_int64(s.get(), 0);
    point.samples = sqlite3_column_int64(s.get(), 1);
    for (std::size_t i = 0; i < processor::kSeriesFields.size(); ++i) {
      const int column = 2 + 2 * static_cast<int>(i);
      if (sqlite3_column_type(s.get(), column) == SQLITE_NULL) continue;
      point.fields[i] = processor::FieldStats{sqlite3_column_double(s.get(), column),
                                              sqlite3_column_double(s.get(), column + 1)};
    }
    points.push_back(point);
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  if (points.empty()) {
    sqlite3_stmt* raw_any = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT 1 FROM gpu_metrics WHERE gpu_uuid = ?1 LIMIT 1", -1,
                           &raw_any, nullptr) != SQLITE_OK) {
      return Error::retryable(error_message());
    }
    const Statement any(raw_any);
    bind_text(any.get(), 1, query.gpu_uuid);
    rc = sqlite3_step(any.get());
    if (rc == SQLITE_DONE) return std::string("null");
    if (rc != SQLITE_ROW) return Error::retryable(error_message());
  }
  return processor::series_points_json(points);
}

Result<std::string> SqliteStore::devices_json() {
  // SQLite's bare-column rule: with max(ts) as the only aggregate, doc comes from the row that
  // holds the maximum, so this is the latest document per GPU in one pass over the
  // (gpu_uuid, ts) index.
  std::string sql = "SELECT max(ts)";
  for (const char* field : processor::kDeviceFields) {
    sql += ", json_extract(doc, '$." + std::string(field) + "')";
  }
  sql += " FROM gpu_metrics GROUP BY gpu_uuid ORDER BY gpu_uuid";
  const std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
    return Error::retryable(error_message());
  const Statement s(raw);
  JsonWriter json;
  json.begin_array();
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    json.begin_object();
    for (std::size_t i = 0; i < processor::kDeviceFields.size(); ++i) {
      const int column = 1 + static_cast<int>(i);
      switch (sqlite3_column_type(s.get(), column)) {
        case SQLITE_INTEGER:
          json.key(processor::kDeviceFields[i])
              .value(static_cast<std::int64_t>(sqlite3_column_int64(s.get(), column)));
          break;
        case SQLITE_FLOAT:
          json.key(processor::kDeviceFields[i]).value(sqlite3_column_double(s.get(), column));
          break;
        case SQLITE_TEXT:
          json.key(processor::kDeviceFields[i])
              .value(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), column)));
          break;
        default:
          break;  // absent from the document
      }
    }
    json.end_object();
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  json.end_array();
  return json.take();
}

bool SqliteStore::send(const processor::DeadLetter& letter) {
  const std::lock_guard lock(mutex_);
  sqlite3_stmt* raw = nullptr;
  sqlite3_prepare_v2(db_, "INSERT INTO dead_letters VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                     -1, &raw, nullptr);
  const Statement s(raw);
  bind_text(s.get(), 1, letter.topic);
  sqlite3_bind_int(s.get(), 2, letter.partition);
  sqlite3_bind_int64(s.get(), 3, letter.offset);
  sqlite3_bind_blob(s.get(), 4, letter.key.data(), static_cast<int>(letter.key.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_blob(s.get(), 5, letter.value.data(), static_cast<int>(letter.value.size()),
                    SQLITE_TRANSIENT);
  bind_text(s.get(), 6, letter.reason);
  bind_text(s.get(), 7, letter.detail);
  bind_text(s.get(), 8, letter.stage);
  sqlite3_bind_int64(s.get(), 9, to_ms(std::chrono::system_clock::now()));
  return sqlite3_step(s.get()) == SQLITE_DONE;
}

}  // namespace telemetryd::sqlite
