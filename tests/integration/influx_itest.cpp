// The processor with processor.store influxdb (and both) against the real broker and Debian's
// InfluxDB 1.6.7: exactly the distinct events as points with their values, queries 501,
// MongoDB not needed for /ready, an InfluxDB outage paused and recovered without loss; the v2
// write API with a token against InfluxDB 1.8.10 when services.sh started influxdb18.

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/event_feed.hpp"
#include "support/http_client.hpp"
#include "support/influx_probe.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string influx = required_env("TELEMETRYD_TEST_INFLUXDB_URL");
  std::string mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string gpu_topic = unique_topic("initest-gpu");
  std::string usage_topic = unique_topic("initest-usage");
  std::string database =
      "initest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
  std::string group = unique_topic("initest-group");
  ~Fixture() {
    drop_influx_database(influx, database);
    drop_database(mongo, database);
  }

  std::vector<std::string> processor_argv(const std::string& store) const {
    return {telemetryd_bin(), "run", "--role", "processor", "--set", "http.listen=127.0.0.1:0",
            "--set", "kafka.brokers=" + brokers, "--set",
            "processor.sinks=" +
                (store == "both" ? std::string("[mongodb,influxdb]") : "[" + store + "]"),
            "--set", "influxdb.url=" + influx, "--set", "influxdb.database=" + database, "--set",
            "influxdb.check_interval_ms=500", "--set",
            // store influxdb: a MongoDB nobody listens on, to show it is not needed
            "mongodb.uri=" + (store == "influxdb" ? std::string("mongodb://127.0.0.1:1/") : mongo),
            "--set", "mongodb.database=" + database, "--set", "processor.group_id=" + group,
            "--set", "processor.topics.gpu_metrics=" + gpu_topic, "--set",
            "processor.topics.token_usage=" + usage_topic, "--set",
            "processor.retry_backoff_max_ms=1000", "--set", "processor.query.auth=none"};
  }

  double points(const std::string& measurement) const {
    return influx_points(influx, database, measurement);
  }
  double total_points() const { return points("gpu_metrics") + points("token_usage"); }
  double wait_points(double expected, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && total_points() < expected)
      std::this_thread::sleep_for(250ms);
    std::this_thread::sleep_for(1s);  // an extra point would show up now
    return total_points();
  }
};

HttpResult wait_ready(int port, std::chrono::seconds timeout) {
  HttpResult ready;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    ready = http_get(port, "/ready");
    if (ready.status == 200) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return ready;
}

struct Expected {
  double gpu = 0, usage = 0, input_tokens = 0;
};

// Counts per measurement and the token sum of the distinct events, from the produced bytes.
Expected expected_of(const std::vector<Message>& events, const Fixture& f) {
  Expected e;
  simdjson::dom::parser parser;
  for (const auto& m : events) {
    if (m.topic == f.gpu_topic) {
      ++e.gpu;
    } else {
      ++e.usage;
      e.input_tokens += double(int64_t(parser.parse(m.value)["data"]["usage"]["input_tokens"]));
    }
  }
  return e;
}

}  // namespace

TEST_CASE(
    "store influxdb: every distinct event is one point with its values; queries 501; "
    "no MongoDB needed",
    "[influx][itest]") {
  Fixture f;
  auto events = synthetic_events(f.gpu_topic, f.usage_topic, 20000);
  const Expected want = expected_of(events, f);
  std::vector<Message> all = events;
  std::mt19937 rng(11);
  for (int i = 0; i < 1000; ++i) all.push_back(events[rng() % events.size()]);  // redeliveries
  std::shuffle(all.begin() + 500, all.end(), rng);
  produce(f.brokers, all);

  ChildProcess processor(f.processor_argv("influxdb"));
  const int port = listening_port(processor);
  const HttpResult ready = wait_ready(port, 30s);
  INFO(ready.body);
  CHECK(ready.status == 200);
  CHECK(ready.body.find("\"name\":\"influxdb\",\"ready\":true,\"detail\":\"ping ok\"") !=
        std::string::npos);
  CHECK(ready.body.find("\"mongodb\"") == std::string::npos);  // MongoDB is not probed at all

  CHECK(f.wait_points(20000, 180s) == 20000);
  CHECK(f.points("gpu_metrics") == want.gpu);
  CHECK(f.points("token_usage") == want.usage);
  CHECK(scalar(influx_query(f.influx, f.database, "SELECT sum(input_tokens) FROM token_usage")) ==
        want.input_tokens);

  // One GPU sample, field by field, against the event it came from.
  simdjson::dom::parser parser;
  std::string sample;
  for (const auto& m : events) {
    if (m.topic == f.gpu_topic) {
      sample = m.value;
      break;
    }
  }
  simdjson::dom::element event = parser.parse(sample);
  const std::string id{std::string_view(event["id"])};
  const std::string host{std::string_view(event["data"]["host"])};
  const std::string answer = influx_query(
      f.influx, f.database,
      "SELECT host, gpu_uuid, memory_total_bytes, utilization_gpu_percent, source FROM "
      "gpu_metrics WHERE event_id = '" +
          id + "'");
  simdjson::dom::parser parser2;
  simdjson::dom::element row = parser2.parse(answer)["results"].at(0)["series"].at(0)["values"];
  simdjson::dom::array rows = row;
  REQUIRE(rows.size() == 1);
  CHECK(std::string_view(rows.at(0).at(1)) == host);
  CHECK(std::string_view(rows.at(0).at(2)) == std::string_view(event["data"]["gpu_uuid"]));
  CHECK(int64_t(rows.at(0).at(3)) == int64_t(event["data"]["memory_total_bytes"]));
  CHECK(double(rows.at(0).at(4)) == Approx(double(event["data"]["utilization_gpu_percent"])));
  CHECK(std::string_view(rows.at(0).at(5)) == std::string_view(event["source"]));
  // Tags are tags: the series are per GPU, not per event.
  const std::string series = influx_query(f.influx, f.database, "SHOW SERIES FROM gpu_metrics");
  CHECK(std::count(series.begin(), series.end(), '[') < 200);

  const HttpResult usage = http_get(port, "/v1/usage?group_by=model");
  CHECK(usage.status == 501);
  CHECK(usage.body.find("\"code\":\"not_supported\"") != std::string::npos);
  CHECK(http_get(port, "/gpu/info").status == 501);

  // InfluxDB cannot tell a rewrite from a write: redeliveries count as writes, none as duplicates.
  std::this_thread::sleep_for(1s);
  const std::string text = http_get(port, "/metrics").body;
  CHECK(metric(text, "processor_messages_consumed_total") == 21000);
  CHECK(metric(text, "processor_db_writes_total") == 21000);
  CHECK(metric(text, "processor_duplicates_total") == 0);
  CHECK(metric(text, "processor_dead_letters_total") == 0);
  CHECK(text.find("telemetryd_dependency_up{dependency=\"influxdb\"} 1\n") != std::string::npos);
  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}

TEST_CASE("store both: MongoDB and InfluxDB hold every event; queries from MongoDB",
          "[influx][itest]") {
  Fixture f;
  const auto events = synthetic_events(f.gpu_topic, f.usage_topic, 6000);
  produce(f.brokers, events);
  ChildProcess processor(f.processor_argv("both"));
  const int port = listening_port(processor);
  CHECK(f.wait_points(6000, 180s) == 6000);
  std::int64_t docs = -1;
  for (int i = 0; i < 40; ++i) {
    docs = count_documents(f.mongo, f.database, "gpu_metrics") +
           count_documents(f.mongo, f.database, "token_usage");
    if (docs >= 6000) break;
    std::this_thread::sleep_for(250ms);
  }
  CHECK(docs == 6000);
  const HttpResult ready = wait_ready(port, 20s);
  INFO(ready.body);
  CHECK(ready.status == 200);
  CHECK(ready.body.find("\"name\":\"mongodb\",\"ready\":true") != std::string::npos);
  CHECK(ready.body.find("\"name\":\"influxdb\",\"ready\":true") != std::string::npos);
  const HttpResult usage = http_get(port, "/v1/usage?group_by=tenant");
  CHECK(usage.status == 200);
  CHECK(usage.body.find("\"groups\":[{") != std::string::npos);
  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}

TEST_CASE("InfluxDB down mid-stream: /ready 503, nothing lost once it returns", "[influx][itest]") {
  Fixture f;
  ChildProcess processor(f.processor_argv("influxdb"));
  const int port = listening_port(processor);
  // 24000 events at 1200/s take about 20 s, longer than the outage.
  ChildProcess producer({telemetryd_bin(), "run", "--role", "producer", "--count", "24000", "--set",
                         "producer.rate=1200", "--set", "http.listen=127.0.0.1:0", "--set",
                         "kafka.brokers=" + f.brokers, "--set",
                         "producer.topics.gpu_metrics=" + f.gpu_topic, "--set",
                         "producer.topics.token_usage=" + f.usage_topic});
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (f.total_points() < 2000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  REQUIRE(f.total_points() >= 2000);

  const auto stop = run_command({source_root() + "/scripts/services.sh", "down", "influxdb"});
  INFO(stop.output);
  REQUIRE(stop.status == 0);
  bool reported = false;
  const auto outage_end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < outage_end) {
    const auto ready = http_get(port, "/ready");
    if (ready.status == 503 &&
        ready.body.find("\"name\":\"influxdb\",\"ready\":false") != std::string::npos) {
      reported = true;
    }
    std::this_thread::sleep_for(500ms);
  }
  CHECK(reported);
  const auto start = run_command({source_root() + "/scripts/services.sh", "up", "influxdb"});
  INFO(start.output);
  REQUIRE(start.status == 0);

  REQUIRE(producer.wait_exit(120s) == 0);
  const double stored = f.wait_points(24000, 240s);
  const std::string log = processor.stdout_text();
  INFO("processor log tail:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  CHECK(stored == 24000);
  CHECK(wait_ready(port, 20s).status == 200);
  CHECK(log.find("consumption resumed") != std::string::npos);
  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(20s) == 0);
}

// InfluxQL through curl, as an operator would run it against the https server.
std::string curl_query(const std::string& url, const std::string& ca, const std::string& user,
                       const std::string& db, const std::string& q) {
  const CommandResult r =
      run_command({"curl", "-sS", "--max-time", "10", "--cacert", ca, "-u", user,
                   url + "/query?db=" + db, "--data-urlencode", "q=" + q});
  INFO(q << " -> " << r.output);
  REQUIRE(r.status == 0);
  return r.output;
}

TEST_CASE(
    "api v2 over https with a token (InfluxDB 1.8.10): a wrong token pauses and "
    "dead-letters nothing; the right one writes every point",
    "[influx][itest]") {
  const char* url18 = std::getenv("TELEMETRYD_TEST_INFLUXDB18_URL");
  if (url18 == nullptr) {
    WARN("TELEMETRYD_TEST_INFLUXDB18_URL unset (services.sh up influxdb18): v2 not tested");
    return;
  }
  const std::string url = url18;
  const std::string ca = required_env("TELEMETRYD_TEST_INFLUXDB18_CA_FILE");
  const std::string token = required_env("TELEMETRYD_TEST_INFLUXDB18_TOKEN");
  REQUIRE(url.starts_with("https://"));
  Fixture f;
  // InfluxDB 1.8 maps the v2 bucket to a database.
  curl_query(url, ca, token, "", "CREATE DATABASE \"" + f.database + "\"");
  const auto events = synthetic_events(f.gpu_topic, f.usage_topic, 3000);
  produce(f.brokers, events);

  char token_path[] = "/tmp/telemetryd-influx-token-XXXXXX";
  const int fd = mkstemp(token_path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(token_path) << "wrong:token\n";
  auto argv = f.processor_argv("influxdb");
  const std::vector<std::string> v2_settings{"influxdb.url=" + url,
                                             "influxdb.ca_file=" + ca,
                                             "influxdb.api=v2",
                                             "influxdb.org=telemetryd",
                                             "influxdb.bucket=" + f.database,
                                             std::string("influxdb.token_file=") + token_path,
                                             "influxdb.gzip=true"};
  for (const std::string& extra : v2_settings) {
    argv.push_back("--set");
    argv.push_back(extra);
  }
  {
    ChildProcess wrong(argv);
    const int port = listening_port(wrong);
    bool paused = false;
    HttpResult ready;
    for (int i = 0; i < 60 && !paused; ++i) {
      ready = http_get(port, "/ready");
      paused = ready.status == 503 && ready.body.find("answered 401") != std::string::npos;
      std::this_thread::sleep_for(250ms);
    }
    INFO(ready.body);
    CHECK(paused);
    // The TLS connection itself is fine: the probe's /ping passes.
    CHECK(ready.body.find("\"name\":\"influxdb\",\"ready\":true") != std::string::npos);
    const std::string text = http_get(port, "/metrics").body;
    CHECK(metric(text, "processor_dead_letters_total") == 0);
    CHECK(wrong.stdout_text().find("wrong:token") == std::string::npos);  // never logged
    wrong.send_signal(SIGTERM);
    CHECK(wrong.wait_exit(20s) == 0);
  }
  std::ofstream(token_path) << token << "\n";
  {
    ChildProcess right(argv);
    listening_port(right);
    auto count = [&](const std::string& m) {
      return std::max(
          0.0, scalar(curl_query(url, ca, token, f.database, "SELECT count(event_id) FROM " + m)));
    };
    double n = 0;
    for (int i = 0; i < 240 && n < 3000; ++i) {
      n = count("gpu_metrics") + count("token_usage");
      std::this_thread::sleep_for(250ms);
    }
    CHECK(n == 3000);
    right.send_signal(SIGTERM);
    CHECK(right.wait_exit(20s) == 0);
  }

  // Without the CA file the server's certificate is refused, and /ready says why.
  std::vector<std::string> no_ca;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i + 1 < argv.size() && argv[i + 1].starts_with("influxdb.ca_file=")) {
      ++i;  // drop the --set and its value
      continue;
    }
    no_ca.push_back(argv[i]);
  }
  ChildProcess untrusted(no_ca);
  const int port = listening_port(untrusted);
  bool refused = false;
  for (int i = 0; i < 40 && !refused; ++i) {
    refused = http_get(port, "/ready").body.find("certificate verify failed") != std::string::npos;
    std::this_thread::sleep_for(250ms);
  }
  CHECK(refused);
  untrusted.send_signal(SIGTERM);
  CHECK(untrusted.wait_exit(20s) == 0);
  unlink(token_path);
  curl_query(url, ca, token, "", "DROP DATABASE \"" + f.database + "\"");
}

// Not run by default (no timing asserts in tests): scripts or a person run it with "[bench]".
TEST_CASE("events/s into InfluxDB vs the same events into FerretDB", "[influx][bench][.]") {
  constexpr std::size_t kEvents = 40000;
  for (const std::string store : {"influxdb", "mongodb"}) {
    Fixture f;
    const auto events = synthetic_events(f.gpu_topic, f.usage_topic, kEvents);
    produce(f.brokers, events);
    const auto started = std::chrono::steady_clock::now();
    ChildProcess processor(f.processor_argv(store));
    listening_port(processor);
    double n = 0;
    const auto deadline = started + 300s;
    while (n < kEvents && std::chrono::steady_clock::now() < deadline) {
      if (store == "influxdb") {
        n = f.total_points();
      } else {
        n = double(count_documents(f.mongo, f.database, "gpu_metrics") +
                   count_documents(f.mongo, f.database, "token_usage"));
      }
      std::this_thread::sleep_for(100ms);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    CHECK(n == kEvents);
    WARN(store << ": " << kEvents << " events stored in " << seconds << " s = "
               << (kEvents / seconds) << " events/s (from process start, Kafka pre-filled)");
    processor.send_signal(SIGTERM);
    CHECK(processor.wait_exit(20s) == 0);
  }
}
