// Retention of the embedded store: deletes by age and by size in small batches, each its own
// statement (and so its own transaction) under the store's mutex, so the processor thread's
// writes and the API's queries wait for one batch at most, never for a whole pass.

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <thread>
#include <utility>

#include "sqlite/sqlite_store.hpp"
#include "sqlite/statement.hpp"

namespace telemetryd::sqlite {

namespace {

void bind_all(sqlite3_stmt* s, std::initializer_list<std::int64_t> args) {
  int index = 1;
  for (const std::int64_t arg : args) sqlite3_bind_int64(s, index++, arg);
}

// Both event tables share one time horizon: a cutoff applies to each, so usage is never kept
// without the GPU samples of its time or the other way round.
constexpr std::array<const char*, 2> kEventTables{"gpu_metrics", "token_usage"};

}  // namespace

Result<std::optional<std::int64_t>> SqliteStore::query_int(
    const std::string& sql, std::initializer_list<std::int64_t> args) {
  const std::lock_guard lock(mutex_);
  const Statement s = prepare_statement(db_, sql);
  if (!s) return Error::retryable(path_ + ": " + error_message());
  bind_all(s.get(), args);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<std::int64_t>();
  if (rc != SQLITE_ROW) return Error::retryable(path_ + ": " + error_message());
  if (sqlite3_column_type(s.get(), 0) == SQLITE_NULL) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(sqlite3_column_int64(s.get(), 0));
}

Result<std::int64_t> SqliteStore::timed_change(const std::string& sql,
                                               std::initializer_list<std::int64_t> args,
                                               RetentionPass& pass) {
  const std::lock_guard lock(mutex_);
  const auto started = std::chrono::steady_clock::now();
  const Statement s = prepare_statement(db_, sql);
  if (!s) return Error::retryable(path_ + ": " + error_message());
  bind_all(s.get(), args);
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return Error::retryable(path_ + ": " + error_message());
  const std::int64_t changed = sqlite3_changes(db_);
  pass.batch_seconds.push_back(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return changed;
}

Result<RetentionPass> SqliteStore::enforce_retention(const RetentionSettings& settings,
                                                     std::int64_t now_ms) {
  RetentionPass pass;
  // Each statement after the first waits a little first: the writer waiting on the mutex
  // gets its turn (std::mutex is not fair).
  const auto change = [&](const std::string& sql,
                          std::initializer_list<std::int64_t> args) -> Result<std::int64_t> {
    if (!pass.batch_seconds.empty()) std::this_thread::sleep_for(settings.pause);
    return timed_change(sql, args, pass);
  };
  const auto budget_spent = [&] {
    const bool spent = static_cast<int>(pass.batch_seconds.size()) >= settings.max_batches;
    pass.more = pass.more || spent;
    return spent;
  };

  // Deletes everything older than `before`, oldest first (the ts indexes), batch by batch; the
  // cost windows starting before it and the placements that serve no later window go with it.
  // False when the pass ran out of batches first.
  const auto trim = [&](std::int64_t before) -> Result<bool> {
    // The rollups first, in one step: an answer never reads a rollup of requests a pass
    // deleted, even when the pass stops before it is done.
    if (budget_spent()) return false;
    if (Result<bool> rollups = trim_usage_rollups(before); !rollups) return rollups.error();
    for (const char* table : kEventTables) {
      const std::string sql = std::string("DELETE FROM ") + table +
                              " WHERE rowid IN (SELECT rowid FROM " + table +
                              " WHERE ts < ?1 ORDER BY ts LIMIT ?2)";
      std::int64_t& deleted = table == kEventTables[0] ? pass.gpu_metrics : pass.token_usage;
      for (;;) {
        if (budget_spent()) return false;
        Result<std::int64_t> n = change(sql, {before, settings.batch_rows});
        if (!n) return n.error();
        deleted += n.value();
        if (n.value() < settings.batch_rows) break;
      }
    }
    // A GPU whose latest sample is gone has no sample left: it leaves the latest view too, as
    // it left /v1/devices when that read the history.
    if (Result<std::int64_t> latest = change("DELETE FROM gpu_latest WHERE ts < ?1", {before});
        !latest) {
      return latest.error();
    }
    Result<std::int64_t> windows = change("DELETE FROM cost_windows WHERE start < ?1", {before});
    if (!windows) return windows.error();
    pass.cost_windows += windows.value();
    Result<std::int64_t> placements =
        change("DELETE FROM placements WHERE last_seen < ?1", {before - settings.placement_ttl_ms});
    if (!placements) return placements.error();
    pass.placements += placements.value();
    pass.cutoff_ms = std::max(pass.cutoff_ms, before);
    return true;
  };

  const auto sizes = [&]() -> Result<std::array<std::int64_t, 3>> {
    std::array<std::int64_t, 3> out{};  // page_count, freelist_count, page_size
    const std::array<const char*, 3> pragmas{"PRAGMA page_count", "PRAGMA freelist_count",
                                             "PRAGMA page_size"};
    for (std::size_t i = 0; i < pragmas.size(); ++i) {
      Result<std::optional<std::int64_t>> v = query_int(pragmas[i], {});
      if (!v) return v.error();
      out[i] = v.value().value_or(0);
    }
    return out;
  };

  if (settings.max_age_ms > 0) {
    std::int64_t before = now_ms - settings.max_age_ms;
    // The first window kept keeps the GPU samples its pricing reads before its start.
    Result<std::optional<std::int64_t>> first_kept =
        query_int("SELECT min(start) FROM cost_windows WHERE start >= ?1", {before});
    if (!first_kept) return first_kept.error();
    if (first_kept.value()) before = std::min(before, *first_kept.value() - settings.lookback_ms);
    Result<bool> done = trim(before);
    if (!done) return done.error();
  }

  while (settings.max_bytes > 0 && !pass.more) {
    Result<std::array<std::int64_t, 3>> size = sizes();
    if (!size) return size.error();
    const auto [pages, free_pages, page_size] = size.value();
    if ((pages - free_pages) * page_size <= settings.max_bytes) break;
    // Never the recent data, nor a window the pricer has still to read.
    std::int64_t protect = now_ms - settings.keep_recent_ms;
    Result<std::optional<std::int64_t>> pending =
        query_int("SELECT min(start) FROM cost_windows", {});
    if (!pending) return pending.error();
    if (pending.value()) protect = std::min(protect, *pending.value() - settings.lookback_ms);
    // The next step: past the batch_rows-th oldest event of the table reaching further.
    std::int64_t step = INT64_MIN;
    for (const char* table : kEventTables) {
      Result<std::optional<std::int64_t>> nth =
          query_int(std::string("SELECT coalesce((SELECT ts FROM ") + table +
                        " ORDER BY ts LIMIT 1 OFFSET ?1), (SELECT max(ts) FROM " + table + "))",
                    {settings.batch_rows - 1});
      if (!nth) return nth.error();
      if (nth.value()) step = std::max(step, *nth.value() + 1);
    }
    const std::int64_t before = std::min(step, protect);
    const std::int64_t deleted = pass.gpu_metrics + pass.token_usage;
    Result<bool> done = step == INT64_MIN ? Result<bool>(true) : trim(before);
    if (!done) return done.error();
    if (!done.value()) break;
    if (pass.gpu_metrics + pass.token_usage == deleted) {
      pass.over_size = true;  // what is left is protected (or not events at all)
      break;
    }
  }

  // Files created with auto_vacuum=INCREMENTAL give freed pages back, a few at a time; older
  // files reuse them (a full VACUUM would hold the database for minutes).
  Result<std::optional<std::int64_t>> auto_vacuum = query_int("PRAGMA auto_vacuum", {});
  if (!auto_vacuum) return auto_vacuum.error();
  while (auto_vacuum.value().value_or(0) == 2) {
    Result<std::optional<std::int64_t>> free_pages = query_int("PRAGMA freelist_count", {});
    if (!free_pages) return free_pages.error();
    if (free_pages.value().value_or(0) == 0 || budget_spent()) break;
    Result<std::int64_t> vacuumed =
        change("PRAGMA incremental_vacuum(" + std::to_string(settings.vacuum_pages) + ")", {});
    if (!vacuumed) return vacuumed.error();
  }

  Result<std::array<std::int64_t, 3>> size = sizes();
  if (!size) return size.error();
  pass.file_bytes = size.value()[0] * size.value()[2];
  pass.free_bytes = size.value()[1] * size.value()[2];
  return pass;
}

}  // namespace telemetryd::sqlite
