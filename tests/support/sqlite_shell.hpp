#pragma once
// A second connection to a SQLite file, as an operator's sqlite3 shell would open it: statements
// and single numbers, outside the store under test. Header-only: it REQUIREs, so it lives with
// Catch2.

#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

namespace test_support {

class SqliteShell {
 public:
  explicit SqliteShell(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~SqliteShell() { sqlite3_close(db_); }
  SqliteShell(const SqliteShell&) = delete;
  SqliteShell& operator=(const SqliteShell&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
    INFO(sql << ": " << (error ? error : ""));
    sqlite3_free(error);
    REQUIRE(rc == SQLITE_OK);
  }
  std::int64_t integer(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr);
    INFO(sql << ": " << sqlite3_errmsg(db_));
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const std::int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace test_support
