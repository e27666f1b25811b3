// GPU history: the step format and bucket arithmetic, the accumulator MongoStore uses, the
// SQLite store's GROUP BY against known samples, and the routes' parameters and answers over a
// scripted store.

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>
#include <thread>

#include "http/server.hpp"
#include "processor/query_routes.hpp"
#include "query/gpu_series.hpp"
#include "sqlite/sqlite_store.hpp"
#include "support/gpu_history_samples.hpp"
#include "support/http_client.hpp"

using namespace telemetryd;
using namespace telemetryd::processor;
using namespace std::chrono_literals;

TEST_CASE("buckets are aligned to the epoch, also before 1970", "[history]") {
  CHECK(query::bucket_start(0, 10000) == 0);
  CHECK(query::bucket_start(9999, 10000) == 0);
  CHECK(query::bucket_start(10000, 10000) == 10000);
  CHECK(query::bucket_start(1796378412345, 10000) == 1796378410000);
  CHECK(query::bucket_start(-1, 10000) == -10000);
  CHECK(query::bucket_start(-10000, 10000) == -10000);
  CHECK(query::bucket_start(-10001, 10000) == -20000);

  CHECK(query::bucket_count(0, 10000, 10000) == 1);  // [0, 10 s): one bucket
  CHECK(query::bucket_count(0, 10001, 10000) == 2);
  CHECK(query::bucket_count(5000, 15000, 10000) == 2);  // two partial buckets
  CHECK(query::bucket_count(0, 3600000, 1000) == 3600);
  CHECK(query::bucket_count(10, 10, 1000) == 0);
  CHECK(query::bucket_count(10, 5, 1000) == 0);
}

TEST_CASE("step: a positive whole number with a unit, or seconds", "[history]") {
  std::int64_t ms = 0;
  CHECK((query::parse_step("500ms", ms) && ms == 500));
  CHECK((query::parse_step("10s", ms) && ms == 10000));
  CHECK((query::parse_step("1m", ms) && ms == 60000));
  CHECK((query::parse_step("2h", ms) && ms == 7200000));
  CHECK((query::parse_step("1d", ms) && ms == 86400000));
  CHECK((query::parse_step("30", ms) && ms == 30000));
  CHECK((query::parse_step("999999999d", ms) && ms == 999999999LL * 86400000));
  for (const char* bad : {"", "0", "0s", "-1s", "1.5s", "s", "10 s", "10sec", "1M", "1000000000",
                          "ten", "1e3", "10s "}) {
    INFO(bad);
    CHECK_FALSE(query::parse_step(bad, ms));
  }
  CHECK(query::format_step(500) == "500ms");
  CHECK(query::format_step(1500) == "1500ms");
  CHECK(query::format_step(10000) == "10s");
  CHECK(query::format_step(90000) == "90s");
  CHECK(query::format_step(120000) == "2m");
  CHECK(query::format_step(3600000) == "1h");
  CHECK(query::format_step(172800000) == "2d");
}

TEST_CASE("the default step keeps at most 1000 points", "[history]") {
  const std::int64_t t0 = 1796378400000;  // aligned to every step of the ladder up to 1 h
  CHECK(query::default_step(t0, t0 + 60000) == 1000);        // 1 min: 1 s, 60 points
  CHECK(query::default_step(t0, t0 + 3600000) == 5000);      // 1 h: 5 s, 720 points
  CHECK(query::default_step(t0 + 1, t0 + 1000001) == 2000);  // 1000 s off the grid: 1001 at 1 s
  CHECK(query::default_step(t0, t0 + 86400000) == 120000);   // 1 day: 2 min, 720 points
  CHECK(query::default_step(t0, t0 + 30LL * 86400000) == 3600000);  // 30 days: 1 h, 720 points
  // Beyond the ladder, whole days: 2000 days from 10:00 touch 1001 two-day buckets.
  CHECK(query::default_step(t0, t0 + 2000LL * 86400000) == 3 * 86400000);
  for (const std::int64_t range : {1LL, 999LL, 1234567LL, 98765432LL, 40000LL * 86400000}) {
    INFO(range);
    const std::int64_t step = query::default_step(t0 + 7, t0 + 7 + range);
    CHECK(query::bucket_count(t0 + 7, t0 + 7 + range, step) <= query::kDefaultSeriesPoints);
  }
}

TEST_CASE("the accumulator averages per bucket, skipping absent fields", "[history]") {
  query::SeriesBuilder builder(10000);
  // Out of order, as a database without a sort returns them.
  builder.add_sample(1796378435000);
  builder.add_value(0, 0);
  builder.add_sample(1796378401000);
  builder.add_value(0, 10);
  builder.add_value(6, 40);  // activity.sm_active_percent
  builder.add_sample(1796378409999);
  builder.add_value(0, 60);
  builder.add_value(2, 60000000000);  // memory_used_bytes
  builder.add_sample(1796378404000);
  builder.add_value(0, 20);
  builder.add_value(2, 2000);
  const auto points = builder.take();
  REQUIRE(points.size() == 2);
  CHECK(points[0].bucket_ms == 1796378400000);
  CHECK(points[0].samples == 3);
  REQUIRE(points[0].fields[0]);
  CHECK(points[0].fields[0]->avg == 30);
  CHECK(points[0].fields[0]->max == 60);
  CHECK(points[0].fields[2]->avg == 30000001000);  // over the two samples that have it
  CHECK_FALSE(points[0].fields[1]);
  CHECK(points[1].bucket_ms == 1796378430000);
  CHECK(query::series_points_json(points) ==
        "[{\"ts\":\"2026-12-04T10:00:00.000Z\",\"samples\":3,"
        "\"utilization_gpu_percent\":{\"avg\":30,\"max\":60},"
        "\"memory_used_bytes\":{\"avg\":30000001000,\"max\":60000000000},"
        "\"activity\":{\"sm_active_percent\":{\"avg\":40,\"max\":40}}},"
        "{\"ts\":\"2026-12-04T10:00:30.000Z\",\"samples\":1,"
        "\"utilization_gpu_percent\":{\"avg\":0,\"max\":0}}]");
  CHECK(builder.take().empty());
  CHECK(query::series_points_json({}) == "[]");
}

namespace {
struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("telemetryd-history-" + std::to_string(getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};
}  // namespace

TEST_CASE("SQLite answers the known samples' buckets and latest devices exactly", "[history]") {
  TempDir dir;
  sqlite::SqliteStore store((dir.path / "h.sqlite3").string());
  REQUIRE(store.prepare(events::GpuCatalog{}));
  CHECK(store.devices_json().value() == "[]");
  const auto events = test_support::history_events();
  const auto written = store.write(test_support::stored(events));
  REQUIRE(written);
  CHECK(written.value().gpu_metrics_inserted == events.size());

  const auto series = store.gpu_series_json(test_support::history_query());
  REQUIRE(series);
  CHECK(series.value() == test_support::kHistoryPointsJson);
  CHECK(store.devices_json().value() == test_support::kHistoryDevicesJson);

  // One bucket over the whole minute: every sample of the GPU but the one before T0.
  query::SeriesQuery minute = test_support::history_query();
  minute.step_ms = 60000;
  const auto one = store.gpu_series_json(minute);
  REQUIRE(one);
  CHECK(one.value().find("\"samples\":5,\"utilization_gpu_percent\":{\"avg\":28,\"max\":60}") !=
        std::string::npos);

  query::SeriesQuery empty = test_support::history_query();
  empty.from += 1h;
  empty.to += 1h;
  CHECK(store.gpu_series_json(empty).value() == "[]");  // a known GPU, nothing in range
  query::SeriesQuery unknown = test_support::history_query();
  unknown.gpu_uuid = "GPU-nope";
  CHECK(store.gpu_series_json(unknown).value() == "null");
}

namespace {

// An authorizer installed on every connection opened while registered (sqlite3_auto_extension):
// once armed, it refuses any statement prepared after the series query (the only one reading
// gpu_metrics.doc), i.e. gpu_series_json's second statement, the "is the GPU known" probe.
std::atomic<bool> refuse_after_series{false};
std::atomic<bool> series_prepared{false};

int refusing_authorizer(void*, int action, const char*, const char* column, const char*,
                        const char*) {
  if (!refuse_after_series) return SQLITE_OK;
  if (action == SQLITE_SELECT && series_prepared) return SQLITE_DENY;
  if (action == SQLITE_READ && column != nullptr && std::string_view(column) == "doc")
    series_prepared = true;
  return SQLITE_OK;
}

int install_authorizer(sqlite3* db, const char**, const sqlite3_api_routines*) {
  sqlite3_set_authorizer(db, &refusing_authorizer, nullptr);
  return SQLITE_OK;
}

}  // namespace

TEST_CASE("SQLite: a failing second statement of the series query is a retryable error",
          "[history]") {
  TempDir dir;
  using Entry = void (*)();
  const auto entry = reinterpret_cast<Entry>(&install_authorizer);
  REQUIRE(sqlite3_auto_extension(entry) == SQLITE_OK);
  sqlite::SqliteStore store((dir.path / "h.sqlite3").string());
  sqlite3_cancel_auto_extension(entry);
  REQUIRE(store.prepare(events::GpuCatalog{}));

  query::SeriesQuery unknown = test_support::history_query();
  unknown.gpu_uuid = "GPU-nope";  // no points, so the probe runs
  refuse_after_series = true;
  const auto result = store.gpu_series_json(unknown);
  refuse_after_series = false;
  CHECK(series_prepared);
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == Error::Kind::kRetryable);
  CHECK(result.error().message.find("not authorized") != std::string::npos);
}

namespace {

// Answers from a script and records what the routes asked.
class ScriptedStore final : public Store {
 public:
  Result<std::string> series = std::string("[]");
  Result<std::string> devices = std::string("[]");
  bool queries = true;
  std::mutex mutex;
  std::optional<query::SeriesQuery> asked;

  Result<bool> prepare(const events::GpuCatalog&) override { return true; }
  Result<WriteOutcome> write(const std::vector<StoredEvent>&) override { return WriteOutcome{}; }
  Result<std::string> latest_gpu_json(const GpuQuery&) override { return std::string("null"); }
  Result<std::string> gpus_json() override { return std::string("[]"); }
  Result<std::string> usage_json(const UsageQuery&) override { return std::string("[]"); }
  Result<std::string> gpu_series_json(const query::SeriesQuery& query) override {
    const std::lock_guard lock(mutex);
    asked = query;
    return series;
  }
  Result<std::string> devices_json() override { return devices; }
  bool supports_queries() const override { return queries; }
};

struct RoutesServer {
  ScriptedStore store;
  boost::asio::io_context io;
  boost::asio::thread_pool blocking{1};
  http::Router router;
  metrics::Registry registry;
  std::unique_ptr<http::Server> server;
  std::thread thread;
  int port = 0;

  RoutesServer() {
    add_query_routes(router, blocking, store, std::nullopt, registry);
    http::ServerOptions options;
    options.listen = "127.0.0.1:0";
    server = std::make_unique<http::Server>(io, std::move(options), router, registry);
    server->start();
    port = server->local_endpoint().port();
    thread = std::thread([this] { io.run(); });
  }
  ~RoutesServer() {
    boost::asio::post(io, [this] { server->stop(); });
    thread.join();
    blocking.join();
  }
  test_support::HttpResult get(const std::string& target) {
    return test_support::http_get(port, target);
  }
};

std::string field_of(const std::string& body) {
  const auto at = body.find("\"field\":\"");
  if (at == std::string::npos) return {};
  return body.substr(at + 9, body.find('"', at + 9) - at - 9);
}

}  // namespace

TEST_CASE("the metrics route checks from, to and step and answers 400 with the field",
          "[history]") {
  RoutesServer s;
  const std::string base = "/v1/gpus/GPU-1/metrics";
  for (const auto& [query, field] : std::vector<std::pair<std::string, std::string>>{
           {"?step=0", "step"},
           {"?step=10parsecs", "step"},
           {"?step=-5s", "step"},
           {"?step=1ms", "step"},  // 3.6 million points over the default hour
           {"?from=2026-12-04T10:00:00Z&to=2026-12-05T10:00:00Z&step=1s", "step"},
           {"?from=yesterday", "from"},
           {"?from=2026-12-04", "from"},
           {"?to=2026-13-01T00:00:00Z", "to"},
           {"?from=2026-12-04T11:00:00Z&to=2026-12-04T10:00:00Z", "from"},
           {"?from=2026-12-04T10:00:00Z&to=2026-12-04T10:00:00Z", "from"},
       }) {
    INFO(query);
    const auto res = s.get(base + query);
    CHECK(res.status == 400);
    CHECK(res.content_type == "application/json");
    CHECK(res.body.find("\"code\":\"invalid_parameter\"") != std::string::npos);
    CHECK(field_of(res.body) == field);
  }
  // 10000 points is the bound, inclusive.
  CHECK(s.get(base + "?from=2026-12-04T10:00:00Z&to=2026-12-04T12:46:40Z&step=1s").status == 200);
  CHECK(s.get(base + "?from=2026-12-04T10:00:00Z&to=2026-12-04T12:46:41Z&step=1s").status == 400);
}

TEST_CASE(
    "the metrics route answers 400 for a uuid with control characters, bad UTF-8 or "
    "over 128 bytes",
    "[history]") {
  RoutesServer s;
  for (const std::string& uuid :
       std::vector<std::string>{"GPU-1%00GPU-2", "GPU-%01", "GPU-%1F", "GPU-%7F", "GPU-%0A",
                                "GPU-%C2%85",  // U+0085, a C1 control
                                "GPU-%FF", "GPU-%C3%28", "GPU-%C0%AF", "GPU-%ED%A0%80",
                                "GPU-%E2%82", std::string(129, 'a')}) {
    INFO(uuid);
    const auto res = s.get("/v1/gpus/" + uuid + "/metrics");
    CHECK(res.status == 400);
    CHECK(field_of(res.body) == "uuid");
  }
  CHECK_FALSE(s.store.asked);
  CHECK(s.get("/v1/gpus/" + std::string(128, 'a') + "/metrics").status == 200);
  CHECK(s.get("/v1/gpus/GPU-%C3%A9%E2%82%AC/metrics").status == 200);  // "é€"
  REQUIRE(s.store.asked);
  CHECK(s.store.asked->gpu_uuid == "GPU-\xc3\xa9\xe2\x82\xac");
}

TEST_CASE("the metrics route bounds the range at 31 days and rejects times before 1970",
          "[history]") {
  RoutesServer s;
  const std::string base = "/v1/gpus/GPU-1/metrics";
  CHECK(s.get(base + "?from=2026-11-03T10:00:00Z&to=2026-12-04T10:00:00Z").status == 200);
  const auto long_range = s.get(base + "?from=2026-11-03T10:00:00Z&to=2026-12-04T10:00:01Z");
  CHECK(long_range.status == 400);
  CHECK(field_of(long_range.body) == "from");
  CHECK(long_range.body.find("31 days") != std::string::npos);

  for (const auto& [query, field] : std::vector<std::pair<std::string, std::string>>{
           {"?from=1969-12-31T23:59:59Z&to=1970-01-01T00:10:00Z", "from"},
           {"?from=0001-01-01T00:00:00Z&to=1970-01-01T00:10:00Z", "from"},
           {"?to=1969-12-31T00:00:00Z", "to"},
           {"?to=1970-01-01T00:30:00Z", "from"},  // the default from is before 1970
       }) {
    INFO(query);
    const auto res = s.get(base + query);
    CHECK(res.status == 400);
    CHECK(field_of(res.body) == field);
  }
  CHECK(s.get(base + "?to=1970-01-01T01:00:00Z").status == 200);
}

TEST_CASE("the metrics route defaults to the last hour by 5 s and wraps the points", "[history]") {
  RoutesServer s;
  s.store.series = std::string("[{\"ts\":\"x\",\"samples\":1}]");
  const auto before = std::chrono::system_clock::now();
  const auto res = s.get("/v1/gpus/GPU-a%2Bb/metrics");
  const auto after = std::chrono::system_clock::now();
  REQUIRE(res.status == 200);
  REQUIRE(s.store.asked);
  CHECK(s.store.asked->gpu_uuid == "GPU-a+b");
  CHECK(s.store.asked->to >= before - 1ms);
  CHECK(s.store.asked->to <= after);
  CHECK(s.store.asked->to - s.store.asked->from == 1h);
  CHECK(s.store.asked->step_ms == 5000);
  CHECK(res.body.rfind("{\"gpu_uuid\":\"GPU-a+b\",\"from\":\"", 0) == 0);
  CHECK(res.body.find(
            "\"step\":\"5s\",\"step_ms\":5000,\"points\":[{\"ts\":\"x\",\"samples\":1}]}") !=
        std::string::npos);

  s.get("/v1/gpus/GPU-1/metrics?from=2026-12-04T10:00:00Z&to=2026-12-04T10:01:00Z&step=500ms");
  CHECK(s.store.asked->from == test_support::kHistoryT0);
  CHECK(s.store.asked->to == test_support::kHistoryT0 + 1min);
  CHECK(s.store.asked->step_ms == 500);
  const auto only_from = s.get("/v1/gpus/GPU-1/metrics?from=2026-12-04T10:00:00Z&step=1m");
  CHECK(only_from.status == 200);
  CHECK(only_from.body.find("\"from\":\"2026-12-04T10:00:00.000Z\"") != std::string::npos);
  const auto only_to = s.get("/v1/gpus/GPU-1/metrics?to=2026-12-04T11:00:00%2B01:00");
  CHECK(only_to.body.find("\"from\":\"2026-12-04T09:00:00.000Z\",\"to\":\"2026-12-04T10:00:00."
                          "000Z\",\"step\":\"5s\"") != std::string::npos);
}

TEST_CASE("the history routes answer 404, 503 with Retry-After, and 501 without queries",
          "[history]") {
  RoutesServer s;
  s.store.series = std::string("null");
  const auto missing = s.get("/v1/gpus/GPU-unknown/metrics");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("\"code\":\"not_found\"") != std::string::npos);
  CHECK(missing.body.find("GPU-unknown") != std::string::npos);
  CHECK(s.get("/v1/gpus//metrics").status == 404);  // no uuid: no route

  s.store.devices = std::string("[{\"gpu_uuid\":\"GPU-1\"}]");
  const auto devices = s.get("/v1/devices");
  CHECK(devices.status == 200);
  CHECK(devices.body == "{\"devices\":[{\"gpu_uuid\":\"GPU-1\"}]}\n");

  s.store.series = Error::retryable("no suitable servers");
  s.store.devices = Error::retryable("no suitable servers");
  for (const char* target : {"/v1/gpus/GPU-1/metrics", "/v1/devices"}) {
    const std::string reply = test_support::raw_exchange(
        s.port, std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        5000);
    INFO(reply);
    CHECK(reply.rfind("HTTP/1.1 503", 0) == 0);
    CHECK(reply.find("Retry-After: 5\r\n") != std::string::npos);
    CHECK(reply.find("\"code\":\"store_unavailable\"") != std::string::npos);
  }

  s.store.queries = false;
  CHECK(s.get("/v1/gpus/GPU-1/metrics").status == 501);
  CHECK(s.get("/v1/devices").status == 501);
  // /v1/gpus stays an exact route beside the pattern.
  CHECK(s.get("/v1/gpus").status == 501);
}
