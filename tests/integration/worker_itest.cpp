// The worker role end to end against the real broker and FerretDB: every distinct event once in
// gpu_metadata, every device in gpu_devices at its newest observation whatever the arrival order,
// malformed messages dead-lettered byte for byte with reasons; and the same across kill -9 and a
// database outage.

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "events/cloudevent.hpp"
#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/event_feed.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"
#include "telemetryd/time_format.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  std::string topic = unique_topic("witest-metadata");
  std::string database =
      "witest" + std::to_string(getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
  std::string group = unique_topic("witest-group");
  ~Fixture() { drop_database(mongo, database); }

  std::vector<std::string> worker_argv() const {
    return {telemetryd_bin(), "run",
            "--role",         "worker",
            "--set",          "http.listen=127.0.0.1:0",
            "--set",          "kafka.brokers=" + brokers,
            "--set",          "mongodb.uri=" + mongo,
            "--set",          "mongodb.database=" + database,
            "--set",          "mongodb.check_interval_ms=500",
            "--set",          "worker.group_id=" + group,
            "--set",          "worker.topic=" + topic,
            "--set",          "worker.retry_backoff_max_ms=1000"};
  }

  std::int64_t logged() const { return count_documents(mongo, database, "gpu_metadata"); }

  // Waits until gpu_metadata holds `expected` documents; returns the count after a settle.
  std::int64_t wait_logged(std::int64_t expected, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && logged() < expected)
      std::this_thread::sleep_for(250ms);
    std::this_thread::sleep_for(1s);  // a late duplicate would show up as an extra document
    return logged();
  }
};

struct Observation {
  std::string id;
  std::string gpu_uuid;
  std::int64_t observed_ms = 0;
  int seq = 0;
  std::string value;  // the Kafka message value
};

// `per_device` observations of each of `devices` GPUs, observed within 150 s of each other so
// that many share an observed_at and only the event id tells them apart.
std::vector<Observation> observations(const std::string& tag, int devices, int per_device,
                                      std::mt19937& rng) {
  telemetryd::events::UuidV7Generator ids;
  const auto base = std::chrono::sys_days{std::chrono::year{2026} / 11 / 22};
  std::vector<Observation> out;
  int seq = 0;
  for (int d = 0; d < devices; ++d) {
    for (int i = 0; i < per_device; ++i) {
      Observation o;
      o.id = ids.next(std::chrono::system_clock::now());
      o.gpu_uuid = "GPU-" + tag + "-" + std::to_string(d);
      const auto observed = base + std::chrono::seconds(rng() % 150);
      o.observed_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(observed.time_since_epoch())
              .count();
      o.seq = seq++;
      const std::string data =
          R"({"gpu_uuid":")" + o.gpu_uuid + R"(","host":"witest-node-)" + std::to_string(d % 3) +
          R"(","model_name":"NVIDIA H100 80GB HBM3","observed_at":")" +
          telemetryd::rfc3339_utc(observed) +
          R"(","driver_version":"550.54.15","memory_total_mib":81559,)" +
          R"("pci":{"bus_id":"00000000:17:00.0","domain":0},"seq":)" + std::to_string(o.seq) + "}";
      o.value = telemetryd::events::encode_cloudevent(
          o.id, "//telemetryd/witest/nvml", "io.telemetryd.gpu.metadata.v1",
          std::chrono::system_clock::now(), o.gpu_uuid, data);
      out.push_back(std::move(o));
    }
  }
  return out;
}

// The newest observation per device: the greatest observed_at, then the greatest event id.
std::map<std::string, const Observation*> newest(const std::vector<Observation>& all) {
  std::map<std::string, const Observation*> out;
  for (const auto& o : all) {
    const Observation*& best = out[o.gpu_uuid];
    if (best == nullptr || o.observed_ms > best->observed_ms ||
        (o.observed_ms == best->observed_ms && o.id > best->id)) {
      best = &o;
    }
  }
  return out;
}

std::vector<Message> as_messages(const std::string& topic, const std::vector<Observation>& all) {
  std::vector<Message> out;
  for (const auto& o : all) out.push_back({topic, o.gpu_uuid, o.value});
  return out;
}

// Every gpu_devices document names the newest observation of its device.
void check_devices(const Fixture& f, const std::vector<Observation>& all) {
  const auto expected = newest(all);
  const auto docs = find_documents_json(f.mongo, f.database, "gpu_devices");
  REQUIRE(docs.size() == expected.size());
  simdjson::dom::parser parser;
  std::size_t right = 0;
  for (const auto& json : docs) {
    simdjson::dom::element doc;
    REQUIRE(parser.parse(json).get(doc) == simdjson::SUCCESS);
    std::string_view id, event_id, observed_at;
    std::int64_t seq = -1;
    REQUIRE(doc["_id"].get(id) == simdjson::SUCCESS);
    REQUIRE(doc["event_id"].get(event_id) == simdjson::SUCCESS);
    REQUIRE(doc["seq"].get(seq) == simdjson::SUCCESS);
    REQUIRE(doc["observed_at"]["$date"].get(observed_at) == simdjson::SUCCESS);
    const auto it = expected.find(std::string(id));
    REQUIRE(it != expected.end());
    INFO("device " << id << ": stored event " << event_id << " seq " << seq << " observed "
                   << observed_at << ", newest " << it->second->id << " seq " << it->second->seq
                   << " observed ms " << it->second->observed_ms);
    CHECK(event_id == it->second->id);
    CHECK(seq == it->second->seq);
    if (event_id == it->second->id && seq == it->second->seq) ++right;
  }
  CHECK(right == expected.size());
}

}  // namespace

TEST_CASE("repeated ids and out-of-order observations: exact log, newest state, DLQ",
          "[worker][itest]") {
  Fixture f;
  std::mt19937 rng(11);
  const auto distinct = observations("a", 8, 300, rng);  // 2400 events
  std::vector<Message> all = as_messages(f.topic, distinct);
  for (int i = 0; i < 600; ++i) {  // the same event again, same bytes
    const auto& o = distinct[rng() % distinct.size()];
    all.push_back({f.topic, o.gpu_uuid, o.value});
  }
  const std::vector<std::pair<std::string, std::string>> broken = {
      {"{not json", "invalid_json"},
      {R"({"specversion":"1.0"})", "bad_envelope"},
      {R"({"specversion":"1.0","id":"0190f6c2-7a1b-7c3e-9a51-3f0e1b2c4d5e","source":"//t","type":"io.telemetryd.gpu.metadata.v1","time":"2026-01-01T00:00:00Z","data":{"gpu_uuid":"GPU-x","host":"h","model_name":"m"}})",
       "missing_field"},
      {R"({"specversion":"1.0","id":"0190f6c2-7a1b-7c3e-9a51-3f0e1b2c4d5e","source":"//t","type":"io.telemetryd.gpu.metrics.v1","time":"2026-01-01T00:00:00Z","data":{"gpu_uuid":"GPU-x","host":"h","model_name":"m","collector":"nvml"}})",
       "wrong_topic"},
      {R"({"specversion":"1.0","id":"0190f6c2-7a1b-7c3e-9a51-3f0e1b2c4d5e","source":"//t","type":"io.telemetryd.gpu.metadata.v1","time":"2026-01-01T00:00:00Z","data":{"gpu_uuid":"GPU-x","host":"h","model_name":"m","observed_at":"2026-13-01T00:00:00Z"}})",
       "wrong_type"},
  };
  std::map<std::string, std::string> reason_of;  // malformed value -> expected reason
  for (int i = 0; i < 50; ++i) {
    // Unique bytes per message, so the DLQ check matches them one to one.
    const auto& b = broken[static_cast<std::size_t>(i) % broken.size()];
    std::string value = b.first + std::string(static_cast<std::size_t>(i) / broken.size(), ' ');
    reason_of[value] = b.second;
    all.push_back({f.topic, "bad", value});
  }
  std::shuffle(all.begin(), all.end(), rng);
  REQUIRE(all.size() == 3050);
  produce(f.brokers, all);

  ChildProcess worker(f.worker_argv());
  const int port = listening_port(worker);
  CHECK(f.wait_logged(2400, 180s) == 2400);
  check_devices(f, distinct);

  // The transform, as stored: flattened, units in bytes, observed_at a date, unknown fields kept.
  const auto devices = find_documents_json(f.mongo, f.database, "gpu_devices");
  REQUIRE(!devices.empty());
  INFO(devices.front());
  CHECK(devices.front().find(R"("memory_total_bytes" : 85520809984)") != std::string::npos);
  CHECK(devices.front().find(R"("pci_bus_id" : "00000000:17:00.0")") != std::string::npos);
  CHECK(devices.front().find(R"("pci_domain" : 0)") != std::string::npos);
  CHECK(devices.front().find(R"("observed_at" : { "$date" : "2026-11-22T)") != std::string::npos);
  CHECK(devices.front().find(R"("driver_version" : "550.54.15")") != std::string::npos);
  CHECK(devices.front().find("memory_total_mib") == std::string::npos);

  const auto dlq = read_topics(f.brokers, {f.topic + ".dlq"}, 50, 60s);
  CHECK(dlq.size() == 50);
  std::size_t matched = 0;
  for (const auto& m : dlq) {
    const auto it = reason_of.find(m.value);  // byte for byte
    REQUIRE(it != reason_of.end());
    std::map<std::string, std::string> headers(m.headers.begin(), m.headers.end());
    CHECK(headers["x-telemetryd-reason"] == it->second);
    CHECK(headers["x-telemetryd-stage"] == "validate");
    CHECK(headers["x-telemetryd-source-topic"] == f.topic);
    CHECK(!headers["x-telemetryd-detail"].empty());
    CHECK(!headers["x-telemetryd-source-offset"].empty());
    CHECK(m.key == "bad");
    ++matched;
  }
  CHECK(matched == 50);

  // received = gpu_metadata written + dead-lettered + duplicates + in flight + abandoned
  std::this_thread::sleep_for(1s);
  const std::string text = http_get(port, "/metrics").body;
  const double received = metric(text, "worker_messages_consumed_total");
  const double logged = metric(text, "worker_documents_written_total{collection=\"gpu_metadata\"}");
  const double states = metric(text, "worker_documents_written_total{collection=\"gpu_devices\"}");
  const double stale = metric(text, "worker_stale_updates_total");
  const double dead = metric(text, "worker_dead_letters_total");
  const double duplicates = metric(text, "worker_duplicates_total");
  const double in_flight = metric(text, "worker_in_flight");
  const double abandoned = metric(text, "worker_abandoned_total");
  CHECK(received == 3050);
  CHECK(logged == 2400);
  CHECK(dead == 50);
  CHECK(duplicates == 600);
  CHECK(received == logged + dead + duplicates + in_flight + abandoned);
  CHECK(states + stale == 3000);  // every valid event either moved its device or was stale
  CHECK(states >= 8);
  CHECK(metric(text, "worker_invalid_events_total") == 50);
  CHECK(http_get(port, "/ready").status == 200);

  worker.send_signal(SIGTERM);
  CHECK(worker.wait_exit(20s) == 0);
}

TEST_CASE("worker kill -9 mid-stream, then restart: every event stored exactly once",
          "[worker][itest]") {
  Fixture f;
  std::mt19937 rng(12);
  auto events = observations("k", 200, 100, rng);  // 20000 events
  std::shuffle(events.begin(), events.end(), rng);
  produce(f.brokers, as_messages(f.topic, events));
  {
    ChildProcess first(f.worker_argv());
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (f.logged() < 3000 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(50ms);
    const auto before_kill = f.logged();
    INFO("stored before kill: " << before_kill);
    REQUIRE(before_kill >= 3000);
    REQUIRE(before_kill < 20000);  // really mid-stream
    first.send_signal(SIGKILL);
    REQUIRE(first.wait_exit(10s) == 128 + SIGKILL);
  }
  ChildProcess second(f.worker_argv());
  CHECK(f.wait_logged(20000, 240s) == 20000);
  check_devices(f, events);
  second.send_signal(SIGTERM);
  CHECK(second.wait_exit(20s) == 0);
}

TEST_CASE("worker: FerretDB down for 20 s mid-stream: /ready 503, nothing lost, resumes itself",
          "[worker][itest]") {
  Fixture f;
  std::mt19937 rng(13);
  auto events = observations("o", 50, 480, rng);  // 24000 events
  std::shuffle(events.begin(), events.end(), rng);
  // Produced at about 800/s, so the stream outlasts the outage. The first slice goes before the
  // worker starts, so the topic exists when it subscribes (librdkafka looks for a topic created
  // later only at its next metadata refresh, up to 5 minutes on).
  std::atomic<bool> produced{false};
  const auto messages = as_messages(f.topic, events);
  const auto slice = [&](std::size_t i) {
    return std::vector<Message>(
        messages.begin() + static_cast<std::ptrdiff_t>(i),
        messages.begin() + static_cast<std::ptrdiff_t>(std::min(i + 400, messages.size())));
  };
  produce(f.brokers, slice(0));
  ChildProcess worker(f.worker_argv());
  const int port = listening_port(worker);
  std::thread producer([&] {
    for (std::size_t i = 400; i < messages.size(); i += 400) {
      produce(f.brokers, slice(i));
      std::this_thread::sleep_for(500ms);
    }
    produced = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (f.logged() < 2000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  const bool started = f.logged() >= 2000;
  CHECK(started);

  const auto stop = run_command({source_root() + "/scripts/services.sh", "down", "ferretdb"});
  INFO(stop.output);
  CHECK(stop.status == 0);
  bool reported = false;
  const auto outage_end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < outage_end) {
    const auto ready = http_get(port, "/ready");
    if (ready.status == 503 &&
        ready.body.find("\"name\":\"worker\",\"ready\":false") != std::string::npos) {
      reported = true;
    }
    std::this_thread::sleep_for(500ms);
  }
  CHECK(reported);
  const auto start = run_command({source_root() + "/scripts/services.sh", "up", "ferretdb"});
  INFO(start.output);
  REQUIRE(start.status == 0);
  producer.join();
  REQUIRE(produced);

  const auto logged = f.wait_logged(24000, 240s);
  const std::string log = worker.stdout_text();
  INFO("worker log tail:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  CHECK(logged == 24000);
  check_devices(f, events);
  HttpResult ready;
  for (int i = 0; i < 40 && ready.status != 200; ++i) {
    ready = http_get(port, "/ready");
    std::this_thread::sleep_for(250ms);
  }
  CHECK(ready.status == 200);
  CHECK(worker.stdout_text().find("consumption resumed") != std::string::npos);
  worker.send_signal(SIGTERM);
  CHECK(worker.wait_exit(20s) == 0);
}
