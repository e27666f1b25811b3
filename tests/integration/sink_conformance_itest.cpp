// The sink conformance suite (tests/support/sink_conformance.hpp) on the processor's registered
// sinks (mongodb, influxdb, postgresql) against the real servers scripts/services.sh starts: each
// store is built by the sink registry from a processor role config, as the processor builds it, on
// a database of its own per check. A missing server address (TELEMETRYD_TEST_*) fails every check.

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "app/roles.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/influx_probe.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"
#include "support/postgres_probe.hpp"
#include "support/sink_conformance.hpp"

using namespace telemetryd;
using test_support::conformance::SinkHarness;
using test_support::conformance::SinkTraits;

namespace {

// A registered sink on a database of its own: its config for the live server or a dead one
// (nothing listens on port 1), and the store the registry builds from the live one.
class RegisteredSink : public SinkHarness {
 public:
  struct Settings {
    const char* name;               // in processor.sinks
    const char* database_key;       // e.g. mongodb.database: set to `database`
    std::vector<std::string> live;  // the --set overrides for the live server
    std::vector<std::string> dead;  // the same sink on a dead one (nothing listens on port 1)
  };
  explicit RegisteredSink(Settings settings) : settings_(std::move(settings)) {}

  Store& store() override {
    if (!store_) store_ = info().create(config(true));
    return *store_;
  }
  std::unique_ptr<Store> unreachable() override { return info().create(config(false)); }
  Config config(bool live) override {
    std::vector<std::string> overrides = live ? settings_.live : settings_.dead;
    overrides.push_back("processor.sinks=[" + std::string(settings_.name) + "]");
    overrides.push_back(std::string(settings_.database_key) + "=" + database);
    return load_config({.role = "processor", .overrides = overrides}, app::role_catalog());
  }

 protected:
  // Unique per process and check; `_` only, which every server takes in a database name.
  const std::string database = [] {
    std::string name = test_support::unique_topic("conformance");
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
  }();

 private:
  const SinkInfo& info() const {
    const SinkInfo* info = SinkRegistry::instance().find(settings_.name);
    REQUIRE(info != nullptr);
    return *info;
  }
  Settings settings_;
  std::unique_ptr<Store> store_;
};

class MongoHarness final : public RegisteredSink {
 public:
  static constexpr SinkTraits kTraits{.name = "mongodb"};
  MongoHarness()
      : RegisteredSink({"mongodb",
                        "mongodb.database",
                        {"mongodb.uri=" + uri()},
                        {"mongodb.uri=mongodb://127.0.0.1:1/"}}) {}
  ~MongoHarness() override { test_support::drop_database(uri(), database); }

  std::int64_t stored(events::EventKind kind) override {
    return test_support::count_documents(uri(), database,
                                         test_support::conformance::kind_name(kind));
  }
  std::optional<std::int64_t> latest_rows() override {
    return test_support::count_documents(uri(), database, "gpu_latest");
  }
  static std::string uri() { return test_support::required_env("TELEMETRYD_TEST_MONGO_URI"); }
  // libmongoc refuses a `$`-prefixed key in a document, so the store does, per document.
  events::DecodedEvent refusable() override {
    return test_support::conformance::dollar_key_event();
  }
};

class InfluxHarness final : public RegisteredSink {
 public:
  static constexpr SinkTraits kTraits{.name = "influxdb",
                                      .reports_duplicates = false,
                                      .keeps_latest_view = false,
                                      .serves_queries = false,
                                      .keeps_usage_rollups = false};
  InfluxHarness()
      : RegisteredSink({"influxdb",
                        "influxdb.database",
                        {"influxdb.url=" + url()},
                        {"influxdb.url=http://127.0.0.1:1"}}) {}
  ~InfluxHarness() override { test_support::drop_influx_database(url(), database); }

  std::int64_t stored(events::EventKind kind) override {
    return static_cast<std::int64_t>(
        test_support::influx_points(url(), database, test_support::conformance::kind_name(kind)));
  }
  static std::string url() { return test_support::required_env("TELEMETRYD_TEST_INFLUXDB_URL"); }
  // A field's type is fixed per shard once written: another writer stored clock_mem_mhz as a
  // string (in the same shard, at the same time), so the event's integer is refused by the
  // server, in a partial write the store maps back to the event.
  events::DecodedEvent refusable() override {
    events::DecodedEvent event = test_support::conformance::clock_mem_mhz_event();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(event.time.time_since_epoch())
            .count();
    const test_support::HttpResult seeded = test_support::http_request(
        "127.0.0.1", test_support::port_of(url()), "POST", "/write?precision=ms&db=" + database,
        "gpu_metrics,gpu_uuid=GPU-other-writer clock_mem_mhz=\"legacy\" " + std::to_string(ms),
        "text/plain");
    INFO(seeded.status << " " << seeded.body << seeded.error);
    REQUIRE(seeded.status == 204);
    return event;
  }
};

class PostgresHarness final : public RegisteredSink {
 public:
  static constexpr SinkTraits kTraits{.name = "postgresql"};
  PostgresHarness()
      : RegisteredSink(
            {"postgresql",
             "postgresql.database",
             {"postgresql.host=" + server().host, "postgresql.port=" + server().port,
              "postgresql.user=" + server().user,
              "postgresql.password_file=" + server().password_file},
             {"postgresql.host=127.0.0.1", "postgresql.port=1", "postgresql.user=" + server().user,
              "postgresql.password_file=" + server().password_file}}) {}

  std::int64_t stored(events::EventKind kind) override {
    return db_.count(test_support::conformance::kind_name(kind));
  }
  std::optional<std::int64_t> latest_rows() override { return db_.count("gpu_latest"); }
  // jsonb cannot hold \u0000 (SQLSTATE 22P05): the server refuses that row alone.
  events::DecodedEvent refusable() override {
    return test_support::conformance::nul_escape_event();
  }

 private:
  static const test_support::PostgresServer& server() {
    static const test_support::PostgresServer s;
    return s;
  }
  test_support::PostgresDatabase db_{database};  // created here, dropped with the harness
};

}  // namespace

TELEMETRYD_SINK_CONFORMANCE(MongoHarness, "[conformance][mongo][itest]");
TELEMETRYD_SINK_CONFORMANCE(InfluxHarness, "[conformance][influx][itest]");
TELEMETRYD_SINK_CONFORMANCE(PostgresHarness, "[conformance][postgresql][itest]");
