// The edge pipeline end to end: clients POST /metadata to the processor's ingest API, the worker
// consumes gpu-metadata into FerretDB and archives it to S3 (versitygw). Retried requests with
// the same Idempotency-Key end as one document; the newest observation of each device is its
// state; and the archive holds every event exactly once across a kill -9 of the worker.

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "archive/archive_store.hpp"
#include "archive/gzip.hpp"
#include "archive/s3_store.hpp"
#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"
#include "telemetryd/time_format.hpp"

using namespace test_support;
using namespace std::chrono_literals;
namespace bhttp = boost::beast::http;

namespace {

const std::string kToken = "edge-itest-token-0123456789";

struct EdgeFixture {
  std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string topic = unique_topic("eitest-metadata");
  std::string group = unique_topic("eitest-group");
  std::string database =
      "eitest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
  std::string tokens_path = "/tmp/telemetryd-edge-itest-" + std::to_string(getpid());
  std::string prefix = "eitest-" + std::to_string(getpid()) + "-" +
                       std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) +
                       "/";

  EdgeFixture() { std::ofstream(tokens_path) << "edge " << kToken << "\n"; }
  ~EdgeFixture() {
    drop_database(mongo, database);
    unlink(tokens_path.c_str());
  }

  std::vector<std::string> ingest_argv() const {
    return {telemetryd_bin(), "run",
            "--role",         "processor",
            "--set",          "http.listen=127.0.0.1:0",
            "--set",          "kafka.brokers=" + brokers,
            "--set",          "mongodb.uri=" + mongo,
            "--set",          "processor.group_id=" + unique_topic("eitest-unused"),
            "--set",          "processor.topics.gpu_metrics=" + unique_topic("eitest-unused"),
            "--set",          "processor.topics.token_usage=" + unique_topic("eitest-unused"),
            "--set",          "ingest.enabled=true",
            "--set",          "ingest.tokens_file=" + tokens_path,
            "--set",          "processor.query.tokens_file=" + tokens_path,
            "--set",          "ingest.rate_limit_per_s=0",
            "--set",          "ingest.topics.gpu_metadata=" + topic};
  }

  std::vector<std::string> worker_argv(bool archive) const {
    std::vector<std::string> argv{telemetryd_bin(), "run",
                                  "--role",         "worker",
                                  "--set",          "http.listen=127.0.0.1:0",
                                  "--set",          "kafka.brokers=" + brokers,
                                  "--set",          "mongodb.uri=" + mongo,
                                  "--set",          "mongodb.database=" + database,
                                  "--set",          "worker.group_id=" + group,
                                  "--set",          "worker.topic=" + topic};
    if (archive) {
      for (const char* item :
           {"archive.enabled=true", "archive.store=s3", "archive.max_records=500",
            "archive.max_age_ms=1000", "archive.retry_backoff_max_ms=1000"}) {
        argv.push_back("--set");
        argv.push_back(item);
      }
      argv.push_back("--set");
      argv.push_back("archive.prefix=" + prefix);
      argv.push_back("--set");
      argv.push_back("archive.s3.endpoint=" + required_env("TELEMETRYD_TEST_S3_ENDPOINT"));
      argv.push_back("--set");
      argv.push_back("archive.s3.bucket=" + required_env("TELEMETRYD_TEST_S3_BUCKET"));
      argv.push_back("--set");
      argv.push_back("archive.s3.access_key_id=" + required_env("TELEMETRYD_TEST_S3_ACCESS_KEY"));
    }
    return argv;
  }
  std::map<std::string, std::string> worker_env() const {
    // The secret key through the environment, as an operator would pass it.
    return {{"AWS_SECRET_ACCESS_KEY", required_env("TELEMETRYD_TEST_S3_SECRET_KEY")}};
  }

  std::int64_t logged() const { return count_documents(mongo, database, "gpu_metadata"); }
  std::int64_t wait_logged(std::int64_t expected, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && logged() < expected)
      std::this_thread::sleep_for(250ms);
    std::this_thread::sleep_for(1s);  // a late duplicate would show as an extra document
    return logged();
  }
};

struct Request {
  std::string key;
  std::string gpu_uuid;
  std::int64_t observed_s = 0;
  std::string body;
};

// Sends `requests` over `connections` keep-alive connections; returns (status, id) per request.
std::vector<std::pair<int, std::string>> post_all(int port, const std::vector<Request>& requests,
                                                  int connections) {
  std::vector<std::pair<int, std::string>> answers(requests.size());
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      boost::asio::io_context io;
      boost::asio::ip::tcp::socket socket(io);
      boost::system::error_code ec;
      socket.connect(
          {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, ec);
      boost::beast::flat_buffer buffer;
      for (std::size_t i = next++; i < requests.size(); i = next++) {
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/metadata", 11};
        req.set(bhttp::field::host, "127.0.0.1");
        req.set(bhttp::field::content_type, "application/json");
        req.set(bhttp::field::authorization, "Bearer " + kToken);
        req.set("Idempotency-Key", requests[i].key);
        req.body() = requests[i].body;
        req.prepare_payload();
        bhttp::response<bhttp::string_body> res;
        if (!ec) bhttp::write(socket, req, ec);
        if (!ec) bhttp::read(socket, buffer, res, ec);
        if (ec) {
          answers[i] = {0, ec.message()};
          continue;
        }
        simdjson::dom::parser parser;
        std::string_view id;
        if (parser.parse(res.body())["id"].get(id) != simdjson::SUCCESS) id = res.body();
        answers[i] = {res.result_int(), std::string(id)};
      }
    });
  }
  for (auto& t : threads) t.join();
  return answers;
}

}  // namespace

TEST_CASE("10000 POST /metadata with 10% repeated Idempotency-Keys: exact documents and states",
          "[edge][itest]") {
  EdgeFixture f;
  ChildProcess ingest(f.ingest_argv());
  const int port = listening_port(ingest);
  ChildProcess worker(f.worker_argv(false));
  listening_port(worker);

  // 100 devices x 90 observations at distinct seconds, then 1000 retries of earlier requests.
  std::mt19937 rng(2026);
  const auto base = std::chrono::sys_days{std::chrono::year{2026} / 12 / 1};
  std::vector<Request> distinct;
  for (int d = 0; d < 100; ++d) {
    std::vector<int> seconds(90);
    for (int k = 0; k < 90; ++k) seconds[k] = k * 7 + static_cast<int>(rng() % 5);
    for (int k = 0; k < 90; ++k) {
      Request r;
      r.gpu_uuid = "GPU-edge-" + std::to_string(d);
      r.key = "dev-" + std::to_string(d) + "-obs-" + std::to_string(k);
      r.observed_s = seconds[k];
      const auto at = base + std::chrono::seconds(seconds[k]);
      r.body = R"({"gpu_uuid":")" + r.gpu_uuid + R"(","host":"edge-)" + std::to_string(d % 10) +
               R"(","model_name":"H100 80GB","observed_at":")" + telemetryd::rfc3339_utc(at) +
               R"(","memory_total":"80 GiB","seq":)" + std::to_string(k) + "}";
      distinct.push_back(std::move(r));
    }
  }
  std::vector<Request> requests = distinct;
  for (int i = 0; i < 1000; ++i) requests.push_back(distinct[rng() % distinct.size()]);
  std::shuffle(requests.begin(), requests.end(), rng);

  const auto started = std::chrono::steady_clock::now();
  const auto answers = post_all(port, requests, 8);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::map<std::string, std::string> id_of_key;
  std::size_t accepted = 0;
  std::size_t consistent = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << i << ": " << answers[i].first << " " << answers[i].second);
    if (answers[i].first != 202) continue;
    ++accepted;
    const auto [it, inserted] = id_of_key.emplace(requests[i].key, answers[i].second);
    if (inserted || it->second == answers[i].second) ++consistent;
  }
  WARN("10000 POST /metadata in " << seconds << " s (" << 10000 / seconds << " req/s)");
  REQUIRE(accepted == 10000);
  CHECK(consistent == 10000);  // a retried key always got the same id
  REQUIRE(id_of_key.size() == 9000);

  CHECK(f.wait_logged(9000, 180s) == 9000);
  // Each device's state is its newest observation (the highest second), by event id.
  std::map<std::string, const Request*> newest;
  for (const Request& r : distinct) {
    auto& slot = newest[r.gpu_uuid];
    if (slot == nullptr || r.observed_s > slot->observed_s) slot = &r;
  }
  const auto devices = find_documents_json(f.mongo, f.database, "gpu_devices");
  REQUIRE(devices.size() == 100);
  simdjson::dom::parser parser;
  std::size_t right = 0;
  for (const auto& json : devices) {
    simdjson::dom::element doc = parser.parse(json).value();
    const std::string uuid{std::string_view(doc["_id"])};
    const std::string event_id{std::string_view(doc["event_id"])};
    REQUIRE(newest.count(uuid) == 1);
    INFO(uuid << " holds " << event_id << ", newest is " << id_of_key[newest[uuid]->key]);
    CHECK(event_id == id_of_key[newest[uuid]->key]);
    CHECK(std::int64_t(doc["memory_total_bytes"]) == 85899345920);
    if (event_id == id_of_key[newest[uuid]->key]) ++right;
  }
  CHECK(right == 100);
  worker.send_signal(SIGTERM);
  CHECK(worker.wait_exit(20s) == 0);
  ingest.send_signal(SIGTERM);
  CHECK(ingest.wait_exit(20s) == 0);
}

TEST_CASE("worker with the S3 archive, kill -9 mid-stream: every event archived exactly once",
          "[edge][archive][itest]") {
  EdgeFixture f;
  ChildProcess ingest(f.ingest_argv());
  const int port = listening_port(ingest);
  constexpr int kEvents = 6000;
  std::vector<Request> requests;
  const auto base = std::chrono::sys_days{std::chrono::year{2026} / 12 / 1};
  for (int i = 0; i < kEvents; ++i) {
    Request r;
    r.key = "archive-" + std::to_string(i);
    r.body = R"({"gpu_uuid":"GPU-arch-)" + std::to_string(i % 50) +
             R"(","host":"a","model_name":"A100 40GB","observed_at":")" +
             telemetryd::rfc3339_utc(base + std::chrono::seconds(i)) + R"("})";
    requests.push_back(std::move(r));
  }
  std::set<std::string> ids;
  for (const auto& [status, id] : post_all(port, requests, 8)) {
    REQUIRE(status == 202);
    ids.insert(id);
  }
  REQUIRE(ids.size() == kEvents);

  telemetryd::archive::S3Settings s3;
  std::string error;
  REQUIRE(telemetryd::archive::parse_endpoint(required_env("TELEMETRYD_TEST_S3_ENDPOINT"),
                                              s3.endpoint, error));
  s3.bucket = required_env("TELEMETRYD_TEST_S3_BUCKET");
  s3.credentials.access_key_id = required_env("TELEMETRYD_TEST_S3_ACCESS_KEY");
  s3.credentials.secret_access_key = required_env("TELEMETRYD_TEST_S3_SECRET_KEY");
  telemetryd::archive::S3Store store(s3);
  const auto objects = [&] {
    auto listed = telemetryd::archive::list_all(store, f.prefix);
    return listed ? listed.value() : std::vector<telemetryd::archive::ObjectInfo>{};
  };

  {
    ChildProcess first(f.worker_argv(true), f.worker_env());
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (objects().size() < 4 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(100ms);
    const auto before = objects().size();
    INFO("archive objects before the kill: " << before);
    REQUIRE(before >= 4);
    REQUIRE(before < kEvents / 500);  // really mid-stream
    first.send_signal(SIGKILL);
    REQUIRE(first.wait_exit(10s) == 128 + SIGKILL);
  }
  ChildProcess second(f.worker_argv(true), f.worker_env());
  CHECK(f.wait_logged(kEvents, 180s) == kEvents);

  // Every event once in the archive: read every object back and count lines and ids.
  std::multiset<std::string> archived;
  std::size_t lines = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  do {
    archived.clear();
    lines = 0;
    for (const auto& object : objects()) {
      auto bytes = store.get(object.key);
      REQUIRE(bytes);
      auto text = telemetryd::archive::gzip_decompress(bytes.value());
      REQUIRE(text);
      std::istringstream in(text.value());
      simdjson::dom::parser parser;
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        ++lines;
        const std::string_view id = parser.parse(line)["id"];
        archived.insert(std::string(id));
      }
    }
    if (lines >= kEvents) break;
    std::this_thread::sleep_for(500ms);
  } while (std::chrono::steady_clock::now() < deadline);
  CHECK(lines == kEvents);
  CHECK(std::set<std::string>(archived.begin(), archived.end()) == ids);
  CHECK(archived.size() == kEvents);
  const auto metrics = http_get(listening_port(second), "/metrics");
  CHECK(metrics.body.find("worker_archive_objects_total") != std::string::npos);
  second.send_signal(SIGTERM);
  CHECK(second.wait_exit(20s) == 0);
  ingest.send_signal(SIGTERM);
  CHECK(ingest.wait_exit(20s) == 0);
}
