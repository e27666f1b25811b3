// The SQLite store's per-minute usage rollups (query/usage_rollup.hpp): the marks written with
// the requests and costs, the roll-up that recomputes a marked minute, and /v1/usage answered
// from rolled minutes plus the requests of the partial and marked ones.

#include <set>
#include <string>

#include "cost/cost_model.hpp"
#include "query/answer_rows.hpp"
#include "query/usage_rollup.hpp"
#include "sqlite/sqlite_store.hpp"
#include "sqlite/statement.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::sqlite {

namespace {

// The sums of one request as the rollup and the answer add them: requests, tokens, then the
// cost block's (total() in the sums skips the nulls of unpriced requests).
constexpr const char* kRequestSums =
    "1 AS requests, input_tokens, output_tokens, amount_usd AS cost_usd, "
    "json_extract(doc, '$.cost.utilization_usd') AS cost_utilization_usd, "
    "json_extract(doc, '$.cost.energy_usd') AS cost_energy_usd, "
    "json_extract(doc, '$.cost.gpu_seconds') AS gpu_seconds, "
    "json_extract(doc, '$.cost.energy_j') AS energy_j, "
    "json_extract(doc, '$.cost.amortized_usd') IS NOT NULL AS priced_requests";

constexpr const char* kDeploymentOfRequest = "coalesce(json_extract(doc, '$.deployment'), '')";

constexpr const char* kSumColumns =
    "sum(requests), sum(input_tokens), sum(output_tokens), total(cost_usd), "
    "total(cost_utilization_usd), total(cost_energy_usd), total(gpu_seconds), total(energy_j), "
    "sum(priced_requests)";

void bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// ` AND <column> IN (?first, ...)`; nothing for every tenant (nullopt), and a filter that
// matches nothing for an empty list.
std::string tenant_filter(const std::optional<std::vector<std::string>>& tenants,
                          const char* column, int first) {
  if (!tenants) return {};
  if (tenants->empty()) return " AND 0";
  std::string sql = std::string(" AND ") + column + " IN (";
  for (std::size_t i = 0; i < tenants->size(); ++i)
    sql += (i ? ", ?" : "?") + std::to_string(static_cast<int>(i) + first);
  return sql + ")";
}

}  // namespace

Result<bool> SqliteStore::mark_usage_minutes(const std::set<std::int64_t>& minutes) {
  if (minutes.empty()) return true;
  const Statement s = prepare_statement(
      db_,
      "INSERT INTO usage_marks (minute, marked_at, nonce) VALUES (?1, ?2, ?3) ON "
      "CONFLICT(minute) DO UPDATE SET marked_at = excluded.marked_at, nonce = excluded.nonce");
  if (!s) return Error::retryable(path_ + ": " + error_message());
  const std::int64_t now = unix_ms(std::chrono::system_clock::now());
  const std::int64_t nonce = cost::random_token();
  for (const std::int64_t minute : minutes) {
    sqlite3_reset(s.get());
    sqlite3_bind_int64(s.get(), 1, minute);
    sqlite3_bind_int64(s.get(), 2, now);
    sqlite3_bind_int64(s.get(), 3, nonce);
    if (sqlite3_step(s.get()) != SQLITE_DONE) {
      return Error::retryable(path_ + ": " + error_message());
    }
  }
  return true;
}

Result<std::size_t> SqliteStore::roll_up_usage(std::int64_t marked_before_ms, std::size_t limit) {
  const std::lock_guard lock(mutex_);
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return Error::retryable(r.error().message);
  const auto fail = [&]() -> Result<std::size_t> {
    const std::string message = error_message();
    exec("ROLLBACK");
    return Error::retryable(path_ + ": " + message);
  };
  const Statement marks = prepare_statement(
      db_, "SELECT minute FROM usage_marks WHERE marked_at <= ?1 ORDER BY minute LIMIT ?2");
  const Statement clear = prepare_statement(db_, "DELETE FROM usage_minutes WHERE minute = ?1");
  const Statement fill = prepare_statement(
      db_, std::string("INSERT INTO usage_minutes SELECT ?1, model, tenant_id, deployment, ") +
               kSumColumns + " FROM (SELECT model, tenant_id, " + kDeploymentOfRequest +
               " AS deployment, " + kRequestSums +
               " FROM token_usage WHERE ts >= ?1 AND ts < ?1 + 60000) GROUP BY model, "
               "tenant_id, deployment");
  // One transaction holds the recomputation and the mark, so no write slips between them.
  const Statement unmark = prepare_statement(db_, "DELETE FROM usage_marks WHERE minute = ?1");
  if (!marks || !clear || !fill || !unmark) return fail();
  sqlite3_bind_int64(marks.get(), 1, marked_before_ms);
  sqlite3_bind_int64(marks.get(), 2, static_cast<std::int64_t>(limit));
  std::vector<std::int64_t> minutes;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(marks.get())) == SQLITE_ROW)
    minutes.push_back(sqlite3_column_int64(marks.get(), 0));
  if (rc != SQLITE_DONE) return fail();
  for (const std::int64_t minute : minutes) {
    for (sqlite3_stmt* s : {clear.get(), fill.get(), unmark.get()}) {
      sqlite3_reset(s);
      sqlite3_bind_int64(s, 1, minute);
      if (sqlite3_step(s) != SQLITE_DONE) return fail();
    }
  }
  if (auto r = exec("COMMIT"); !r) {
    exec("ROLLBACK");
    return Error::retryable(r.error().message);
  }
  return minutes.size();
}

Result<std::vector<query::UsageMinute>> SqliteStore::usage_minutes(std::int64_t from_ms,
                                                                   std::int64_t to_ms) {
  const std::lock_guard lock(mutex_);
  const Statement s = prepare_statement(
      db_,
      "SELECT minute, model, tenant_id, deployment, requests, input_tokens, output_tokens, "
      "cost_usd, cost_utilization_usd, cost_energy_usd, gpu_seconds, energy_j, priced_requests "
      "FROM usage_minutes WHERE minute >= ?1 AND minute < ?2 ORDER BY minute, model, tenant_id, "
      "deployment");
  if (!s) return Error::retryable(error_message());
  sqlite3_bind_int64(s.get(), 1, from_ms);
  sqlite3_bind_int64(s.get(), 2, to_ms);
  std::vector<query::UsageMinute> rows;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    sqlite3_stmt* r = s.get();
    const auto text = [&](int column) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(r, column));
      return std::string(p != nullptr ? p : "");
    };
    rows.push_back({.minute_ms = sqlite3_column_int64(r, 0),
                    .model = text(1),
                    .tenant_id = text(2),
                    .deployment = text(3),
                    .requests = sqlite3_column_int64(r, 4),
                    .input_tokens = sqlite3_column_int64(r, 5),
                    .output_tokens = sqlite3_column_int64(r, 6),
                    .cost_usd = sqlite3_column_double(r, 7),
                    .cost_utilization_usd = sqlite3_column_double(r, 8),
                    .cost_energy_usd = sqlite3_column_double(r, 9),
                    .gpu_seconds = sqlite3_column_double(r, 10),
                    .energy_j = sqlite3_column_double(r, 11),
                    .priced_requests = sqlite3_column_int64(r, 12)});
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return rows;
}

Result<std::vector<std::int64_t>> SqliteStore::marked_usage_minutes() {
  const std::lock_guard lock(mutex_);
  const Statement s = prepare_statement(db_, "SELECT minute FROM usage_marks ORDER BY minute");
  if (!s) return Error::retryable(error_message());
  std::vector<std::int64_t> minutes;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW)
    minutes.push_back(sqlite3_column_int64(s.get(), 0));
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return minutes;
}

Result<std::string> SqliteStore::usage_json(const UsageQuery& query) {
  const std::lock_guard lock(mutex_);
  const query::UsagePlan plan =
      query::plan_usage(query.from ? std::optional(unix_ms(*query.from)) : std::nullopt,
                        query.to ? std::optional(unix_ms(*query.to)) : std::nullopt);
  const bool by_tenant = query.group_by == "tenant";
  const bool by_deployment = query.group_by == "deployment";
  const std::string rolled_key = by_tenant ? "tenant_id" : by_deployment ? "deployment" : "model";
  const std::string request_key = by_tenant       ? "tenant_id"
                                  : by_deployment ? kDeploymentOfRequest
                                                  : "model";
  const std::string tenants = tenant_filter(query.tenants, "tenant_id", 7);
  // Rolled minutes less the marked ones, then the requests of each edge and of each marked
  // minute: every part reads an index range (minute, or ts), never the whole range's requests.
  const std::string requests = "SELECT " + request_key + " AS key, " + kRequestSums;
  const std::string sql =
      "WITH marked AS (SELECT minute FROM usage_marks WHERE minute >= ?1 AND minute < ?2) "
      "SELECT key, " +
      std::string(kSumColumns) + " FROM (SELECT " + rolled_key +
      " AS key, requests, input_tokens, output_tokens, cost_usd, cost_utilization_usd, "
      "cost_energy_usd, gpu_seconds, energy_j, priced_requests FROM usage_minutes WHERE "
      "minute >= ?1 AND minute < ?2 AND minute NOT IN marked" +
      tenants + " UNION ALL " + requests + " FROM token_usage WHERE ts >= ?3 AND ts < ?4" +
      tenants + " UNION ALL " + requests + " FROM token_usage WHERE ts >= ?5 AND ts < ?6" +
      tenants + " UNION ALL " + requests +
      " FROM marked JOIN token_usage ON ts >= marked.minute AND ts < marked.minute + 60000" +
      tenants + ") GROUP BY key ORDER BY key";
  const Statement s = prepare_statement(db_, sql);
  if (!s) return Error::retryable(error_message());
  sqlite3_bind_int64(s.get(), 1, plan.rolled_from_ms);
  sqlite3_bind_int64(s.get(), 2, plan.rolled_to_ms);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto [from, to] = i < plan.edges.size() ? plan.edges[i] : std::pair{0L, 0L};
    sqlite3_bind_int64(s.get(), static_cast<int>(3 + 2 * i), from);
    sqlite3_bind_int64(s.get(), static_cast<int>(4 + 2 * i), to);
  }
  if (query.tenants) {
    for (std::size_t i = 0; i < query.tenants->size(); ++i) {
      bind_text(s.get(), static_cast<int>(i) + 7, (*query.tenants)[i]);
    }
  }
  JsonWriter json;
  json.begin_array();
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    const auto integer = [&](int column) {
      return static_cast<std::int64_t>(sqlite3_column_int64(s.get(), column));
    };
    const auto* key = reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0));
    query::write_usage_row(json, {.key = key != nullptr ? key : "",
                                  .requests = integer(1),
                                  .input_tokens = integer(2),
                                  .output_tokens = integer(3),
                                  .cost_usd = sqlite3_column_double(s.get(), 4),
                                  .cost_utilization_usd = sqlite3_column_double(s.get(), 5),
                                  .cost_energy_usd = sqlite3_column_double(s.get(), 6),
                                  .gpu_seconds = sqlite3_column_double(s.get(), 7),
                                  .energy_j = sqlite3_column_double(s.get(), 8),
                                  .priced_requests = integer(9)});
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  json.end_array();
  return json.take();
}

}  // namespace telemetryd::sqlite
