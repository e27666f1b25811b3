#include "sqlite/sqlite_store.hpp"

#include <simdjson.h>

#include <memory>
#include <optional>
#include <set>

#include "query/answer_rows.hpp"
#include "query/usage_rollup.hpp"
#include "sqlite/statement.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::sqlite {

using events::EventKind;

namespace {

void bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// The stored document, shaped like MongoStore's as the API returns it: envelope fields, then the
// event's data fields at the top level; the cost block is added when the window is priced.
std::string document_json(const StoredEvent& stored) {
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
  out += '}';
  return out;
}

// Newest wins: a redelivered or older sample leaves the GPU's row as it is (a tie keeps the
// sample stored first).
constexpr const char* kUpsertLatest =
    "INSERT INTO gpu_latest (gpu_uuid, ts, host, doc) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT(gpu_uuid) DO UPDATE SET ts = excluded.ts, host = excluded.host, "
    "doc = excluded.doc WHERE excluded.ts > gpu_latest.ts";

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

Result<bool> SqliteStore::prepare(const events::GpuCatalog& catalog) {
  const std::lock_guard lock(mutex_);
  for (const char* sql : {
           // Lets retention give deleted pages back to the file system (PRAGMA
           // incremental_vacuum). It only takes on a new, empty file: older files keep reusing
           // freed pages, so they stop growing but do not shrink (README, the `all` role).
           "PRAGMA auto_vacuum=INCREMENTAL",
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
           // The latest sample of each GPU (newest wins, see kUpsertLatest), so /gpu/info and
           // /v1/devices read one row per GPU instead of sorting the history.
           "CREATE TABLE IF NOT EXISTS gpu_latest (gpu_uuid TEXT PRIMARY KEY, ts INTEGER NOT "
           "NULL, host TEXT NOT NULL, doc TEXT NOT NULL)",
           // A file written before the view existed: filled once from the history (the
           // bare-column rule takes host and doc from the row holding max(ts)). A file that has
           // it keeps it, so this costs one probe at every later start.
           "INSERT INTO gpu_latest (gpu_uuid, ts, host, doc) SELECT gpu_uuid, max(ts), host, doc "
           "FROM gpu_metrics WHERE NOT EXISTS (SELECT 1 FROM gpu_latest) GROUP BY gpu_uuid "
           "ON CONFLICT(gpu_uuid) DO UPDATE SET ts = excluded.ts, host = excluded.host, doc = "
           "excluded.doc WHERE excluded.ts > gpu_latest.ts",
           // Cost windows are read by time alone (docs/cost.md).
           "CREATE INDEX IF NOT EXISTS gpu_metrics_ts ON gpu_metrics (ts)",
           "CREATE INDEX IF NOT EXISTS token_usage_ts ON token_usage (ts)",
           "CREATE TABLE IF NOT EXISTS cost_windows (start INTEGER PRIMARY KEY, marked_at INTEGER "
           "NOT NULL, nonce INTEGER NOT NULL, claim_token INTEGER, claim_until INTEGER)",
           "CREATE INDEX IF NOT EXISTS cost_windows_marked_at ON cost_windows (marked_at)",
           "CREATE TABLE IF NOT EXISTS placements (deployment TEXT NOT NULL, target TEXT NOT NULL, "
           "first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, PRIMARY KEY (deployment, "
           "target))",
           // Usage rollups per minute and per hour, and the minutes changed since they were
           // rolled up (query/usage_rollup.hpp; sqlite_usage_rollup.cpp).
           "CREATE TABLE IF NOT EXISTS usage_minutes (minute INTEGER NOT NULL, model TEXT NOT "
           "NULL, tenant_id TEXT NOT NULL, deployment TEXT NOT NULL, requests INTEGER NOT NULL, "
           "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_usd REAL NOT "
           "NULL, cost_utilization_usd REAL NOT NULL, cost_energy_usd REAL NOT NULL, "
           "gpu_seconds REAL NOT NULL, energy_j REAL NOT NULL, priced_requests INTEGER NOT NULL, "
           "PRIMARY KEY (minute, model, tenant_id, deployment)) WITHOUT ROWID",
           "CREATE TABLE IF NOT EXISTS usage_hours (hour INTEGER NOT NULL, model TEXT NOT "
           "NULL, tenant_id TEXT NOT NULL, deployment TEXT NOT NULL, requests INTEGER NOT NULL, "
           "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_usd REAL NOT "
           "NULL, cost_utilization_usd REAL NOT NULL, cost_energy_usd REAL NOT NULL, "
           "gpu_seconds REAL NOT NULL, energy_j REAL NOT NULL, priced_requests INTEGER NOT NULL, "
           "PRIMARY KEY (hour, model, tenant_id, deployment)) WITHOUT ROWID",
           "CREATE TABLE IF NOT EXISTS usage_marks (minute INTEGER PRIMARY KEY, marked_at "
           "INTEGER NOT NULL, nonce INTEGER NOT NULL)",
           // A file written before the rollups: every minute with requests is marked once (the
           // marks table is new only then), so the roll-up fills them in; answers read the
           // requests of marked minutes meanwhile.
           "INSERT OR IGNORE INTO usage_marks (minute, marked_at, nonce) SELECT DISTINCT ts - "
           "((ts % 60000) + 60000) % 60000, 0, 0 FROM token_usage WHERE NOT EXISTS (SELECT 1 "
           "FROM usage_minutes) AND NOT EXISTS (SELECT 1 FROM usage_marks)",
           "CREATE TABLE IF NOT EXISTS dead_letters (topic TEXT, partition INTEGER, "
           "offset INTEGER, key BLOB, value BLOB, reason TEXT, detail TEXT, stage TEXT, at "
           "INTEGER)",
       }) {
    if (auto r = exec(sql); !r) {
      // A file another connection holds past the busy timeout is the server-away case of a
      // file: retryable, as in write(); anything else (a corrupt file, a full schema) is not.
      const int code = sqlite3_extended_errcode(db_);
      if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
        return Error::retryable(r.error().message, "sqlite:" + std::to_string(code));
      }
      return r;
    }
  }
  if (Result<bool> r = add_cost_columns(); !r) return r;
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
    query::write_gpu_entry(json, entry.name, entry.model_name, entry.price_per_hour_usd);
    sqlite3_reset(upsert.get());
    bind_text(upsert.get(), 1, entry.name);
    bind_text(upsert.get(), 2, json.str());
    if (sqlite3_step(upsert.get()) != SQLITE_DONE) return Error::permanent(error_message());
  }
  return true;
}

// The cost block's four sums in columns of their own beside the document (NULL until priced;
// amount_usd is the fifth), so that the usage sums parse no JSON: taking them out of every
// document costs about six times more, and out of a JSON column of the block about four times
// more for priced requests (the all role's live minute, read from its requests, measured 25 ms
// against 7 ms for 10,000 requests). A file from before the columns gets them, filled from its
// documents once.
Result<bool> SqliteStore::add_cost_columns() {
  // Checked inside the write transaction: another store preparing the same new file at once
  // adds it first, and this one then finds it.
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return Error::retryable(r.error().message);
  const auto fail = [&](const std::string& message) -> Result<bool> {
    exec("ROLLBACK");
    return Error::retryable(path_ + ": " + message);
  };
  const auto commit = [&]() -> Result<bool> {
    if (auto r = exec("COMMIT"); !r) return fail(r.error().message);
    return true;
  };
  {
    const Statement has = prepare_statement(
        db_, "SELECT count(*) FROM pragma_table_info('token_usage') WHERE name = 'cost_energy_j'");
    if (!has || sqlite3_step(has.get()) != SQLITE_ROW) return fail(error_message());
    if (sqlite3_column_int64(has.get(), 0) > 0) return commit();
  }
  for (const char* sql :
       {"ALTER TABLE token_usage ADD COLUMN cost_utilization_usd REAL",
        "ALTER TABLE token_usage ADD COLUMN cost_energy_usd REAL",
        "ALTER TABLE token_usage ADD COLUMN cost_gpu_seconds REAL",
        "ALTER TABLE token_usage ADD COLUMN cost_energy_j REAL",
        "UPDATE token_usage SET cost_utilization_usd = json_extract(doc, "
        "'$.cost.utilization_usd'), "
        "cost_energy_usd = json_extract(doc, '$.cost.energy_usd'), cost_gpu_seconds = "
        "json_extract(doc, '$.cost.gpu_seconds'), cost_energy_j = json_extract(doc, "
        "'$.cost.energy_j') WHERE json_type(doc, '$.cost') = 'object'"}) {
    if (auto r = exec(sql); !r) return fail(r.error().message);
  }
  return commit();
}

Result<WriteOutcome> SqliteStore::write(const std::vector<StoredEvent>& batch) {
  const std::lock_guard lock(mutex_);
  WriteOutcome outcome;
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
  const Statement latest = prepare_statement(db_, kUpsertLatest);
  const auto failed = [&] {
    const std::string message = error_message();
    const std::string code = "sqlite:" + std::to_string(sqlite3_extended_errcode(db_));
    exec("ROLLBACK");
    // A full disk or a locked file may pass; retrying keeps the events.
    return Error::retryable(path_ + ": " + message, code);
  };
  if (!metrics || !usage || !latest) return failed();
  std::set<std::int64_t> usage_minutes;  // marked for the roll-up, duplicates' too
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& e = *batch[i].event;
    if (e.kind == events::EventKind::kTokenUsage) {
      usage_minutes.insert(query::minute_of(unix_ms(e.time)));
    }
    sqlite3_stmt* s = e.kind == events::EventKind::kGpuMetrics ? metrics.get() : usage.get();
    if (e.kind != events::EventKind::kGpuMetrics && e.kind != events::EventKind::kTokenUsage)
      continue;
    sqlite3_reset(s);
    bind_text(s, 1, e.id);
    sqlite3_bind_int64(s, 2, unix_ms(e.time));
    std::string doc = document_json(batch[i]);
    if (e.kind == events::EventKind::kGpuMetrics) {
      bind_text(s, 3, e.gpu_uuid);
      bind_text(s, 4, e.host);
      bind_text(s, 5, doc);
    } else {
      bind_text(s, 3, e.model);
      bind_text(s, 4, e.tenant_id);
      sqlite3_bind_int64(s, 5, e.input_tokens);
      sqlite3_bind_int64(s, 6, e.output_tokens);
      sqlite3_bind_null(s, 7);  // amount_usd: set when the window is priced
      bind_text(s, 8, doc);
    }
    if (sqlite3_step(s) != SQLITE_DONE) return failed();
    if (sqlite3_changes(db_) == 0) {
      ++outcome.duplicates;
      outcome.duplicate_indexes.push_back(i);
    } else {
      if (e.kind == events::EventKind::kGpuMetrics) {
        // In the samples' transaction, so the view never holds a sample the history lacks.
        sqlite3_reset(latest.get());
        bind_text(latest.get(), 1, e.gpu_uuid);
        sqlite3_bind_int64(latest.get(), 2, unix_ms(e.time));
        bind_text(latest.get(), 3, e.host);
        bind_text(latest.get(), 4, doc);
        if (sqlite3_step(latest.get()) != SQLITE_DONE) return failed();
      }
      ++(e.kind == events::EventKind::kGpuMetrics ? outcome.gpu_metrics_inserted
                                                  : outcome.token_usage_inserted);
    }
  }
  if (Result<bool> marked = mark_usage_minutes(usage_minutes); !marked) return failed();
  if (auto r = exec("COMMIT"); !r) {
    exec("ROLLBACK");
    return Error::retryable(r.error().message);
  }
  if (outcome.gpu_metrics_inserted > 0) latest_changed();
  return outcome;
}

Result<std::string> SqliteStore::latest_gpu_json(const GpuQuery& query) {
  Result<std::vector<query::LatestSample>> samples = latest_samples();
  if (!samples) return samples.error();
  return query::latest_json_of(samples.value(), query.gpu_uuid, query.host);
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

Result<std::string> SqliteStore::gpu_series_json(const query::SeriesQuery& query) {
  // The bucket is the epoch-aligned floor (query::bucket_start) in SQL; avg and max skip
  // documents without the field (NULL), as MongoStore's accumulator does.
  std::string sql = "SELECT ts - ((ts % ?3) + ?3) % ?3 AS bucket, count(*)";
  for (const auto& field : query::kSeriesFields) {
    const std::string extract = "json_extract(doc, '$." + std::string(field.path) + "')";
    sql += ", avg(" + extract + "), max(" + extract + ")";
  }
  sql +=
      " FROM gpu_metrics WHERE gpu_uuid = ?1 AND ts >= ?2 AND ts < ?4 GROUP BY bucket ORDER BY "
      "bucket";
  const std::lock_guard lock(mutex_);
  const Statement s = prepare_statement(db_, sql);
  if (!s) return Error::retryable(error_message());
  bind_text(s.get(), 1, query.gpu_uuid);
  sqlite3_bind_int64(s.get(), 2, unix_ms(query.from));
  sqlite3_bind_int64(s.get(), 3, query.step_ms);
  sqlite3_bind_int64(s.get(), 4, unix_ms(query.to));
  std::vector<query::SeriesPoint> points;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    query::SeriesPoint point;
    point.bucket_ms = sqlite3_column_int64(s.get(), 0);
    point.samples = sqlite3_column_int64(s.get(), 1);
    for (std::size_t i = 0; i < query::kSeriesFields.size(); ++i) {
      const int column = 2 + 2 * static_cast<int>(i);
      if (sqlite3_column_type(s.get(), column) == SQLITE_NULL) continue;
      point.fields[i] = query::FieldStats{sqlite3_column_double(s.get(), column),
                                          sqlite3_column_double(s.get(), column + 1)};
    }
    points.push_back(point);
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  if (points.empty()) {
    const Statement any =
        prepare_statement(db_, "SELECT 1 FROM gpu_metrics WHERE gpu_uuid = ?1 LIMIT 1");
    if (!any) return Error::retryable(error_message());
    bind_text(any.get(), 1, query.gpu_uuid);
    rc = sqlite3_step(any.get());
    if (rc == SQLITE_DONE) return std::string("null");
    if (rc != SQLITE_ROW) return Error::retryable(error_message());
  }
  return query::series_points_json(points);
}

Result<std::string> SqliteStore::devices_json() {
  Result<std::vector<query::LatestSample>> samples = latest_samples();
  if (!samples) return samples.error();
  return query::devices_json_of(samples.value());
}

Result<std::vector<query::LatestSample>> SqliteStore::latest_samples() {
  // One row per GPU in the latest view, in its primary key's order.
  constexpr int kFirstField = 4;
  std::string sql = "SELECT gpu_uuid, host, ts, doc";
  for (const char* field : query::kDeviceFields) {
    sql += ", json_extract(doc, '$." + std::string(field) + "')";
  }
  sql += " FROM gpu_latest ORDER BY gpu_uuid";
  const std::lock_guard lock(mutex_);
  const Statement s = prepare_statement(db_, sql);
  if (!s) return Error::retryable(error_message());
  std::vector<query::LatestSample> samples;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    const auto text = [&](int column) {
      return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), column)));
    };
    JsonWriter json;
    json.begin_object();
    for (std::size_t i = 0; i < query::kDeviceFields.size(); ++i) {
      const int column = kFirstField + static_cast<int>(i);
      switch (sqlite3_column_type(s.get(), column)) {
        case SQLITE_INTEGER:
          json.key(query::kDeviceFields[i])
              .value(static_cast<std::int64_t>(sqlite3_column_int64(s.get(), column)));
          break;
        case SQLITE_FLOAT:
          json.key(query::kDeviceFields[i]).value(sqlite3_column_double(s.get(), column));
          break;
        case SQLITE_TEXT:
          json.key(query::kDeviceFields[i]).value(text(column));
          break;
        default:
          break;  // absent from the document
      }
    }
    json.end_object();
    samples.push_back({text(0), text(1), sqlite3_column_int64(s.get(), 2), text(3), json.take()});
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return samples;
}

// ---- Cost windows (docs/cost.md) ----

Result<bool> SqliteStore::mark_cost_windows(const std::vector<std::int64_t>& starts_ms,
                                            std::int64_t marked_at_ms, std::int64_t nonce) {
  const std::lock_guard lock(mutex_);
  const Statement s =
      prepare_statement(db_,
                        "INSERT INTO cost_windows (start, marked_at, nonce) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT(start) DO UPDATE SET marked_at = excluded.marked_at, "
                        "nonce = excluded.nonce");
  if (!s) return Error::retryable(error_message());
  for (const std::int64_t start : starts_ms) {
    sqlite3_reset(s.get());
    sqlite3_bind_int64(s.get(), 1, start);
    sqlite3_bind_int64(s.get(), 2, marked_at_ms);
    sqlite3_bind_int64(s.get(), 3, nonce);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return Error::retryable(error_message());
  }
  return true;
}

Result<std::vector<CostWindowMark>> SqliteStore::settled_cost_windows(std::int64_t marked_before_ms,
                                                                      std::int64_t now_ms,
                                                                      std::size_t limit) {
  const std::lock_guard lock(mutex_);
  const Statement s =
      prepare_statement(db_,
                        "SELECT start, marked_at, nonce, coalesce(claim_token, 0) FROM "
                        "cost_windows WHERE marked_at <= ?1 AND (claim_until IS NULL OR "
                        "claim_until < ?3) ORDER BY start LIMIT ?2");
  if (!s) return Error::retryable(error_message());
  sqlite3_bind_int64(s.get(), 1, marked_before_ms);
  sqlite3_bind_int64(s.get(), 2, static_cast<std::int64_t>(limit));
  sqlite3_bind_int64(s.get(), 3, now_ms);
  std::vector<CostWindowMark> marks;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    marks.push_back({sqlite3_column_int64(s.get(), 0), sqlite3_column_int64(s.get(), 1),
                     sqlite3_column_int64(s.get(), 2), sqlite3_column_int64(s.get(), 3)});
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return marks;
}

Result<bool> SqliteStore::claim_cost_window(CostWindowMark& mark, std::int64_t token,
                                            std::int64_t now_ms, std::int64_t until_ms) {
  const std::lock_guard lock(mutex_);
  const Statement s =
      prepare_statement(db_,
                        "UPDATE cost_windows SET claim_token = ?3, claim_until = ?4 WHERE start = "
                        "?1 AND nonce = ?2 AND (claim_until IS NULL OR claim_until < ?5)");
  if (!s) return Error::retryable(error_message());
  sqlite3_bind_int64(s.get(), 1, mark.start_ms);
  sqlite3_bind_int64(s.get(), 2, mark.nonce);
  sqlite3_bind_int64(s.get(), 3, token);
  sqlite3_bind_int64(s.get(), 4, until_ms);
  sqlite3_bind_int64(s.get(), 5, now_ms);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Error::retryable(error_message());
  if (sqlite3_changes(db_) != 1) return false;
  mark.claim_token = token;
  return true;
}

namespace {

std::string column_text(sqlite3_stmt* s, int column) {
  const auto* text = sqlite3_column_text(s, column);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text));
}

std::optional<double> column_double(sqlite3_stmt* s, int column) {
  if (sqlite3_column_type(s, column) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(s, column);
}

// The gpu_uuids array as json_extract returns it (JSON text), or nothing.
std::vector<std::string> uuids_of(std::string_view json, simdjson::dom::parser& parser) {
  std::vector<std::string> out;
  if (json.empty()) return out;
  simdjson::dom::array array;
  if (parser.parse(json.data(), json.size()).get(array)) return out;
  for (const auto item : array) {
    std::string_view uuid;
    if (!item.get(uuid)) out.emplace_back(uuid);
  }
  return out;
}

}  // namespace

Result<cost::WindowInputs> SqliteStore::cost_window_inputs(std::int64_t start_ms,
                                                           std::int64_t end_ms,
                                                           std::int64_t lookback_ms) {
  const std::lock_guard lock(mutex_);
  cost::WindowInputs inputs;
  Statement usage = prepare_statement(
      db_,
      "SELECT id, ts, model, tenant_id, json_extract(doc, '$.deployment'), json_extract(doc, "
      "'$.host'), input_tokens, output_tokens, json_extract(doc, '$.gpu_uuids'), "
      "json_extract(doc, '$.cost.window_start'), json_extract(doc, '$.cost.amortized_usd'), "
      "json_extract(doc, '$.cost.utilization_usd'), json_extract(doc, '$.cost.energy_usd'), "
      "json_extract(doc, '$.cost.gpu_seconds'), json_extract(doc, '$.cost.energy_j') "
      "FROM token_usage WHERE ts >= ?1 AND ts < ?2");
  if (!usage) return Error::retryable(error_message());
  sqlite3_bind_int64(usage.get(), 1, start_ms);
  sqlite3_bind_int64(usage.get(), 2, end_ms);
  simdjson::dom::parser parser;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(usage.get())) == SQLITE_ROW) {
    sqlite3_stmt* s = usage.get();
    cost::UsageRow row;
    row.id = column_text(s, 0);
    row.time_ms = sqlite3_column_int64(s, 1);
    row.model = column_text(s, 2);
    row.tenant_id = column_text(s, 3);
    row.deployment = column_text(s, 4);
    row.host = column_text(s, 5);
    row.input_tokens = sqlite3_column_int64(s, 6);
    row.output_tokens = sqlite3_column_int64(s, 7);
    row.gpu_uuids = uuids_of(column_text(s, 8), parser);
    row.stored.priced = sqlite3_column_type(s, 9) != SQLITE_NULL;
    row.stored.amortized_usd = column_double(s, 10);
    row.stored.utilization_usd = column_double(s, 11);
    row.stored.energy_usd = column_double(s, 12);
    row.stored.gpu_seconds = column_double(s, 13);
    row.stored.energy_j = column_double(s, 14);
    inputs.usage.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());

  Statement samples =
      prepare_statement(db_,
                        "SELECT gpu_uuid, host, json_extract(doc, '$.model_name'), ts, "
                        "json_extract(doc, '$.utilization_gpu_percent'), json_extract(doc, "
                        "'$.energy_consumed_mj') FROM gpu_metrics WHERE ts >= ?1 AND ts < ?2");
  if (!samples) return Error::retryable(error_message());
  sqlite3_bind_int64(samples.get(), 1, start_ms - lookback_ms);
  sqlite3_bind_int64(samples.get(), 2, end_ms);
  while ((rc = sqlite3_step(samples.get())) == SQLITE_ROW) {
    sqlite3_stmt* s = samples.get();
    cost::GpuSampleRow row;
    row.gpu_uuid = column_text(s, 0);
    row.host = column_text(s, 1);
    row.model_name = column_text(s, 2);
    row.time_ms = sqlite3_column_int64(s, 3);
    row.utilization_gpu_percent = column_double(s, 4);
    if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
      row.energy_consumed_mj = sqlite3_column_int64(s, 5);
    }
    inputs.samples.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());

  Statement placements =
      prepare_statement(db_,
                        "SELECT deployment, target, first_seen, last_seen FROM placements WHERE "
                        "first_seen < ?1");
  if (!placements) return Error::retryable(error_message());
  sqlite3_bind_int64(placements.get(), 1, end_ms);
  while ((rc = sqlite3_step(placements.get())) == SQLITE_ROW) {
    sqlite3_stmt* s = placements.get();
    inputs.placements.push_back({column_text(s, 0), column_text(s, 1), sqlite3_column_int64(s, 2),
                                 sqlite3_column_int64(s, 3)});
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return inputs;
}

Result<bool> SqliteStore::write_costs(const std::vector<cost::UsageCost>& costs,
                                      const std::optional<CostWindowMark>& clear) {
  const std::lock_guard lock(mutex_);
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return Error::retryable(r.error().message);
  const auto fail = [&]() -> Result<bool> {
    const std::string message = error_message();
    exec("ROLLBACK");
    return Error::retryable(path_ + ": " + message);
  };
  if (clear) {
    // Only the holder of the claim writes: a pricer whose lease was taken over would write
    // costs older than the ones its successor wrote.
    const Statement ours =
        prepare_statement(db_, "SELECT 1 FROM cost_windows WHERE start = ?1 AND claim_token = ?2");
    if (!ours) return fail();
    sqlite3_bind_int64(ours.get(), 1, clear->start_ms);
    sqlite3_bind_int64(ours.get(), 2, clear->claim_token);
    const int rc = sqlite3_step(ours.get());
    if (rc == SQLITE_DONE) {
      exec("ROLLBACK");
      return false;
    }
    if (rc != SQLITE_ROW) return fail();
  }
  const Statement update = prepare_statement(
      db_,
      "UPDATE token_usage SET amount_usd = ?2, doc = json_set(doc, '$.cost', json(?3)), "
      "cost_utilization_usd = ?4, cost_energy_usd = ?5, cost_gpu_seconds = ?6, cost_energy_j = ?7 "
      "WHERE id = ?1");
  if (!update) return fail();
  std::set<std::int64_t> usage_minutes;
  for (const cost::UsageCost& c : costs) usage_minutes.insert(query::minute_of(c.time_ms));
  if (Result<bool> marked = mark_usage_minutes(usage_minutes); !marked) return fail();
  for (const cost::UsageCost& c : costs) {
    sqlite3_reset(update.get());
    bind_text(update.get(), 1, c.id);
    if (c.amortized_usd) {
      sqlite3_bind_double(update.get(), 2, *c.amortized_usd);
    } else {
      sqlite3_bind_null(update.get(), 2);
    }
    bind_text(update.get(), 3, cost::cost_block_json(c));
    int column = 4;
    for (const std::optional<double>& sum :
         {c.utilization_usd, c.energy_usd, c.gpu_seconds, c.energy_j}) {
      if (sum) {
        sqlite3_bind_double(update.get(), column++, *sum);
      } else {
        sqlite3_bind_null(update.get(), column++);
      }
    }
    if (sqlite3_step(update.get()) != SQLITE_DONE) return fail();
  }
  if (clear) {
    const Statement remove = prepare_statement(
        db_, "DELETE FROM cost_windows WHERE start = ?1 AND nonce = ?2 AND claim_token = ?3");
    if (!remove) return fail();
    sqlite3_bind_int64(remove.get(), 1, clear->start_ms);
    sqlite3_bind_int64(remove.get(), 2, clear->nonce);
    sqlite3_bind_int64(remove.get(), 3, clear->claim_token);
    if (sqlite3_step(remove.get()) != SQLITE_DONE) return fail();
    if (sqlite3_changes(db_) == 0) {
      // Marked again while it was priced: release the claim so the new mark is priced.
      const Statement release = prepare_statement(
          db_, "UPDATE cost_windows SET claim_until = 0 WHERE start = ?1 AND claim_token = ?2");
      if (!release) return fail();
      sqlite3_bind_int64(release.get(), 1, clear->start_ms);
      sqlite3_bind_int64(release.get(), 2, clear->claim_token);
      if (sqlite3_step(release.get()) != SQLITE_DONE) return fail();
    }
  }
  if (auto r = exec("COMMIT"); !r) {
    exec("ROLLBACK");
    return Error::retryable(r.error().message);
  }
  return true;
}

Result<bool> SqliteStore::upsert_placements(const std::vector<cost::PlacementRow>& placements) {
  const std::lock_guard lock(mutex_);
  const Statement s =
      prepare_statement(db_,
                        "INSERT INTO placements (deployment, target, first_seen, last_seen) "
                        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(deployment, target) DO UPDATE SET "
                        "first_seen = min(first_seen, excluded.first_seen), last_seen = "
                        "max(last_seen, excluded.last_seen)");
  if (!s) return Error::retryable(error_message());
  for (const cost::PlacementRow& p : placements) {
    sqlite3_reset(s.get());
    bind_text(s.get(), 1, p.deployment);
    bind_text(s.get(), 2, p.target);
    sqlite3_bind_int64(s.get(), 3, p.first_seen_ms);
    sqlite3_bind_int64(s.get(), 4, p.last_seen_ms);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return Error::retryable(error_message());
  }
  return true;
}

Result<std::vector<std::int64_t>> SqliteStore::usage_window_starts(std::int64_t from_ms,
                                                                   std::int64_t to_ms,
                                                                   std::int64_t window_ms) {
  const std::lock_guard lock(mutex_);
  const Statement s =
      prepare_statement(db_,
                        "SELECT DISTINCT ts - ((ts % ?3) + ?3) % ?3 AS start FROM token_usage "
                        "WHERE ts >= ?1 AND ts < ?2 ORDER BY start");
  if (!s) return Error::retryable(error_message());
  sqlite3_bind_int64(s.get(), 1, from_ms);
  sqlite3_bind_int64(s.get(), 2, to_ms);
  sqlite3_bind_int64(s.get(), 3, window_ms);
  std::vector<std::int64_t> starts;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW)
    starts.push_back(sqlite3_column_int64(s.get(), 0));
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return starts;
}

bool SqliteStore::send(const DeadLetter& letter) {
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
  sqlite3_bind_int64(s.get(), 9, unix_ms(std::chrono::system_clock::now()));
  return sqlite3_step(s.get()) == SQLITE_DONE;
}

}  // namespace telemetryd::sqlite
