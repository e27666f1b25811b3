#pragma once
// Prepared statements of the SQLite store, shared by its files (queries, retention).

#include <sqlite3.h>

#include <memory>
#include <string>

namespace telemetryd::sqlite {

struct StatementDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

// A prepared statement, or null when SQLite refused it (sqlite3_errmsg says why).
inline Statement prepare_statement(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
  return Statement(raw);
}

}  // namespace telemetryd::sqlite
