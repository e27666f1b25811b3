// The SQLite store's usage rollups (query/usage_rollup.hpp): the marks written with the
// requests and costs, the roll-up that recomputes a marked minute and then its hour, and
// /v1/usage answered from hour rows, minute rows and requests as plan_usage_reads splits it.

#include <set>
#include <string>

#include "cost/cost_model.hpp"
#include "query/answer_rows.hpp"
#include "query/usage_rollup.hpp"
#include "sqlite/sqlite_store.hpp"
#include "sqlite/statement.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::sqlite {

namespace {

// The sums of one request as the rollups and the answers add them: requests, tokens, then the
// cost block's, from their columns (NULL until priced: total() skips the nulls of unpriced
// requests; amount_usd is the amortized cost, so a request with one is priced). No JSON is
// parsed (SqliteStore::add_cost_columns).
constexpr const char* kRequestSums =
    "1 AS requests, input_tokens, output_tokens, amount_usd AS cost_usd, cost_utilization_usd, "
    "cost_energy_usd, cost_gpu_seconds AS gpu_seconds, cost_energy_j AS energy_j, "
    "amount_usd IS NOT NULL AS priced_requests";

constexpr const char* kDeploymentOfRequest = "coalesce(json_extract(doc, '$.deployment'), '')";

// The columns of a rollup row after its start and key, in UsageRollupRow's order.
constexpr const char* kSumColumns =
    "sum(requests), sum(input_tokens), sum(output_tokens), total(cost_usd), "
    "total(cost_utilization_usd), total(cost_energy_usd), total(gpu_seconds), total(energy_j), "
    "sum(priced_requests)";

void bind_text(sqlite3_stmt* s, int index, std::string_view text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// ` AND tenant_id IN (?3, ...)`; nothing for every tenant (nullopt), and a filter that matches
// nothing for an empty list.
std::string tenant_filter(const std::optional<std::vector<std::string>>& tenants) {
  if (!tenants) return {};
  if (tenants->empty()) return " AND 0";
  std::string sql = " AND tenant_id IN (";
  for (std::size_t i = 0; i < tenants->size(); ++i)
    sql += (i ? ", ?" : "?") + std::to_string(i + 3);
  return sql + ")";
}

// The sums of a statement's columns from `first` on.
query::UsageRow sums_at(sqlite3_stmt* s, int first) {
  return {.requests = sqlite3_column_int64(s, first),
          .input_tokens = sqlite3_column_int64(s, first + 1),
          .output_tokens = sqlite3_column_int64(s, first + 2),
          .cost_usd = sqlite3_column_double(s, first + 3),
          .cost_utilization_usd = sqlite3_column_double(s, first + 4),
          .cost_energy_usd = sqlite3_column_double(s, first + 5),
          .gpu_seconds = sqlite3_column_double(s, first + 6),
          .energy_j = sqlite3_column_double(s, first + 7),
          .priced_requests = sqlite3_column_int64(s, first + 8)};
}

std::string text_at(sqlite3_stmt* s, int column) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, column));
  return p != nullptr ? p : "";
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
  // One transaction holds the recomputations and the marks, so no write slips between them.
  const std::vector<std::string> per_minute{
      "DELETE FROM usage_minutes WHERE minute = ?1",
      std::string("INSERT INTO usage_minutes SELECT ?1, model, tenant_id, deployment, ") +
          kSumColumns + " FROM (SELECT model, tenant_id, " + kDeploymentOfRequest +
          " AS deployment, " + kRequestSums +
          " FROM token_usage WHERE ts >= ?1 AND ts < ?1 + 60000) GROUP BY model, tenant_id, "
          "deployment",
      "DELETE FROM usage_marks WHERE minute = ?1"};
  const std::vector<std::string> per_hour{
      "DELETE FROM usage_hours WHERE hour = ?1",
      std::string("INSERT INTO usage_hours SELECT ?1, model, tenant_id, deployment, ") +
          kSumColumns +
          " FROM usage_minutes WHERE minute >= ?1 AND minute < ?1 + 3600000 GROUP BY model, "
          "tenant_id, deployment"};
  if (!marks) return fail();
  sqlite3_bind_int64(marks.get(), 1, marked_before_ms);
  sqlite3_bind_int64(marks.get(), 2, static_cast<std::int64_t>(limit));
  std::vector<std::int64_t> minutes;
  std::set<std::int64_t> hours;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(marks.get())) == SQLITE_ROW) {
    minutes.push_back(sqlite3_column_int64(marks.get(), 0));
    hours.insert(query::hour_of(minutes.back()));
  }
  if (rc != SQLITE_DONE) return fail();
  const auto run_each = [&](const std::vector<std::string>& sqls, const auto& starts) {
    for (const std::string& sql : sqls) {
      const Statement s = prepare_statement(db_, sql);
      if (!s) return false;
      for (const std::int64_t start : starts) {
        sqlite3_reset(s.get());
        sqlite3_bind_int64(s.get(), 1, start);
        if (sqlite3_step(s.get()) != SQLITE_DONE) return false;
      }
    }
    return true;
  };
  // Each hour once, from its minutes as they now are.
  if (!run_each(per_minute, minutes) || !run_each(per_hour, hours)) return fail();
  if (auto r = exec("COMMIT"); !r) {
    exec("ROLLBACK");
    return Error::retryable(r.error().message);
  }
  return minutes.size();
}

Result<bool> SqliteStore::trim_usage_rollups(std::int64_t before_ms) {
  const std::lock_guard lock(mutex_);
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return Error::retryable(r.error().message);
  // The minutes left of the hour the cut falls in are marked before that hour's rows go, in the
  // same transaction: the hour is then read from its minutes until the roll-up makes it again.
  const std::int64_t cut_hour = query::hour_of(before_ms);
  for (const char* sql :
       {"INSERT INTO usage_marks (minute, marked_at, nonce) SELECT DISTINCT minute, 0, 0 FROM "
        "usage_minutes WHERE minute >= ?2 AND minute < ?2 + 3600000 AND minute + 60000 > ?1 ON "
        "CONFLICT(minute) DO NOTHING",
        "DELETE FROM usage_hours WHERE hour < ?1", "DELETE FROM usage_minutes WHERE minute < ?1",
        "DELETE FROM usage_marks WHERE minute + 60000 <= ?1"}) {
    const Statement s = prepare_statement(db_, sql);
    if (s) {
      sqlite3_bind_int64(s.get(), 1, before_ms);
      sqlite3_bind_int64(s.get(), 2, cut_hour);
    }
    if (!s || sqlite3_step(s.get()) != SQLITE_DONE) {
      const std::string message = error_message();
      exec("ROLLBACK");
      return Error::retryable(path_ + ": " + message);
    }
  }
  if (auto r = exec("COMMIT"); !r) {
    exec("ROLLBACK");
    return Error::retryable(r.error().message);
  }
  return true;
}

Result<std::vector<query::UsageRollupRow>> SqliteStore::rollup_rows(const char* table,
                                                                    const char* start,
                                                                    std::int64_t from_ms,
                                                                    std::int64_t to_ms) {
  const std::lock_guard lock(mutex_);
  const std::string columns =
      "model, tenant_id, deployment, requests, input_tokens, output_tokens, cost_usd, "
      "cost_utilization_usd, cost_energy_usd, gpu_seconds, energy_j, priced_requests";
  const Statement s =
      prepare_statement(db_, std::string("SELECT ") + start + ", " + columns + " FROM " + table +
                                 " WHERE " + start + " >= ?1 AND " + start + " < ?2 ORDER BY " +
                                 start + ", model, tenant_id, deployment");
  if (!s) return Error::retryable(error_message());
  sqlite3_bind_int64(s.get(), 1, from_ms);
  sqlite3_bind_int64(s.get(), 2, to_ms);
  std::vector<query::UsageRollupRow> rows;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    sqlite3_stmt* r = s.get();
    query::UsageRollupRow& row =
        rows.emplace_back(query::UsageRollupRow{.start_ms = sqlite3_column_int64(r, 0),
                                                .model = text_at(r, 1),
                                                .tenant_id = text_at(r, 2),
                                                .deployment = text_at(r, 3)});
    query::add_sums(row, sums_at(r, 4));
  }
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  return rows;
}

Result<std::vector<query::UsageRollupRow>> SqliteStore::usage_minutes(std::int64_t from_ms,
                                                                      std::int64_t to_ms) {
  return rollup_rows("usage_minutes", "minute", from_ms, to_ms);
}

Result<std::vector<query::UsageRollupRow>> SqliteStore::usage_hours(std::int64_t from_ms,
                                                                    std::int64_t to_ms) {
  return rollup_rows("usage_hours", "hour", from_ms, to_ms);
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
  const std::optional<std::int64_t> from =
      query.from ? std::optional(unix_ms(*query.from)) : std::nullopt;
  const std::optional<std::int64_t> to =
      query.to ? std::optional(unix_ms(*query.to)) : std::nullopt;
  // One read transaction: the marks and the rows they qualify are one snapshot.
  if (auto r = exec("BEGIN"); !r) return Error::retryable(r.error().message);
  struct Rollback {
    SqliteStore* store;
    ~Rollback() { store->exec("ROLLBACK"); }
  } end_read{this};

  const Statement marks =
      prepare_statement(db_, "SELECT minute FROM usage_marks WHERE minute >= ?1 AND minute < ?2");
  if (!marks) return Error::retryable(error_message());
  sqlite3_bind_int64(marks.get(), 1, from ? query::minute_of(*from) : INT64_MIN);
  sqlite3_bind_int64(marks.get(), 2, to.value_or(INT64_MAX));
  std::vector<std::int64_t> marked;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(marks.get())) == SQLITE_ROW)
    marked.push_back(sqlite3_column_int64(marks.get(), 0));
  if (rc != SQLITE_DONE) return Error::retryable(error_message());
  const query::UsageReads reads = query::plan_usage_reads(from, to, std::move(marked));

  const bool by_tenant = query.group_by == "tenant";
  const bool by_deployment = query.group_by == "deployment";
  const std::string rolled_key = by_tenant ? "tenant_id" : by_deployment ? "deployment" : "model";
  const std::string request_key = by_tenant       ? "tenant_id"
                                  : by_deployment ? kDeploymentOfRequest
                                                  : "model";
  const std::string tenants = tenant_filter(query.tenants);
  const std::string rolled_sums =
      ", requests, input_tokens, output_tokens, cost_usd, cost_utilization_usd, "
      "cost_energy_usd, gpu_seconds, energy_j, priced_requests FROM ";
  // Each part one index range (hour, minute or ts) per range of the plan.
  const struct Part {
    std::string sql;
    const std::vector<query::TimeRange>& ranges;
  } parts[] = {
      {"SELECT " + rolled_key + " AS key" + rolled_sums +
           "usage_hours WHERE hour >= ?1 AND hour < ?2",
       reads.hours},
      {"SELECT " + rolled_key + " AS key" + rolled_sums +
           "usage_minutes WHERE minute >= ?1 AND minute < ?2",
       reads.minutes},
      {"SELECT " + request_key + " AS key, " + kRequestSums +
           " FROM token_usage WHERE ts >= ?1 AND ts < ?2",
       reads.requests},
  };
  query::UsageTotals totals;
  for (const Part& part : parts) {
    if (part.ranges.empty()) continue;
    const Statement s =
        prepare_statement(db_, "SELECT key, " + std::string(kSumColumns) + " FROM (" + part.sql +
                                   tenants + ") GROUP BY key");
    if (!s) return Error::retryable(error_message());
    if (query.tenants) {
      for (std::size_t i = 0; i < query.tenants->size(); ++i) {
        bind_text(s.get(), static_cast<int>(i) + 3, (*query.tenants)[i]);
      }
    }
    for (const auto& [range_from, range_to] : part.ranges) {
      sqlite3_reset(s.get());
      sqlite3_bind_int64(s.get(), 1, range_from);
      sqlite3_bind_int64(s.get(), 2, range_to);
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        totals.add(text_at(s.get(), 0), sums_at(s.get(), 1));
      }
      if (rc != SQLITE_DONE) return Error::retryable(error_message());
    }
  }
  return totals.json();
}

}  // namespace telemetryd::sqlite
