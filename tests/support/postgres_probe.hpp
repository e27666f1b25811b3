#pragma once
// The PostgreSQL server scripts/services.sh started, seen from the tests with libpq alone (not
// through the sink under test): a database of its own per test, row counts, and the settings a
// processor under test needs. Header-only: it REQUIREs, so it lives with Catch2.

#include <libpq-fe.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"

namespace test_support {

// From <state>/env (TELEMETRYD_TEST_POSTGRES_*); a missing one fails the test.
struct PostgresServer {
  std::string host = required_env("TELEMETRYD_TEST_POSTGRES_HOST");
  std::string port = required_env("TELEMETRYD_TEST_POSTGRES_PORT");
  std::string user = required_env("TELEMETRYD_TEST_POSTGRES_USER");
  std::string password = required_env("TELEMETRYD_TEST_POSTGRES_PASSWORD");
  std::string password_file = required_env("TELEMETRYD_TEST_POSTGRES_PASSWORD_FILE");
  std::string database = required_env("TELEMETRYD_TEST_POSTGRES_DATABASE");
};

// One query on a fresh connection to `database`: the first cell of the first row ("" when
// none), or nullopt when the connection or the query failed (the message in `error`).
inline std::optional<std::string> postgres_query(const PostgresServer& server,
                                                 const std::string& database,
                                                 const std::string& sql,
                                                 std::string* error = nullptr) {
  const char* keywords[] = {"host", "port", "user", "password", "dbname", "connect_timeout",
                            nullptr};
  const char* values[] = {server.host.c_str(),
                          server.port.c_str(),
                          server.user.c_str(),
                          server.password.c_str(),
                          database.c_str(),
                          "5",
                          nullptr};
  PGconn* conn = PQconnectdbParams(keywords, values, 0);
  std::optional<std::string> out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(r);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      out = PQntuples(r) > 0 && PQnfields(r) > 0 ? std::string(PQgetvalue(r, 0, 0)) : "";
    } else if (error) {
      *error = PQresultErrorMessage(r);
    }
    PQclear(r);
  } else if (error) {
    *error = PQerrorMessage(conn);
  }
  PQfinish(conn);
  return out;
}

// A database of its own, dropped at the end (FORCE: a processor under test may still hold a
// connection).
struct PostgresDatabase {
  PostgresServer server;
  std::string name =
      "pgitest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);

  PostgresDatabase() { create(); }
  explicit PostgresDatabase(std::string database) : name(std::move(database)) { create(); }
  ~PostgresDatabase() {
    postgres_query(server, server.database, "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  }
  PostgresDatabase(const PostgresDatabase&) = delete;
  PostgresDatabase& operator=(const PostgresDatabase&) = delete;

  void create() {
    std::string error;
    const bool created =
        postgres_query(server, server.database, "CREATE DATABASE " + name, &error).has_value();
    INFO(error);
    REQUIRE(created);
  }

  // Rows of a table, or -1 when it cannot be counted.
  std::int64_t count(const std::string& table, const std::string& where = "") const {
    const auto n = postgres_query(
        server, name, "SELECT count(*) FROM " + table + (where.empty() ? "" : " WHERE " + where));
    return n ? std::atoll(n->c_str()) : -1;
  }

  // `--set` values that point a processor at this database, the password from its file.
  std::vector<std::string> processor_sets() const {
    return {"processor.sinks=[postgresql]",
            "postgresql.host=" + server.host,
            "postgresql.port=" + server.port,
            "postgresql.user=" + server.user,
            "postgresql.password_file=" + server.password_file,
            "postgresql.database=" + name,
            "postgresql.check_interval_ms=500"};
  }
};

}  // namespace test_support
