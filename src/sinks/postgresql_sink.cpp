// The `postgresql` sink: the processor's store in PostgreSQL (docs/postgresql.md), through libpq.
//
// One file on purpose (issue 11: a new sink is one file plus one meson line). Sections:
//   1. Settings: the `postgresql:` section's keys and the libpq connection parameters.
//   2. Connection: one libpq connection, reconnected on the next call after it broke; SQLSTATE
//      classes decide retryable (server away, overloaded, shutting down) or permanent (data).
//   3. Text arrays: a batch goes to the server as a few array parameters and one unnest()
//      statement, so a batch is one round trip whatever its size.
//   4. PostgresStore: prepare (tables, indexes, catalog), idempotent write, the query side, the
//      latest view, the usage rollups and the cost windows, the same documents and JSON as
//      MongoStore and SqliteStore.
//      Usage rollups (query/usage_rollup.hpp): `usage_minutes` holds one row per (minute, model,
//      tenant_id, deployment) with the sums /v1/usage answers, `usage_hours` the same per hour
//      summed from the minute rows; `usage_marks` one row per minute changed since its last
//      roll-up (marked_at, and a nonce per marking). A batch marks the minutes of its requests
//      (duplicates too) and write_costs those of the requests it prices, each in the
//      transaction of its change; roll_up_usage recomputes, an hour per transaction under an
//      advisory lock on it, the hour's marked minutes from token_usage (clearing each mark
//      unless it was marked again) and then the hour from its minutes. /v1/usage reads, in one
//      snapshot, the marks of the range and then what query::plan_usage_reads makes of them:
//      hour rows, minute rows, and the requests of the edges and of the marked minutes. A
//      database older than the rollups has every minute holding requests marked at prepare,
//      one older than the hour tier its hours summed from its minutes.
//   5. Registration: the `postgresql` sink (processor.sinks: [postgresql]) with its section,
//      its factory and its readiness probe (SELECT 1).

#include <libpq-fe.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cost/cost_model.hpp"
#include "query/answer_rows.hpp"
#include "query/usage_rollup.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/sink.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::sinks {

using events::EventKind;

// ============================================================================ 1. Settings

namespace {

std::vector<KeySpec> postgresql_keys() {
  std::vector<KeySpec> keys{
      {.name = "host",
       .description = "Server host name or address (libpq host).",
       .default_value = "127.0.0.1"},
      {.name = "port",
       .type = ValueType::kInt,
       .description = "Server port.",
       .default_value = "5432",
       .min = 1,
       .max = 65535},
      {.name = "database",
       .description = "Database holding gpu_metrics, token_usage, usage_minutes, usage_hours, "
                      "usage_marks, gpus, gpu_latest, cost_windows and placements; the tables "
                      "are created at start, the database must exist.",
       .default_value = "telemetry"},
      {.name = "user",
       .description = "Role to log in as; empty uses libpq's default (the OS user name).",
       .default_value = ""},
      {.name = "sslmode",
       .description = "libpq sslmode: disable, allow, prefer (TLS when the server offers it, "
                      "unverified), require (TLS, unverified), verify-ca (TLS, certificate "
                      "checked against sslrootcert), verify-full (and the host name too).",
       .default_value = "prefer",
       .allowed = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
      {.name = "sslrootcert",
       .description = "CA bundle (PEM) verify-ca and verify-full check the server with; empty "
                      "uses libpq's default (~/.postgresql/root.crt).",
       .default_value = "",
       .check = check_pem_certificate_file,
       .hint = "a PEM file with the CA certificate(s)"},
      {.name = "sslcert",
       .description = "Client certificate (PEM), for servers that require one (clientcert).",
       .default_value = "",
       .check = check_pem_certificate_file,
       .hint = "a PEM file with the client certificate"},
      {.name = "sslkey",
       .description = "Unencrypted private key of sslcert (PEM); keep it 0600, libpq refuses a "
                      "key others can read.",
       .default_value = "",
       .check = check_pem_key_file,
       .hint = "a PEM file with the unencrypted private key"},
      {.name = "connect_timeout_ms",
       .type = ValueType::kInt,
       .description = "How long a connection attempt may take (libpq counts whole seconds, at "
                      "least 2).",
       .default_value = "5000",
       .min = 1000,
       .max = 120000},
      {.name = "check_interval_ms",
       .type = ValueType::kInt,
       .description = "How often /ready re-checks the server (SELECT 1 on its own connection).",
       .default_value = "5000",
       .min = 100,
       .max = 300000},
  };
  // password and password_file after user, declared as every section with a secret declares
  // them (read_secret reads them).
  const std::vector<KeySpec> secrets = secret_keys("password", "Password of user");
  keys.insert(keys.begin() + 4, secrets.begin(), secrets.end());
  return keys;
}

void check_postgresql_keys(const Config& config, KeyProblems& problems) {
  const auto set = [&](const char* key) { return !config.str(key).empty(); };
  if (set("postgresql.password") && set("postgresql.password_file")) {
    problems.add("postgresql.password_file", "set only one of password and password_file",
                 "keep password_file");
  }
  if (set("postgresql.sslkey") != set("postgresql.sslcert")) {
    problems.add(set("postgresql.sslkey") ? "postgresql.sslcert" : "postgresql.sslkey",
                 "sslcert and sslkey go together", "set both, or neither");
  }
  const std::string& mode = config.str("postgresql.sslmode");
  if (mode == "disable") {
    for (const char* key : {"postgresql.sslrootcert", "postgresql.sslcert", "postgresql.sslkey"}) {
      if (set(key)) {
        problems.add(key, "takes no effect with sslmode: disable", "remove it, or set sslmode");
      }
    }
  }
}

// libpq's keyword/value parameters: nothing is quoted into a conninfo string, so a password
// or a path holding spaces or quotes needs no escaping, and the password never sits in a
// string that could be logged.
struct ConnectionSettings {
  std::vector<std::pair<std::string, std::string>> params;
  std::string where;  // host:port/database, for messages (no user, no password)
};

ConnectionSettings connection_from(const Config& config) {
  ConnectionSettings s;
  const auto add = [&](const char* keyword, const std::string& value) {
    if (!value.empty()) s.params.emplace_back(keyword, value);
  };
  add("host", config.str("postgresql.host"));
  add("port", std::to_string(config.integer("postgresql.port")));
  add("dbname", config.str("postgresql.database"));
  add("user", config.str("postgresql.user"));
  if (!config.str("postgresql.password").empty() ||
      !config.str("postgresql.password_file").empty()) {
    add("password", read_secret(config, "postgresql.password"));
  }
  add("sslmode", config.str("postgresql.sslmode"));
  add("sslrootcert", config.str("postgresql.sslrootcert"));
  add("sslcert", config.str("postgresql.sslcert"));
  add("sslkey", config.str("postgresql.sslkey"));
  const std::int64_t ms = config.integer("postgresql.connect_timeout_ms");
  add("connect_timeout", std::to_string(std::max<std::int64_t>(2, (ms + 999) / 1000)));
  add("application_name", "telemetryd");
  // Events are UTF-8: the server converts to the database's encoding (or refuses, per row).
  add("client_encoding", "UTF8");
  // A server that vanished without a FIN (a pulled cable, a killed VM) is noticed within about
  // 30 s instead of the kernel's two hours.
  add("keepalives_idle", "10");
  add("keepalives_interval", "5");
  add("keepalives_count", "4");
  s.where = config.str("postgresql.host") + ":" +
            std::to_string(config.integer("postgresql.port")) + "/" +
            config.str("postgresql.database");
  return s;
}

// ========================================================================== 2. Connection

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// SQLSTATE classes (PostgreSQL manual, appendix A) to the project's two kinds of failure:
//   08 connection, 53 insufficient resources (disk full, too many connections), 57 operator
//   intervention (shutdown, crash recovery, cancel), 58 system (I/O), 40 serialization or
//   deadlock, 55P03 lock not available: retrying later can succeed, so the events are kept.
//   22 data exception (a value the type refuses, \u0000 in jsonb), 23 integrity, 54000 a row
//   too large for an index (a kilobytes-long host or id): this row will never be stored, so it
//   is refused alone and goes to the dead letters.
// Anything else (42: a missing table or privilege, XX: internal) is retryable and unclassified,
// so valid events are never dead-lettered for a server-side mistake someone can fix.
Error classify(const PGresult* result, PGconn* conn, std::string_view what) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = result ? PQresultErrorMessage(result) : "";
  if (message.empty()) message = PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  message = std::string(what) + ": " + message;
  if (state == nullptr || PQstatus(conn) != CONNECTION_OK) {
    return Error::retryable(std::move(message), "postgresql:connection");
  }
  const std::string_view code(state);
  const std::string label = "postgresql:" + std::string(code);
  const std::string_view cls = code.substr(0, 2);
  if (cls == "22" || cls == "23" || code == "54000") {
    return Error::permanent(std::move(message), label);
  }
  if (cls == "08" || cls == "53" || cls == "57" || cls == "58" || cls == "40" || code == "55P03") {
    return Error::retryable(std::move(message), label);
  }
  Error e = Error::retryable(std::move(message), label);
  e.unclassified = true;
  return e;
}

bool is_data_error(const Error& e) {
  return e.kind == Error::Kind::kPermanent;
}

// One libpq connection. Not thread-safe: its owner serialises calls (PostgresStore's mutex).
class Connection {
 public:
  explicit Connection(ConnectionSettings settings) : settings_(std::move(settings)) {}
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& where() const { return settings_.where; }

  // Connected, or a retryable error: a server that is away may come back, and the caller's
  // batch is retried with backoff. A broken connection is replaced, never reused.
  Result<bool> ensure() {
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return true;
    close();
    std::vector<const char*> keywords, values;
    for (const auto& [k, v] : settings_.params) {
      keywords.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectdbParams(keywords.data(), values.data(), 0);
    if (conn_ == nullptr) return Error::retryable("postgresql: out of memory", "postgresql:oom");
    // Server notices ("relation ... already exists, skipping" at every prepare) would go to
    // stderr, outside the JSON log; none of them needs an operator.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = PQerrorMessage(conn_);
      while (!message.empty() && message.back() == '\n') message.pop_back();
      close();
      return Error::retryable("postgresql " + settings_.where + ": " + message,
                              "postgresql:connect");
    }
    // Numbers and times as this code parses them, whatever the server's defaults.
    PgResult r(PQexec(conn_, "SET extra_float_digits = 3; SET TIME ZONE 'UTC'"));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      Error e = classify(r.get(), conn_, "postgresql " + settings_.where);
      close();
      return e;
    }
    return true;
  }

  // One statement with text parameters (nullopt is NULL). Commands and queries both. Outside
  // a transaction a broken connection is made again first; inside one it is an error: a new
  // connection would run the rest of the transaction's statements on their own, and the
  // caller would count rows the server already rolled back.
  Result<PgResult> exec(const char* sql, const std::vector<std::optional<std::string>>& args = {}) {
    if (in_transaction_ && (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK)) {
      return Error::retryable(
          "postgresql " + settings_.where + ": connection lost in a transaction",
          "postgresql:connection");
    }
    if (Result<bool> ok = ensure(); !ok) return ok.error();
    std::vector<const char*> values;
    values.reserve(args.size());
    for (const auto& a : args) values.push_back(a ? a->c_str() : nullptr);
    PgResult r(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                            nullptr, nullptr, 0));
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    return classify(r.get(), conn_, "postgresql " + settings_.where);
  }

  // `sql`: BEGIN with the transaction's modes, when a reader needs other than the default.
  Result<bool> begin(const char* sql = "BEGIN") {
    if (auto r = exec(sql); !r) return r.error();
    in_transaction_ = true;
    return true;
  }

  // An unanswered COMMIT may have committed: retryable whatever the server said, and the
  // retry finds those rows as duplicates, which counts each once either way.
  Result<bool> commit() {
    auto r = exec("COMMIT");
    in_transaction_ = false;
    if (r) return true;
    commit_unanswered_ = true;
    rollback();
    Error e = r.error();
    e.kind = Error::Kind::kRetryable;
    return e;
  }

  // After a failure inside a transaction: end it, so the connection can be used again. A
  // broken connection is replaced on the next call outside a transaction instead.
  void rollback() {
    in_transaction_ = false;
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
      PgResult r(PQexec(conn_, "ROLLBACK"));
    }
  }

  /// True once after a COMMIT failed without a clear answer: its rows may be stored although
  /// the retry reports them as duplicates.
  bool take_commit_unanswered() { return std::exchange(commit_unanswered_, false); }

  void close() {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
  }

 private:
  ConnectionSettings settings_;
  PGconn* conn_ = nullptr;
  bool in_transaction_ = false;
  bool commit_unanswered_ = false;
};

// Reading result cells (text format).
std::string cell(const PGresult* r, int row, int column) {
  return PQgetisnull(r, row, column) ? std::string() : std::string(PQgetvalue(r, row, column));
}
std::int64_t cell_int(const PGresult* r, int row, int column) {
  std::int64_t v = 0;
  const char* text = PQgetvalue(r, row, column);
  std::from_chars(text, text + PQgetlength(r, row, column), v);
  return v;
}
std::optional<double> cell_double(const PGresult* r, int row, int column) {
  if (PQgetisnull(r, row, column)) return std::nullopt;
  return std::strtod(PQgetvalue(r, row, column), nullptr);
}

// jsonb prints `{"a": 1, "b": [1, 2]}`; the API answers compact JSON like the other stores.
std::string compact_json(std::string_view text) {
  std::string out(text.size(), '\0');
  std::size_t length = 0;
  if (simdjson::minify(text.data(), text.size(), out.data(), length) != simdjson::SUCCESS) {
    return std::string(text);
  }
  out.resize(length);
  return out;
}

// ========================================================================= 3. Text arrays

// A PostgreSQL array literal of text elements: every element quoted, `"` and `\` escaped, so
// any text (JSON included) round-trips; nullopt is NULL. One parameter carries a whole column.
class TextArray {
 public:
  void add(std::string_view text) {
    out_ += out_.empty() ? "{\"" : ",\"";
    for (const char c : text) {
      if (c == '"' || c == '\\') out_ += '\\';
      out_ += c;
    }
    out_ += '"';
  }
  void add(std::int64_t n) { add(std::string_view(std::to_string(n))); }
  void add(std::optional<double> v) {
    if (!v || !std::isfinite(*v)) {
      out_ += out_.empty() ? "{NULL" : ",NULL";
      return;
    }
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, *v).ptr;  // shortest round trip
    add(std::string_view(buf, static_cast<std::size_t>(end - buf)));
  }
  std::string take() { return out_.empty() ? std::string("{}") : std::move(out_) + "}"; }

 private:
  std::string out_;
};

// libpq passes text parameters as C strings: a NUL byte would silently cut a value short.
bool has_nul(const events::DecodedEvent& e) {
  for (const std::string* s : {&e.id, &e.source, &e.gpu_uuid, &e.host, &e.model, &e.tenant_id,
                               &e.deployment, &e.data_json}) {
    if (s->find('\0') != std::string::npos) return true;
  }
  return false;
}

// ========================================================================== 4. The store

// The schema. Every document is stored as jsonb (envelope fields, then the event's data, as
// MongoStore keeps it) beside the columns the queries filter, group and sort on. Times are
// Unix milliseconds (bigint), as in SQLite: the bucket and window arithmetic stays integer.
constexpr const char* kSchema[] = {
    "CREATE TABLE IF NOT EXISTS gpu_metrics (id text PRIMARY KEY, ts bigint NOT NULL, gpu_uuid "
    "text NOT NULL, host text NOT NULL, doc jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS gpu_metrics_gpu_uuid_ts ON gpu_metrics (gpu_uuid, ts)",
    "CREATE INDEX IF NOT EXISTS gpu_metrics_host_ts ON gpu_metrics (host, ts)",
    // Cost windows read samples by time alone (docs/cost.md).
    "CREATE INDEX IF NOT EXISTS gpu_metrics_ts ON gpu_metrics (ts)",
    "CREATE TABLE IF NOT EXISTS token_usage (id text PRIMARY KEY, ts bigint NOT NULL, model text "
    "NOT NULL, tenant_id text NOT NULL, deployment text NOT NULL, input_tokens bigint NOT NULL, "
    "output_tokens bigint NOT NULL, amount_usd double precision, doc jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS token_usage_model_ts ON token_usage (model, ts)",
    "CREATE INDEX IF NOT EXISTS token_usage_tenant_ts ON token_usage (tenant_id, ts)",
    "CREATE INDEX IF NOT EXISTS token_usage_ts ON token_usage (ts)",
    // Per-minute usage rollups (query/usage_rollup.hpp): one row per (minute, model, tenant,
    // deployment) with the sums /v1/usage answers, and a mark per minute changed since it was
    // last rolled up. The primary key's leading minute serves the range reads.
    "CREATE TABLE IF NOT EXISTS usage_minutes (minute bigint, model text, tenant_id text, "
    "deployment text, requests bigint NOT NULL, input_tokens bigint NOT NULL, output_tokens "
    "bigint NOT NULL, cost_usd double precision NOT NULL, cost_utilization_usd double precision "
    "NOT NULL, cost_energy_usd double precision NOT NULL, gpu_seconds double precision NOT NULL, "
    "energy_j double precision NOT NULL, priced_requests bigint NOT NULL, PRIMARY KEY (minute, "
    "model, tenant_id, deployment))",
    // Per-hour rollups: the same sums, each (hour, ...) summed from its minutes' rows when a
    // roll-up recomputes one of them. Created on its own too: a database from before the hour
    // tier has usage_minutes already (prepare fills it then).
    "CREATE TABLE IF NOT EXISTS usage_hours (hour bigint, model text, tenant_id text, "
    "deployment text, requests bigint NOT NULL, input_tokens bigint NOT NULL, output_tokens "
    "bigint NOT NULL, cost_usd double precision NOT NULL, cost_utilization_usd double precision "
    "NOT NULL, cost_energy_usd double precision NOT NULL, gpu_seconds double precision NOT NULL, "
    "energy_j double precision NOT NULL, priced_requests bigint NOT NULL, PRIMARY KEY (hour, "
    "model, tenant_id, deployment))",
    "CREATE TABLE IF NOT EXISTS usage_marks (minute bigint PRIMARY KEY, marked_at bigint NOT "
    "NULL, nonce bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gpus (name text PRIMARY KEY, model_name text NOT NULL, "
    "price_per_hour_usd double precision NOT NULL)",
    // The latest sample of each GPU (newest wins on write), so /gpu/info and /v1/devices read
    // one row per GPU instead of sorting the history.
    "CREATE TABLE IF NOT EXISTS gpu_latest (gpu_uuid text PRIMARY KEY, ts bigint NOT NULL, host "
    "text NOT NULL, doc jsonb NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cost_windows (start bigint PRIMARY KEY, marked_at bigint NOT "
    "NULL, nonce bigint NOT NULL, claim_token bigint, claim_until bigint)",
    "CREATE INDEX IF NOT EXISTS cost_windows_marked_at ON cost_windows (marked_at)",
    "CREATE TABLE IF NOT EXISTS placements (deployment text NOT NULL, target text NOT NULL, "
    "first_seen bigint NOT NULL, last_seen bigint NOT NULL, PRIMARY KEY (deployment, target))",
};

// One statement per table for a whole batch: the columns arrive as arrays and unnest() turns
// them back into rows; the document is the event's data merged with the envelope (`||` keeps
// the right side's field where names collide, so a data field named `_id`, `ts`, `source` or
// `received_at` never replaces the envelope's).
// RETURNING names what was inserted; an id it does not name was already stored (a duplicate).
constexpr const char* kInsertMetricsSql =
    "INSERT INTO gpu_metrics (id, ts, gpu_uuid, host, doc) SELECT u.id, u.ts, u.gpu_uuid, u.host, "
    "u.data::jsonb || jsonb_build_object('_id', u.id, 'ts', u.ts_text, 'source', u.source, "
    "'received_at', $8::text) FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], "
    "$5::text[], "
    "$6::text[], $7::text[]) AS u(id, ts, ts_text, source, gpu_uuid, host, data) "
    "ON CONFLICT (id) DO NOTHING RETURNING id";
constexpr const char* kInsertUsageSql =
    "INSERT INTO token_usage (id, ts, model, tenant_id, deployment, input_tokens, output_tokens, "
    "doc) SELECT u.id, u.ts, u.model, u.tenant_id, u.deployment, u.input_tokens, "
    "u.output_tokens, u.data::jsonb || jsonb_build_object('_id', u.id, 'ts', u.ts_text, 'source', "
    "u.source, 'received_at', $11::text) FROM unnest($1::text[], $2::bigint[], "
    "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], "
    "$10::text[]) AS u(id, ts, ts_text, source, model, tenant_id, deployment, input_tokens, "
    "output_tokens, data) ON CONFLICT (id) DO NOTHING RETURNING id";
// Newest wins: an older sample (or a tie: the one stored first stays) leaves the row alone.
// The rows come from gpu_metrics, just inserted in the same transaction, so the view never
// holds a sample the history lacks. One row per GPU: DO UPDATE may touch a row once only.
constexpr const char* kUpsertLatestSql =
    "INSERT INTO gpu_latest (gpu_uuid, ts, host, doc) SELECT DISTINCT ON (gpu_uuid) gpu_uuid, ts, "
    "host, doc FROM gpu_metrics WHERE id = ANY($1::text[]) ORDER BY gpu_uuid, ts DESC, "
    "array_position($1::text[], id) ON CONFLICT (gpu_uuid) DO UPDATE SET ts = excluded.ts, host "
    "= excluded.host, doc = excluded.doc WHERE excluded.ts > gpu_latest.ts";

// ---- Usage rollups (query/usage_rollup.hpp) ----
// What one request adds to its group, and the sums of a group: the roll-up and /v1/usage both
// sum these, so a rolled minute answers exactly what its requests answer. The cost block's
// sums are named as MongoStore::usage_json names them; sum() skips requests not priced yet
// (NULL) and coalesce makes an unpriced group 0, like SQLite's total().
constexpr const char* kRequestValues =
    "1 AS requests, input_tokens, output_tokens, amount_usd AS cost_usd, (doc #>> "
    "'{cost,utilization_usd}')::float8 AS cost_utilization_usd, (doc #>> "
    "'{cost,energy_usd}')::float8 AS cost_energy_usd, (doc #>> '{cost,gpu_seconds}')::float8 AS "
    "gpu_seconds, (doc #>> '{cost,energy_j}')::float8 AS energy_j, (doc #>> "
    "'{cost,amortized_usd}' IS NOT NULL)::int AS priced_requests";
constexpr const char* kUsageSums =
    "sum(requests), sum(input_tokens), sum(output_tokens), coalesce(sum(cost_usd), 0), "
    "coalesce(sum(cost_utilization_usd), 0), coalesce(sum(cost_energy_usd), 0), "
    "coalesce(sum(gpu_seconds), 0), coalesce(sum(energy_j), 0), sum(priced_requests)";
constexpr const char* kRollupColumns =
    "requests, input_tokens, output_tokens, cost_usd, cost_utilization_usd, cost_energy_usd, "
    "gpu_seconds, energy_j, priced_requests";

// A fresh nonce replaces the previous one, so a roll-up that read the previous one leaves the
// mark for the next. Minutes in ascending order: concurrent batches lock the marks in one
// order.
constexpr const char* kMarkMinutesSql =
    "INSERT INTO usage_marks (minute, marked_at, nonce) SELECT m, $2::bigint, $3::bigint FROM "
    "unnest($1::bigint[]) AS m ORDER BY m ON CONFLICT (minute) DO UPDATE SET marked_at = "
    "excluded.marked_at, nonce = excluded.nonce";
// An upgraded database: every minute already holding requests is marked, so the roll-up fills
// the history in; until then its answers read the requests.
constexpr const char* kMarkStoredMinutesSql =
    "INSERT INTO usage_marks (minute, marked_at, nonce) SELECT DISTINCT ts - ((ts % 60000) + "
    "60000) % 60000, $1::bigint, $2::bigint FROM token_usage ON CONFLICT (minute) DO NOTHING";
// The mark, locked until the roll-up commits: a second roller waits and then finds it gone (or
// marked again, and recomputes after the first committed), so the two never insert the same
// rows; a batch marking the minute meanwhile waits too, and its requests are rolled next time.
constexpr const char* kLockMarkSql =
    "SELECT nonce FROM usage_marks WHERE minute = $1 AND marked_at <= $2 FOR UPDATE";
constexpr const char* kClearMinuteSql = "DELETE FROM usage_minutes WHERE minute = $1";
constexpr const char* kClearHourSql = "DELETE FROM usage_hours WHERE hour = $1";
// One roller per hour at a time, for the whole transaction that recomputes the hour's marked
// minutes and then the hour. The marks' row locks alone do not cover the hour: two rollers
// holding different minutes of one hour would both DELETE and INSERT its rows, and the second
// INSERT fails with a duplicate key once the first commits; and a separate transaction per hour
// after the minutes' would leave a stale hour row (no mark left to redo it) if the process died
// between the two. Under this lock each READ COMMITTED statement after it sees every minute of
// the hour another roller committed. Deadlock-free: a roller takes this lock first, holding
// nothing, and one hour per transaction; the marks then in ascending order, as batches take
// them. The two-int key space is apart from prepare's one-bigint lock.
constexpr const char* kLockHourSql =
    "SELECT pg_advisory_xact_lock(1970496871, ($1::bigint / 3600000)::int)";
constexpr const char* kUnmarkSql = "DELETE FROM usage_marks WHERE minute = $1 AND nonce = $2";

std::string roll_minute_sql() {
  return std::string("INSERT INTO usage_minutes (minute, model, tenant_id, deployment, ") +
         kRollupColumns + ") SELECT $1::bigint, model, tenant_id, coalesce(deployment, ''), " +
         kUsageSums + " FROM (SELECT model, tenant_id, deployment, " + kRequestValues +
         " FROM token_usage WHERE ts >= $1::bigint AND ts < $1::bigint + 60000) AS r GROUP BY "
         "2, 3, 4";
}

// An hour's rows from its minutes' rows (the hour's start in $1).
std::string roll_hour_sql() {
  return std::string("INSERT INTO usage_hours (hour, model, tenant_id, deployment, ") +
         kRollupColumns + ") SELECT $1::bigint, model, tenant_id, deployment, " + kUsageSums +
         " FROM usage_minutes WHERE minute >= $1::bigint AND minute < $1::bigint + 3600000 GROUP "
         "BY 2, 3, 4";
}

// A database from before the hour tier: every hour's rows from the minute rows there are, in
// prepare's transaction, so an answer never reads an empty hour row for rolled minutes. A
// minute marked then is rolled later and its hour recomputed with it.
std::string fill_hours_sql() {
  return std::string("INSERT INTO usage_hours (hour, model, tenant_id, deployment, ") +
         kRollupColumns + ") SELECT minute - ((minute % 3600000) + 3600000) % 3600000, model, " +
         "tenant_id, deployment, " + kUsageSums + " FROM usage_minutes GROUP BY 1, 2, 3, 4";
}

// One /v1/usage statement for the reads of a plan (query::plan_usage_reads): the hour rows of
// its hour ranges, the minute rows of its minute ranges and the requests of its request
// ranges, summed per group. Each part takes its ranges as two arrays (one parameter pair
// whatever their number) and reads each range in a lateral subquery: OFFSET 0 keeps it a
// subquery, so every range is one index range scan (the primary key's leading hour or minute,
// token_usage_ts), never a pass over a whole table.
class UsageStatement {
 public:
  UsageStatement(const std::string& column, const std::optional<std::vector<std::string>>& tenants)
      : column_(column) {
    if (!tenants) return;
    TextArray list;
    for (const auto& t : *tenants) list.add(t);
    tenant_filter_ = " AND tenant_id = ANY(" + param(list.take()) + "::text[])";
  }

  // `start`: the column the ranges bound; `values`: what one row adds to its group.
  void add(const char* table, const char* start, const char* values,
           const std::vector<query::TimeRange>& ranges) {
    if (ranges.empty()) return;
    TextArray froms, tos;
    for (const auto& [from, to] : ranges) {
      froms.add(from);
      tos.add(to);
    }
    const std::string from = param(froms.take());
    const std::string to = param(tos.take());
    const std::string part = "SELECT p.* FROM unnest(" + from + "::bigint[], " + to +
                             "::bigint[]) AS g(f, t) CROSS JOIN LATERAL (SELECT " + column_ +
                             " AS key, " + values + " FROM " + table + " WHERE " + start +
                             " >= g.f AND " + start + " < g.t" + tenant_filter_ + " OFFSET 0) AS p";
    parts_ += parts_.empty() ? part : " UNION ALL " + part;
  }

  bool empty() const { return parts_.empty(); }

  std::string sql() const {
    return "SELECT key, " + std::string(kUsageSums) + " FROM (" + parts_ + ") AS u GROUP BY key";
  }
  const std::vector<std::optional<std::string>>& args() const { return args_; }

 private:
  std::string param(std::optional<std::string> value) {
    args_.push_back(std::move(value));
    return "$" + std::to_string(args_.size());
  }

  std::string column_;
  std::string tenant_filter_;
  std::string parts_;
  std::vector<std::optional<std::string>> args_;
};

// Ascending, each once: one mark per minute and statement (DO UPDATE may touch a row once).
std::vector<std::int64_t> sorted_unique(std::vector<std::int64_t> minutes) {
  std::sort(minutes.begin(), minutes.end());
  minutes.erase(std::unique(minutes.begin(), minutes.end()), minutes.end());
  return minutes;
}

// The minutes of the token usage events among `rows`.
std::vector<std::int64_t> usage_minutes_of(const std::vector<StoredEvent>& batch,
                                           const std::vector<std::size_t>& rows) {
  std::vector<std::int64_t> minutes;
  for (const std::size_t i : rows) {
    const auto& e = *batch[i].event;
    if (e.kind == EventKind::kTokenUsage) minutes.push_back(query::minute_of(unix_ms(e.time)));
  }
  return sorted_unique(std::move(minutes));
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(ConnectionSettings settings) : conn_(std::move(settings)) {}

  // ---- prepare ----
  Result<bool> prepare(const events::GpuCatalog& catalog) override {
    const std::lock_guard lock(mutex_);
    // One transaction under an advisory lock: processors starting together would otherwise race
    // in CREATE ... IF NOT EXISTS, which PostgreSQL can answer with a unique violation on its
    // catalog. Any failure here is retryable: no event is at stake, and the loop backs off.
    const auto fail = [&](Error e) -> Result<bool> {
      conn_.rollback();
      return retryable(std::move(e));
    };
    if (auto r = conn_.begin(); !r) return fail(r.error());
    if (auto r = conn_.exec("SELECT pg_advisory_xact_lock(7265786173)"); !r) return fail(r.error());
    Result<MissingRollups> missing = missing_rollups();
    if (!missing) return fail(missing.error());
    for (const char* sql : kSchema) {
      if (auto r = conn_.exec(sql); !r) return fail(r.error());
    }
    if (missing.value().minutes) {
      // No rollups at all: the roll-up fills the minutes and their hours from the marks.
      if (auto r = mark_stored_minutes(); !r) return fail(r.error());
    } else if (missing.value().hours) {
      // Minutes rolled up, no hour tier yet: their hours are summed from them right away.
      if (auto r = conn_.exec(fill_hours_sql().c_str()); !r) return fail(r.error());
    }
    if (auto r = conn_.commit(); !r) return retryable(r.error());
    TextArray names, models, prices;
    for (const auto& entry : catalog.entries()) {
      names.add(entry.name);
      models.add(entry.model_name);
      prices.add(std::optional<double>(entry.price_per_hour_usd));
    }
    // Duplicated names in a catalog: the last one wins, as the other stores' upserts do.
    auto r = conn_.exec(
        "INSERT INTO gpus (name, model_name, price_per_hour_usd) SELECT DISTINCT ON (name) name, "
        "model_name, price FROM unnest($1::text[], $2::text[], $3::float8[]) WITH ORDINALITY AS "
        "u(name, model_name, price, n) ORDER BY name, n DESC ON CONFLICT (name) DO UPDATE SET "
        "model_name = excluded.model_name, price_per_hour_usd = excluded.price_per_hour_usd",
        {names.take(), models.take(), prices.take()});
    if (!r) return r.error();
    return true;
  }

  // ---- write ----
  // The batch in one transaction, one statement per table. When the server refuses a value
  // (a data error), the batch is replayed row by row, each behind a savepoint, so only the
  // refused rows go to the dead letters and the rest is stored.
  Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) override {
    const std::lock_guard lock(mutex_);
    std::vector<std::size_t> rows;
    WriteOutcome outcome;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& e = *batch[i].event;
      if (e.kind != EventKind::kGpuMetrics && e.kind != EventKind::kTokenUsage) continue;
      if (has_nul(e)) {
        outcome.rejected.emplace_back(i, "a NUL byte in a text field: PostgreSQL cannot store it");
        continue;
      }
      rows.push_back(i);
    }
    const std::string received_at = rfc3339_utc(std::chrono::system_clock::now());
    Result<std::vector<std::string>> inserted = write_rows(batch, rows, received_at);
    if (!inserted && is_data_error(inserted.error())) {
      return write_row_by_row(batch, rows, received_at, std::move(outcome));
    }
    if (!inserted) return inserted.error();
    count(batch, rows, inserted.value(), outcome);
    return outcome;
  }

  // ---- queries ----
  Result<std::string> latest_gpu_json(const GpuQuery& query) override {
    Result<std::vector<query::LatestSample>> samples = latest_samples();
    if (!samples) return samples.error();
    return query::latest_json_of(samples.value(), query.gpu_uuid, query.host);
  }

  Result<std::string> gpus_json() override {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        "SELECT name, model_name, price_per_hour_usd FROM gpus ORDER BY name COLLATE \"C\"");
    if (!r) return r.error();
    const PGresult* res = r.value().get();
    JsonWriter json;
    json.begin_array();
    for (int row = 0; row < PQntuples(res); ++row) {
      query::write_gpu_entry(json, cell(res, row, 0), cell(res, row, 1),
                             cell_double(res, row, 2).value_or(0));
    }
    json.end_array();
    return json.take();
  }

  // As SqliteStore::usage_json: the marks of the range, then what plan_usage_reads makes of
  // them, in one REPEATABLE READ snapshot, so a roll-up committing in between can neither
  // count a minute twice nor drop it (its mark read, its rows not, or the other way round).
  Result<std::string> usage_json(const UsageQuery& query) override {
    const std::string column = query.group_by == "tenant"       ? "tenant_id"
                               : query.group_by == "deployment" ? "deployment"
                                                                : "model";
    const std::optional<std::int64_t> from =
        query.from ? std::optional(unix_ms(*query.from)) : std::nullopt;
    const std::optional<std::int64_t> to =
        query.to ? std::optional(unix_ms(*query.to)) : std::nullopt;
    const std::lock_guard lock(mutex_);
    // Errors as the query side returns them elsewhere (no retryable() wrapping).
    const auto fail = [&](const Error& e) -> Result<std::string> {
      conn_.rollback();
      return e;
    };
    if (auto r = conn_.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !r) {
      return fail(r.error());
    }
    auto marks = conn_.exec("SELECT minute FROM usage_marks WHERE minute >= $1 AND minute < $2",
                            {std::to_string(from ? query::minute_of(*from) : INT64_MIN),
                             std::to_string(to.value_or(INT64_MAX))});
    if (!marks) return fail(marks.error());
    std::vector<std::int64_t> marked;
    for (int row = 0; row < PQntuples(marks.value().get()); ++row) {
      marked.push_back(cell_int(marks.value().get(), row, 0));
    }
    const query::UsageReads reads = query::plan_usage_reads(from, to, std::move(marked));
    UsageStatement statement(column, query.tenants);
    statement.add("usage_hours", "hour", kRollupColumns, reads.hours);
    statement.add("usage_minutes", "minute", kRollupColumns, reads.minutes);
    statement.add("token_usage", "ts", kRequestValues, reads.requests);
    query::UsageTotals totals;
    if (!statement.empty()) {
      auto r = conn_.exec(statement.sql().c_str(), statement.args());
      if (!r) return fail(r.error());
      const PGresult* res = r.value().get();
      for (int row = 0; row < PQntuples(res); ++row) {
        const auto number = [&](int column) { return cell_double(res, row, column).value_or(0); };
        totals.add(cell(res, row, 0), {.requests = cell_int(res, row, 1),
                                       .input_tokens = cell_int(res, row, 2),
                                       .output_tokens = cell_int(res, row, 3),
                                       .cost_usd = number(4),
                                       .cost_utilization_usd = number(5),
                                       .cost_energy_usd = number(6),
                                       .gpu_seconds = number(7),
                                       .energy_j = number(8),
                                       .priced_requests = cell_int(res, row, 9)});
      }
    }
    conn_.rollback();  // read only: nothing to commit
    return totals.json();
  }

  Result<std::string> gpu_series_json(const query::SeriesQuery& query) override {
    // The epoch-aligned floor (query::bucket_start) in SQL; avg and max skip documents
    // without the field (NULL), as MongoStore's accumulator does.
    std::string sql = "SELECT ts - ((ts % $3) + $3) % $3 AS bucket, count(*)";
    for (const auto& field : query::kSeriesFields) {
      std::string path(field.path);
      std::replace(path.begin(), path.end(), '.', ',');
      const std::string extract = "(doc #>> '{" + path + "}')::float8";
      sql += ", avg(" + extract + "), max(" + extract + ")";
    }
    sql +=
        " FROM gpu_metrics WHERE gpu_uuid = $1 AND ts >= $2 AND ts < $4 GROUP BY bucket ORDER "
        "BY bucket";
    const std::lock_guard lock(mutex_);
    auto r =
        conn_.exec(sql.c_str(), {query.gpu_uuid, std::to_string(unix_ms(query.from)),
                                 std::to_string(query.step_ms), std::to_string(unix_ms(query.to))});
    if (!r) return r.error();
    const PGresult* res = r.value().get();
    std::vector<query::SeriesPoint> points;
    for (int row = 0; row < PQntuples(res); ++row) {
      query::SeriesPoint point;
      point.bucket_ms = cell_int(res, row, 0);
      point.samples = cell_int(res, row, 1);
      for (std::size_t i = 0; i < query::kSeriesFields.size(); ++i) {
        const int column = 2 + 2 * static_cast<int>(i);
        const auto avg = cell_double(res, row, column);
        if (!avg) continue;
        point.fields[i] = query::FieldStats{*avg, cell_double(res, row, column + 1).value()};
      }
      points.push_back(point);
    }
    if (points.empty()) {
      auto any =
          conn_.exec("SELECT 1 FROM gpu_metrics WHERE gpu_uuid = $1 LIMIT 1", {query.gpu_uuid});
      if (!any) return any.error();
      if (PQntuples(any.value().get()) == 0) return std::string("null");
    }
    return query::series_points_json(points);
  }

  Result<std::string> devices_json() override {
    Result<std::vector<query::LatestSample>> samples = latest_samples();
    if (!samples) return samples.error();
    return query::devices_json_of(samples.value());
  }

  // ---- the latest view ----
  bool keeps_latest_view() const override { return true; }

  Result<std::vector<query::LatestSample>> latest_samples() override {
    // One row per GPU, in gpu_uuid byte order; each device field as jsonb prints it (a number
    // or a quoted string: JSON already), absent ones NULL.
    constexpr int kFirstField = 4;
    std::string sql = "SELECT gpu_uuid, host, ts, doc";
    for (const char* field : query::kDeviceFields) {
      sql += ", doc -> '" + std::string(field) + "'";
    }
    sql += " FROM gpu_latest ORDER BY gpu_uuid COLLATE \"C\"";
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(sql.c_str());
    if (!r) return r.error();
    const PGresult* res = r.value().get();
    std::vector<query::LatestSample> samples;
    for (int row = 0; row < PQntuples(res); ++row) {
      JsonWriter json;
      json.begin_object();
      for (std::size_t i = 0; i < query::kDeviceFields.size(); ++i) {
        const int column = kFirstField + static_cast<int>(i);
        if (PQgetisnull(res, row, column)) continue;  // absent from the document
        const std::string value = cell(res, row, column);
        if (value == "null") continue;
        json.key(query::kDeviceFields[i]).raw(compact_json(value));
      }
      json.end_object();
      samples.push_back({cell(res, row, 0), cell(res, row, 1), cell_int(res, row, 2),
                         compact_json(cell(res, row, 3)), json.take()});
    }
    return samples;
  }

  // ---- usage rollups (query/usage_rollup.hpp) ----
  bool keeps_usage_rollups() const override { return true; }

  // The settled marks, oldest first, an hour's minutes at a time (roll_up_hour).
  Result<std::size_t> roll_up_usage(std::int64_t marked_before_ms, std::size_t limit) override {
    const std::lock_guard lock(mutex_);
    auto marks =
        conn_.exec("SELECT minute FROM usage_marks WHERE marked_at <= $1 ORDER BY minute LIMIT $2",
                   {std::to_string(marked_before_ms),
                    std::to_string(std::min<std::size_t>(limit, INT64_MAX))});
    if (!marks) return retryable(marks.error());
    std::vector<std::int64_t> minutes;
    for (int row = 0; row < PQntuples(marks.value().get()); ++row) {
      minutes.push_back(cell_int(marks.value().get(), row, 0));
    }
    std::size_t rolled = 0;
    for (auto first = minutes.begin(); first != minutes.end();) {
      const std::int64_t hour = query::hour_of(*first);
      const auto end = std::find_if(first, minutes.end(),
                                    [&](std::int64_t m) { return query::hour_of(m) != hour; });
      Result<std::size_t> done = roll_up_hour(hour, {first, end}, marked_before_ms);
      if (!done) return done.error();
      rolled += done.value();
      first = end;
    }
    return rolled;
  }

  Result<std::vector<query::UsageRollupRow>> usage_minutes(std::int64_t from_ms,
                                                           std::int64_t to_ms) override {
    return rollup_rows("usage_minutes", "minute", from_ms, to_ms);
  }

  Result<std::vector<query::UsageRollupRow>> usage_hours(std::int64_t from_ms,
                                                         std::int64_t to_ms) override {
    return rollup_rows("usage_hours", "hour", from_ms, to_ms);
  }

  Result<std::vector<std::int64_t>> marked_usage_minutes() override {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec("SELECT minute FROM usage_marks ORDER BY minute");
    if (!r) return retryable(r.error());
    std::vector<std::int64_t> minutes;
    for (int row = 0; row < PQntuples(r.value().get()); ++row) {
      minutes.push_back(cell_int(r.value().get(), row, 0));
    }
    return minutes;
  }

  // ---- cost windows (docs/cost.md) ----
  Result<bool> mark_cost_windows(const std::vector<std::int64_t>& starts_ms,
                                 std::int64_t marked_at_ms, std::int64_t nonce) override {
    TextArray starts;
    for (const std::int64_t s : starts_ms) starts.add(s);
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        "INSERT INTO cost_windows (start, marked_at, nonce) SELECT DISTINCT s, $2::bigint, "
        "$3::bigint FROM unnest($1::bigint[]) AS s ON CONFLICT (start) DO UPDATE SET marked_at = "
        "excluded.marked_at, nonce = excluded.nonce",
        {starts.take(), std::to_string(marked_at_ms), std::to_string(nonce)});
    if (!r) return retryable(r.error());
    return true;
  }

  Result<std::vector<CostWindowMark>> settled_cost_windows(std::int64_t marked_before_ms,
                                                           std::int64_t now_ms,
                                                           std::size_t limit) override {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        "SELECT start, marked_at, nonce, coalesce(claim_token, 0) FROM cost_windows WHERE "
        "marked_at <= $1 AND (claim_until IS NULL OR claim_until < $3) ORDER BY start LIMIT $2",
        {std::to_string(marked_before_ms), std::to_string(limit), std::to_string(now_ms)});
    if (!r) return retryable(r.error());
    const PGresult* res = r.value().get();
    std::vector<CostWindowMark> marks;
    for (int row = 0; row < PQntuples(res); ++row) {
      marks.push_back({cell_int(res, row, 0), cell_int(res, row, 1), cell_int(res, row, 2),
                       cell_int(res, row, 3)});
    }
    return marks;
  }

  Result<bool> claim_cost_window(CostWindowMark& mark, std::int64_t token, std::int64_t now_ms,
                                 std::int64_t until_ms) override {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        "UPDATE cost_windows SET claim_token = $3, claim_until = $4 WHERE start = $1 AND nonce = "
        "$2 AND (claim_until IS NULL OR claim_until < $5)",
        {std::to_string(mark.start_ms), std::to_string(mark.nonce), std::to_string(token),
         std::to_string(until_ms), std::to_string(now_ms)});
    if (!r) return retryable(r.error());
    if (std::string_view(PQcmdTuples(r.value().get())) != "1") return false;
    mark.claim_token = token;
    return true;
  }

  Result<cost::WindowInputs> cost_window_inputs(std::int64_t start_ms, std::int64_t end_ms,
                                                std::int64_t lookback_ms) override {
    const std::lock_guard lock(mutex_);
    cost::WindowInputs inputs;
    auto usage = conn_.exec(
        "SELECT id, ts, model, tenant_id, doc ->> 'deployment', doc ->> 'host', input_tokens, "
        "output_tokens, doc -> 'gpu_uuids', doc #> '{cost,window_start}', "
        "(doc #>> '{cost,amortized_usd}')::float8, (doc #>> '{cost,utilization_usd}')::float8, "
        "(doc #>> '{cost,energy_usd}')::float8, (doc #>> '{cost,gpu_seconds}')::float8, "
        "(doc #>> '{cost,energy_j}')::float8 FROM token_usage WHERE ts >= $1 AND ts < $2",
        {std::to_string(start_ms), std::to_string(end_ms)});
    if (!usage) return retryable(usage.error());
    simdjson::dom::parser parser;
    const PGresult* u = usage.value().get();
    for (int row = 0; row < PQntuples(u); ++row) {
      cost::UsageRow r;
      r.id = cell(u, row, 0);
      r.time_ms = cell_int(u, row, 1);
      r.model = cell(u, row, 2);
      r.tenant_id = cell(u, row, 3);
      r.deployment = cell(u, row, 4);
      r.host = cell(u, row, 5);
      r.input_tokens = cell_int(u, row, 6);
      r.output_tokens = cell_int(u, row, 7);
      r.gpu_uuids = uuids_of(cell(u, row, 8), parser);
      r.stored.priced = !PQgetisnull(u, row, 9);
      r.stored.amortized_usd = cell_double(u, row, 10);
      r.stored.utilization_usd = cell_double(u, row, 11);
      r.stored.energy_usd = cell_double(u, row, 12);
      r.stored.gpu_seconds = cell_double(u, row, 13);
      r.stored.energy_j = cell_double(u, row, 14);
      inputs.usage.push_back(std::move(r));
    }
    auto samples = conn_.exec(
        "SELECT gpu_uuid, host, doc ->> 'model_name', ts, (doc ->> "
        "'utilization_gpu_percent')::float8, least(greatest((doc ->> "
        "'energy_consumed_mj')::numeric, "
        "-9223372036854775808), 9223372036854775807)::bigint "
        "FROM gpu_metrics WHERE ts >= $1 AND ts < $2",
        {std::to_string(start_ms - lookback_ms), std::to_string(end_ms)});
    if (!samples) return retryable(samples.error());
    const PGresult* s = samples.value().get();
    for (int row = 0; row < PQntuples(s); ++row) {
      cost::GpuSampleRow r;
      r.gpu_uuid = cell(s, row, 0);
      r.host = cell(s, row, 1);
      r.model_name = cell(s, row, 2);
      r.time_ms = cell_int(s, row, 3);
      r.utilization_gpu_percent = cell_double(s, row, 4);
      if (!PQgetisnull(s, row, 5)) r.energy_consumed_mj = cell_int(s, row, 5);
      inputs.samples.push_back(std::move(r));
    }
    auto placements = conn_.exec(
        "SELECT deployment, target, first_seen, last_seen FROM placements WHERE first_seen < $1",
        {std::to_string(end_ms)});
    if (!placements) return retryable(placements.error());
    const PGresult* p = placements.value().get();
    for (int row = 0; row < PQntuples(p); ++row) {
      inputs.placements.push_back(
          {cell(p, row, 0), cell(p, row, 1), cell_int(p, row, 2), cell_int(p, row, 3)});
    }
    return inputs;
  }

  Result<bool> write_costs(const std::vector<cost::UsageCost>& costs,
                           const std::optional<CostWindowMark>& clear) override {
    TextArray ids, amounts, blocks;
    std::vector<std::int64_t> minutes;
    for (const cost::UsageCost& c : costs) {
      ids.add(c.id);
      amounts.add(c.amortized_usd);
      blocks.add(cost::cost_block_json(c));
      minutes.push_back(query::minute_of(c.time_ms));
    }
    const std::lock_guard lock(mutex_);
    const auto fail = [&](const Error& e) -> Result<bool> {
      conn_.rollback();
      return retryable(e);
    };
    if (auto r = conn_.begin(); !r) return fail(r.error());
    if (clear) {
      // Only the holder of the claim writes: a pricer whose lease was taken over would write
      // costs older than the ones its successor wrote. FOR UPDATE holds the mark until commit.
      auto ours =
          conn_.exec("SELECT 1 FROM cost_windows WHERE start = $1 AND claim_token = $2 FOR UPDATE",
                     {std::to_string(clear->start_ms), std::to_string(clear->claim_token)});
      if (!ours) return fail(ours.error());
      if (PQntuples(ours.value().get()) == 0) {
        conn_.rollback();
        return false;
      }
    }
    auto update = conn_.exec(
        "UPDATE token_usage t SET amount_usd = c.amount, doc = jsonb_set(t.doc, '{cost}', "
        "c.block::jsonb) FROM unnest($1::text[], $2::float8[], $3::text[]) AS c(id, amount, "
        "block) WHERE t.id = c.id",
        {ids.take(), amounts.take(), blocks.take()});
    if (!update) return fail(update.error());
    // The priced requests' rollups are recomputed: their cost sums changed.
    if (auto r = mark_minutes(sorted_unique(std::move(minutes))); !r) return fail(r.error());
    if (clear) {
      auto removed = conn_.exec(
          "DELETE FROM cost_windows WHERE start = $1 AND nonce = $2 AND claim_token = $3",
          {std::to_string(clear->start_ms), std::to_string(clear->nonce),
           std::to_string(clear->claim_token)});
      if (!removed) return fail(removed.error());
      if (std::string_view(PQcmdTuples(removed.value().get())) == "0") {
        // Marked again while it was priced: release the claim so the new mark is priced.
        auto release = conn_.exec(
            "UPDATE cost_windows SET claim_until = 0 WHERE start = $1 AND claim_token = $2",
            {std::to_string(clear->start_ms), std::to_string(clear->claim_token)});
        if (!release) return fail(release.error());
      }
    }
    if (auto r = conn_.commit(); !r) return retryable(r.error());
    return true;
  }

  Result<bool> upsert_placements(const std::vector<cost::PlacementRow>& placements) override {
    TextArray deployments, targets, first, last;
    for (const cost::PlacementRow& p : placements) {
      deployments.add(p.deployment);
      targets.add(p.target);
      first.add(p.first_seen_ms);
      last.add(p.last_seen_ms);
    }
    // Grouped first: one statement may update a row once only.
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        "INSERT INTO placements (deployment, target, first_seen, last_seen) SELECT d, t, min(f), "
        "max(l) FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(d, t, f, l) "
        "GROUP BY d, t ON CONFLICT (deployment, target) DO UPDATE SET first_seen = "
        "least(placements.first_seen, excluded.first_seen), last_seen = "
        "greatest(placements.last_seen, excluded.last_seen)",
        {deployments.take(), targets.take(), first.take(), last.take()});
    if (!r) return retryable(r.error());
    return true;
  }

  Result<std::vector<std::int64_t>> usage_window_starts(std::int64_t from_ms, std::int64_t to_ms,
                                                        std::int64_t window_ms) override {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        "SELECT DISTINCT ts - ((ts % $3) + $3) % $3 AS start FROM token_usage WHERE ts >= $1 AND "
        "ts < $2 ORDER BY start",
        {std::to_string(from_ms), std::to_string(to_ms), std::to_string(window_ms)});
    if (!r) return retryable(r.error());
    std::vector<std::int64_t> starts;
    for (int row = 0; row < PQntuples(r.value().get()); ++row) {
      starts.push_back(cell_int(r.value().get(), row, 0));
    }
    return starts;
  }

 private:
  // The cost side stores nothing from an event: a data error there is not an event's fault,
  // so it is retried (and counted) rather than taken for a refusal.
  static Error retryable(Error e) {
    e.kind = Error::Kind::kRetryable;
    return e;
  }

  // Marks `minutes` changed, inside the caller's transaction (none: no statement). Not an
  // event's fault when it fails, so retryable.
  Result<bool> mark_minutes(const std::vector<std::int64_t>& minutes) {
    if (minutes.empty()) return true;
    TextArray list;
    for (const std::int64_t m : minutes) list.add(m);
    auto r = conn_.exec(kMarkMinutesSql,
                        {list.take(), std::to_string(unix_ms(std::chrono::system_clock::now())),
                         std::to_string(cost::random_token())});
    if (!r) return retryable(r.error());
    return true;
  }

  // Recomputes one marked minute's rows in a transaction of its own. False when the mark is
  // gone (another roller did it) or was marked again after `marked_before_ms`.
  // One transaction for an hour's marked minutes (ascending) and the hour: each minute whose
  // mark is still settled is recomputed from its requests and unmarked (unless marked again),
  // then the hour from its minutes, once. The minutes rolled; none: nothing written.
  Result<std::size_t> roll_up_hour(std::int64_t hour, const std::vector<std::int64_t>& minutes,
                                   std::int64_t marked_before_ms) {
    const auto fail = [&](const Error& e) -> Result<std::size_t> {
      conn_.rollback();
      return retryable(e);
    };
    const std::string h = std::to_string(hour);
    if (auto r = conn_.begin(); !r) return fail(r.error());
    if (auto r = conn_.exec(kLockHourSql, {h}); !r) return fail(r.error());
    std::size_t rolled = 0;
    for (const std::int64_t minute : minutes) {
      const std::string m = std::to_string(minute);
      auto mark = conn_.exec(kLockMarkSql, {m, std::to_string(marked_before_ms)});
      if (!mark) return fail(mark.error());
      if (PQntuples(mark.value().get()) == 0) continue;  // rolled by another processor
      const std::string nonce = cell(mark.value().get(), 0, 0);
      if (auto r = conn_.exec(kClearMinuteSql, {m}); !r) return fail(r.error());
      if (auto r = conn_.exec(roll_minute_sql().c_str(), {m}); !r) return fail(r.error());
      if (auto r = conn_.exec(kUnmarkSql, {m, nonce}); !r) return fail(r.error());
      ++rolled;
    }
    if (rolled == 0) {
      conn_.rollback();
      return rolled;
    }
    if (auto r = conn_.exec(kClearHourSql, {h}); !r) return fail(r.error());
    if (auto r = conn_.exec(roll_hour_sql().c_str(), {h}); !r) return fail(r.error());
    if (auto r = conn_.commit(); !r) return retryable(r.error());
    return rolled;
  }

  // The rows of `table` whose `start` lies in [from_ms, to_ms), in the order the other stores
  // list them (byte order).
  Result<std::vector<query::UsageRollupRow>> rollup_rows(const char* table, const char* start,
                                                         std::int64_t from_ms, std::int64_t to_ms) {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec(
        (std::string("SELECT ") + start + ", model, tenant_id, deployment, " + kRollupColumns +
         " FROM " + table + " WHERE " + start + " >= $1 AND " + start + " < $2 ORDER BY " + start +
         ", model COLLATE \"C\", tenant_id COLLATE \"C\", deployment COLLATE "
         "\"C\"")
            .c_str(),
        {std::to_string(from_ms), std::to_string(to_ms)});
    if (!r) return retryable(r.error());
    const PGresult* res = r.value().get();
    std::vector<query::UsageRollupRow> rows;
    for (int row = 0; row < PQntuples(res); ++row) {
      const auto number = [&](int column) { return cell_double(res, row, column).value_or(0); };
      rows.push_back({.start_ms = cell_int(res, row, 0),
                      .model = cell(res, row, 1),
                      .tenant_id = cell(res, row, 2),
                      .deployment = cell(res, row, 3),
                      .requests = cell_int(res, row, 4),
                      .input_tokens = cell_int(res, row, 5),
                      .output_tokens = cell_int(res, row, 6),
                      .cost_usd = number(7),
                      .cost_utilization_usd = number(8),
                      .cost_energy_usd = number(9),
                      .gpu_seconds = number(10),
                      .energy_j = number(11),
                      .priced_requests = cell_int(res, row, 12)});
    }
    return rows;
  }

  // Inside prepare's schema transaction, before the CREATEs: whether this database predates the
  // rollups (so its stored requests need marking) or only their hour tier (so its minute rows
  // need summing into hours).
  struct MissingRollups {
    bool minutes = false;
    bool hours = false;
  };
  Result<MissingRollups> missing_rollups() {
    auto r = conn_.exec(
        "SELECT to_regclass('usage_minutes') IS NULL, to_regclass('usage_hours') IS NULL");
    if (!r) return r.error();
    return MissingRollups{.minutes = cell(r.value().get(), 0, 0) == "t",
                          .hours = cell(r.value().get(), 0, 1) == "t"};
  }

  Result<bool> mark_stored_minutes() {
    auto r = conn_.exec(kMarkStoredMinutesSql,
                        {std::to_string(unix_ms(std::chrono::system_clock::now())),
                         std::to_string(cost::random_token())});
    if (!r) return r.error();
    return true;
  }

  static std::vector<std::string> uuids_of(std::string_view json, simdjson::dom::parser& parser) {
    std::vector<std::string> out;
    simdjson::dom::array array;
    if (json.empty() || parser.parse(json.data(), json.size()).get(array)) return out;
    for (const auto item : array) {
      std::string_view uuid;
      if (!item.get(uuid)) out.emplace_back(uuid);
    }
    return out;
  }

  // The ids the statements inserted (committed), or the first error.
  Result<std::vector<std::string>> write_rows(const std::vector<StoredEvent>& batch,
                                              const std::vector<std::size_t>& rows,
                                              const std::string& received_at) {
    std::vector<std::string> inserted;
    if (rows.empty()) return inserted;
    if (auto r = conn_.begin(); !r) return r.error();
    Result<bool> ok = insert(batch, rows, received_at, inserted);
    // Duplicates too: a crash between the insert and a mark is healed by the redelivery.
    if (ok) ok = mark_minutes(usage_minutes_of(batch, rows));
    if (!ok) {
      conn_.rollback();
      return ok.error();
    }
    if (auto r = conn_.commit(); !r) return r.error();
    return inserted;
  }

  // The statements of one batch (or one row) inside the caller's transaction.
  Result<bool> insert(const std::vector<StoredEvent>& batch, const std::vector<std::size_t>& rows,
                      const std::string& received_at, std::vector<std::string>& inserted) {
    TextArray m_id, m_ts, m_ts_text, m_source, m_gpu, m_host, m_data;
    TextArray u_id, u_ts, u_ts_text, u_source, u_model, u_tenant, u_deployment, u_in, u_out, u_data;
    bool metrics = false, usage = false;
    for (const std::size_t i : rows) {
      const auto& e = *batch[i].event;
      if (e.kind == EventKind::kGpuMetrics) {
        metrics = true;
        m_id.add(e.id);
        m_ts.add(unix_ms(e.time));
        m_ts_text.add(rfc3339_utc(e.time));
        m_source.add(e.source);
        m_gpu.add(e.gpu_uuid);
        m_host.add(e.host);
        m_data.add(e.data_json);
      } else {
        usage = true;
        u_id.add(e.id);
        u_ts.add(unix_ms(e.time));
        u_ts_text.add(rfc3339_utc(e.time));
        u_source.add(e.source);
        u_model.add(e.model);
        u_tenant.add(e.tenant_id);
        u_deployment.add(e.deployment);
        u_in.add(e.input_tokens);
        u_out.add(e.output_tokens);
        u_data.add(e.data_json);
      }
    }
    const auto collect = [&](const PgResult& r) {
      for (int row = 0; row < PQntuples(r.get()); ++row) inserted.push_back(cell(r.get(), row, 0));
    };
    if (metrics) {
      const std::size_t first_metric = inserted.size();
      auto r = conn_.exec(kInsertMetricsSql,
                          {m_id.take(), m_ts.take(), m_ts_text.take(), m_source.take(),
                           m_gpu.take(), m_host.take(), m_data.take(), received_at});
      if (!r) return r.error();
      collect(r.value());
      if (inserted.size() > first_metric) {
        TextArray ids;
        for (std::size_t k = first_metric; k < inserted.size(); ++k) ids.add(inserted[k]);
        if (auto l = conn_.exec(kUpsertLatestSql, {ids.take()}); !l) return l.error();
      }
    }
    if (usage) {
      auto r =
          conn_.exec(kInsertUsageSql, {u_id.take(), u_ts.take(), u_ts_text.take(), u_source.take(),
                                       u_model.take(), u_tenant.take(), u_deployment.take(),
                                       u_in.take(), u_out.take(), u_data.take(), received_at});
      if (!r) return r.error();
      collect(r.value());
    }
    return true;
  }

  // Row by row inside one transaction, each behind a savepoint: a refused row is rolled back
  // alone and reported with the server's reason; anything but a data error stops the batch.
  Result<WriteOutcome> write_row_by_row(const std::vector<StoredEvent>& batch,
                                        const std::vector<std::size_t>& rows,
                                        const std::string& received_at, WriteOutcome outcome) {
    const auto fail = [&](const Error& e) -> Result<WriteOutcome> {
      conn_.rollback();
      return e;
    };
    if (auto r = conn_.begin(); !r) return fail(r.error());
    std::vector<std::size_t> kept;
    std::vector<std::string> inserted;
    for (const std::size_t i : rows) {
      if (auto r = conn_.exec("SAVEPOINT row"); !r) return fail(r.error());
      const std::size_t before = inserted.size();
      Result<bool> ok = insert(batch, {i}, received_at, inserted);
      if (ok) {
        kept.push_back(i);
        continue;
      }
      if (!is_data_error(ok.error())) return fail(ok.error());
      inserted.resize(before);  // rolled back with its savepoint
      outcome.rejected.emplace_back(i, ok.error().message);
      if (auto r = conn_.exec("ROLLBACK TO SAVEPOINT row"); !r) return fail(r.error());
    }
    if (auto r = mark_minutes(usage_minutes_of(batch, kept)); !r) return fail(r.error());
    if (auto r = conn_.commit(); !r) return r.error();
    std::sort(outcome.rejected.begin(), outcome.rejected.end());
    count(batch, kept, inserted, outcome);
    return outcome;
  }

  // Inserted or duplicate, per batch index: the first occurrence of an id the server returned
  // was inserted; every other row was already stored (earlier, or earlier in this batch).
  void count(const std::vector<StoredEvent>& batch, const std::vector<std::size_t>& rows,
             const std::vector<std::string>& inserted, WriteOutcome& outcome) {
    // A count per id: a gpu_metrics and a token_usage event may share one, each in its table.
    std::unordered_map<std::string_view, int> fresh;
    for (const std::string& id : inserted) ++fresh[id];
    for (const std::size_t i : rows) {
      const auto& e = *batch[i].event;
      const auto it = fresh.find(e.id);
      if (it != fresh.end() && it->second > 0) {
        --it->second;
        ++(e.kind == EventKind::kGpuMetrics ? outcome.gpu_metrics_inserted
                                            : outcome.token_usage_inserted);
      } else {
        ++outcome.duplicates;
        outcome.duplicate_indexes.push_back(i);
      }
    }
    // After an unanswered COMMIT the rows may have been stored then: the view may have moved.
    const bool unanswered = conn_.take_commit_unanswered();
    if (outcome.gpu_metrics_inserted > 0 || unanswered) latest_changed();
  }

  // One connection for the processor's flush thread and the HTTP pool's queries: they take
  // turns (as SqliteStore's do); the latest view is served from LatestViewCache, so the hot
  // query routes rarely wait behind a batch.
  std::mutex mutex_;
  Connection conn_;
};

// ========================================================================= 5. Registration

// The readiness probe: a blocking SELECT 1 on a connection of its own, so /ready never waits
// behind a batch write and a broken store connection does not hide a server that is back.
class PostgresProbe final : public SinkProbe {
 public:
  explicit PostgresProbe(const Config& config)
      : conn_(connection_from(config)), interval_(config.integer("postgresql.check_interval_ms")) {}

  ProbeResult check() override {
    const std::lock_guard lock(mutex_);
    auto r = conn_.exec("SELECT 1");
    if (!r) {
      conn_.close();  // the next check connects afresh
      return {false, r.error().message};
    }
    return {true, "SELECT 1 ok"};
  }
  std::chrono::milliseconds interval() const override { return interval_; }

 private:
  std::mutex mutex_;
  Connection conn_;
  std::chrono::milliseconds interval_;
};

const SectionSpec& postgresql_section() {
  static const SectionSpec section{
      "postgresql",
      "PostgreSQL the processor stores events in and answers queries and costs from "
      "(processor.sinks: [postgresql]; docs/postgresql.md).",
      postgresql_keys(), check_postgresql_keys};
  return section;
}

const SinkRegistration kRegistration{{
    .name = "postgresql",
    .section = &postgresql_section(),
    .summary = "PostgreSQL (libpq): stores and serves queries and costs.",
    // Reads the password here, at start: a StartupError names the key and the file, never the
    // secret.
    .create = [](const Config& config) -> std::unique_ptr<Store> {
      ConnectionSettings settings = connection_from(config);
      log::info("postgresql", "store configured",
                {{"server", settings.where},
                 {"user", config.str("postgresql.user")},
                 {"sslmode", config.str("postgresql.sslmode")}});
      return std::make_unique<PostgresStore>(std::move(settings));
    },
    .probe = [](const Config& config) -> std::unique_ptr<SinkProbe> {
      return std::make_unique<PostgresProbe>(config);
    },
}};

}  // namespace
}  // namespace telemetryd::sinks
