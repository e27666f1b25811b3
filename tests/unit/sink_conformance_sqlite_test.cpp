// The sink conformance suite (tests/support/sink_conformance.hpp) on the embedded `all` role's
// SQLite store, on a fresh file per check. SQLite has no server: "away" is a file another
// connection holds locked (the store gives up after its 5 s busy timeout), and it refuses no
// decoded event.

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "sqlite/sqlite_store.hpp"
#include "support/sink_conformance.hpp"
#include "support/sqlite_shell.hpp"
#include "support/temp_dir.hpp"

using namespace telemetryd;

namespace {

class SqliteHarness final : public test_support::conformance::SinkHarness {
 public:
  static constexpr test_support::conformance::SinkTraits kTraits{
      .name = "sqlite", .registered = false, .refuses_per_event = false};

  Store& store() override { return store_; }
  std::int64_t stored(events::EventKind kind) override {
    return test_support::SqliteShell(path_).integer("SELECT count(*) FROM " +
                                                    test_support::conformance::kind_name(kind));
  }
  std::optional<std::int64_t> latest_rows() override {
    return test_support::SqliteShell(path_).integer("SELECT count(*) FROM gpu_latest");
  }
  // A file with the schema, held by another connection's exclusive transaction until the
  // harness goes.
  std::unique_ptr<Store> unreachable() override {
    const std::string locked = (dir_.path / "locked.sqlite3").string();
    {
      sqlite::SqliteStore schema(locked);
      REQUIRE(schema.prepare(events::GpuCatalog{}));
    }
    locker_ = std::make_unique<test_support::SqliteShell>(locked);
    locker_->exec("BEGIN EXCLUSIVE");
    return std::make_unique<sqlite::SqliteStore>(locked);
  }
  bool end_outage() override {
    locker_.reset();  // closing the connection ends its transaction
    return true;
  }

 private:
  test_support::TempDir dir_{"conformance"};
  std::string path_ = (dir_.path / "sink.sqlite3").string();
  sqlite::SqliteStore store_{path_};
  std::unique_ptr<test_support::SqliteShell> locker_;
};

}  // namespace

TELEMETRYD_SINK_CONFORMANCE(SqliteHarness, "[conformance][sqlite]");
