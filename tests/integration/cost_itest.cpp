// Cost per token end to end (docs/cost.md): real processors consume from the broker, store in
// FerretDB and price the windows from what is stored. One processor and three processors in a
// group must price every usage document the same, and a restarted processor must price
// deployment-only usage through the placement that the store learned before the restart.

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <unistd.h>

#include <simdjson.h>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "events/cloudevent.hpp"
#include "events/event_id.hpp"
#include "events/gpu_metrics.hpp"
#include "events/token_usage.hpp"
#include "support/child_process.hpp"
#include "support/daemon_probe.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"

using namespace test_support;
using namespace std::chrono_literals;
namespace events = telemetryd::events;

namespace {

constexpr std::int64_t kW = 60000;
// 2026-12-01T12:00:00Z, a window start: days in the past, so every window is closed at once.
constexpr std::int64_t kStart = 1796126400000;
constexpr double kH200PerHour = 3.79;  // the catalog's NVIDIA H200 (docs/cost.md)

struct Message {
  std::string topic, key, value;
};

std::chrono::system_clock::time_point at(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

std::string unique_database(const std::string& prefix) {
  return prefix + std::to_string(getpid()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000);
}

// Chosen so that librdkafka's default partitioner (CRC-32 of the key, modulo the partitions)
// puts the 8 GPUs of the first test on all 6 partitions.
std::string gpu_uuid(int host, int gpu) {
  return "GPU-c0571e57-000d-4000-8000-00000000" + std::to_string(host) + "0" + std::to_string(gpu);
}

std::string host_name(int host) {
  return "cost-node-" + std::to_string(host);
}

// One sample, keyed by its GPU as docs/events.md says.
Message gpu_event(const std::string& topic, int host, int gpu, std::int64_t ms, double util,
                  std::int64_t energy_mj) {
  events::GpuSample s;
  s.gpu_uuid = gpu_uuid(host, gpu);
  s.host = host_name(host);
  s.model_name = "NVIDIA H200";
  s.collector = "synthetic";
  s.gpu_index = gpu;
  s.utilization_gpu_percent = util;
  s.energy_consumed_mj = energy_mj;
  const std::string id = events::deterministic_uuid_v7(ms, s.gpu_uuid);
  return {topic, s.gpu_uuid,
          events::encode_cloudevent(id, "//test/cost", "io.telemetryd.gpu.metrics.v1", at(ms),
                                    s.gpu_uuid, events::encode_gpu_metrics_data(s))};
}

// One request, keyed by its deployment (its model when it has none).
Message usage_event(const std::string& topic, const std::string& seed, std::int64_t ms,
                    const events::TokenUsage& u) {
  const std::string id = events::deterministic_uuid_v7(ms, seed);
  return {topic, u.deployment.value_or(u.model),
          events::encode_cloudevent(id, "//test/cost", "io.telemetryd.token.usage.v1", at(ms),
                                    u.tenant_id, events::encode_token_usage_data(u))};
}

// Samples every 5 s of the GPUs of `hosts` over [from_s, to_s) after kStart, from one sample
// before (each GPU's energy baseline). Utilisation varies; the energy counter only grows.
void add_gpu_samples(std::vector<Message>& out, const std::string& topic,
                     const std::vector<int>& hosts, int from_s, int to_s) {
  for (const int h : hosts) {
    for (int g = 0; g < 2; ++g) {
      std::int64_t energy_mj = 1000000000LL * (h + 1) + 7000000LL * g;
      for (int t = from_s - 5; t < to_s; t += 5) {
        const double util = 20 + (17 * (t / 5) + 29 * g + 11 * h) % 75;
        energy_mj += (250 + 40 * h + 60 * g + 2 * ((t / 5) % 7)) * 5 * 1000LL;
        out.push_back(gpu_event(topic, h, g, kStart + t * 1000LL, util, energy_mj));
      }
    }
  }
}

void create_topics(const std::string& brokers, const std::vector<std::string>& names,
                   int partitions) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr);
  rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  REQUIRE(admin != nullptr);
  std::vector<rd_kafka_NewTopic_t*> topics;
  for (const auto& name : names) {
    topics.push_back(rd_kafka_NewTopic_new(name.c_str(), partitions, 1, errstr, sizeof errstr));
    REQUIRE(topics.back() != nullptr);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
  rd_kafka_CreateTopics(admin, topics.data(), topics.size(), nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  REQUIRE(event != nullptr);
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
  REQUIRE(result != nullptr);
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  REQUIRE(count == names.size());
  for (std::size_t i = 0; i < count; ++i) {
    INFO(rd_kafka_topic_result_name(results[i])
         << ": "
         << (rd_kafka_topic_result_error_string(results[i]) != nullptr
                 ? rd_kafka_topic_result_error_string(results[i])
                 : ""));
    CHECK(rd_kafka_topic_result_error(results[i]) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  for (auto* t : topics) rd_kafka_NewTopic_destroy(t);
  rd_kafka_destroy(admin);
}

// Produces with the default partitioner (by key); returns the partitions each topic got.
std::map<std::string, std::set<std::int32_t>> produce(const std::string& brokers,
                                                      const std::vector<Message>& messages) {
  struct Delivered {
    std::map<std::string, std::set<std::int32_t>> partitions;
    std::size_t failed = 0;
  } delivered;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof errstr);
  rd_kafka_conf_set_opaque(conf, &delivered);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* d = static_cast<Delivered*>(opaque);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++d->failed;
      return;
    }
    d->partitions[rd_kafka_topic_name(m->rkt)].insert(m->partition);
  });
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  REQUIRE(producer != nullptr);
  for (const auto& m : messages) {
    for (;;) {
      const auto err = rd_kafka_producev(
          producer, RD_KAFKA_V_TOPIC(m.topic.c_str()), RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(m.value.data()), m.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      REQUIRE(err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
      rd_kafka_poll(producer, 50);
    }
  }
  REQUIRE(rd_kafka_flush(producer, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
  REQUIRE(delivered.failed == 0);
  return delivered.partitions;
}

std::string log_tail(const ChildProcess& child) {
  const std::string log = child.stdout_text() + child.stderr_text();
  return log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
}

std::string logs_of(const std::vector<std::unique_ptr<ChildProcess>>& children) {
  std::string out;
  for (std::size_t i = 0; i < children.size(); ++i) {
    out += "\nprocessor " + std::to_string(i) + " of " + std::to_string(children.size()) + ":\n" +
           log_tail(*children[i]);
  }
  return out;
}

// The `partitions assigned` count of the child's latest rebalance; 0 after a revocation.
int assigned_partitions(const ChildProcess& child) {
  int count = 0;
  std::istringstream lines(child.stdout_text());
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"msg\":\"partitions revoked\"") != std::string::npos) count = 0;
    if (line.find("\"msg\":\"partitions assigned\"") == std::string::npos) continue;
    const auto at = line.find("\"count\":");
    if (at != std::string::npos) count = std::atoi(line.c_str() + at + 8);
  }
  return count;
}

struct Run {
  std::string brokers;
  std::string mongo;
  std::string gpu_topic;
  std::string usage_topic;
  std::string database;
  std::string group;

  std::vector<std::string> processor_argv() const {
    return {telemetryd_bin(), "run",
            "--role",         "processor",
            "--set",          "http.listen=127.0.0.1:0",
            "--set",          "kafka.brokers=" + brokers,
            "--set",          "mongodb.uri=" + mongo,
            "--set",          "mongodb.database=" + database,
            "--set",          "processor.group_id=" + group,
            "--set",          "processor.topics.gpu_metrics=" + gpu_topic,
            "--set",          "processor.topics.token_usage=" + usage_topic,
            "--set",          "processor.cost.settle_s=1",
            "--set",          "processor.cost.window_s=60",
            "--set",          "mongodb.check_interval_ms=500",
            "--set",          "processor.retry_backoff_max_ms=1000",
            "--set",          "processor.query.auth=none"};
  }

  std::int64_t count(const std::string& collection, const std::string& filter = {}) const {
    return count_documents(mongo, database, collection, filter);
  }

  // Waits until `deadline` for the database to hold `usage` usage documents and `samples` GPU
  // samples, every usage document priced and no window waiting to be priced. Every count is a
  // scan on FerretDB, which also serves the processors: the costly ones are asked only once the
  // cheap ones allow it, once a second.
  bool wait_priced(std::int64_t usage, std::int64_t samples,
                   std::chrono::steady_clock::time_point deadline, std::string& last) const {
    std::int64_t stored = -1, gpu = -1, marks = -1, priced = -1;
    for (;;) {
      if (stored != usage || gpu != samples) {
        stored = count("token_usage");
        gpu = count("gpu_metrics");
      }
      if (stored == usage && gpu == samples) {
        marks = count("cost_windows");
        if (marks == 0) {
          priced = count("token_usage_costs", R"({"cost.window_start":{"$exists":true}})");
        }
      }
      std::ostringstream state;
      state << database << ": token_usage " << stored << "/" << usage << ", gpu_metrics " << gpu
            << "/" << samples << ", cost_windows marks " << marks << ", priced " << priced
            << " (-1: not counted yet)";
      last = state.str();
      if (marks == 0 && priced == usage) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(1s);
    }
  }
};

Run make_run(const std::string& gpu_topic, const std::string& usage_topic,
             const std::string& prefix) {
  Run r;
  r.brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  r.mongo = required_env("TELEMETRYD_TEST_MONGO_URI");
  r.gpu_topic = gpu_topic;
  r.usage_topic = usage_topic;
  r.database = unique_database(prefix);
  r.group = unique_topic(prefix + "-group");
  return r;
}

struct DropDatabase {
  const Run& run;
  ~DropDatabase() { drop_database(run.mongo, run.database); }
};

// The cost block of one stored usage document.
struct StoredCost {
  bool has_window_start = false;
  std::string window_start;  // as the document has it
  std::string placement;
  std::vector<std::string> gpus;
  std::map<std::string, std::optional<double>> values;  // the priced fields; nullopt: null
  std::map<std::string, std::string> null_reasons;
};

const std::vector<std::string> kCostFields{"amortized_usd", "utilization_usd", "energy_usd",
                                           "gpu_seconds", "energy_j"};

std::optional<double> number_of(simdjson::dom::element e) {
  if (e.is_null()) return std::nullopt;
  if (e.is_double()) return e.get_double().value();
  if (e.is_int64()) return static_cast<double>(e.get_int64().value());
  if (e.is_uint64()) return static_cast<double>(e.get_uint64().value());
  // Relaxed extended JSON writes some numbers as {"$numberDouble": "..."} (NaN, infinities).
  std::string_view text;
  if (!e["$numberDouble"].get(text)) return std::stod(std::string(text));
  FAIL("not a number: " << simdjson::to_string(e));
  return std::nullopt;
}

// Every usage document's cost block, by id (MongoDB keeps them in token_usage_costs).
std::map<std::string, StoredCost> stored_costs(const Run& run) {
  std::map<std::string, StoredCost> out;
  simdjson::dom::parser parser;
  for (const std::string& json :
       find_documents_json(run.mongo, run.database, "token_usage_costs")) {
    simdjson::dom::object doc;
    REQUIRE(!parser.parse(json).get(doc));
    std::string_view id;
    REQUIRE(!doc["_id"].get(id));
    StoredCost& c = out[std::string(id)];
    simdjson::dom::object cost;
    if (doc["cost"].get(cost)) continue;
    simdjson::dom::element start;
    c.has_window_start = !cost["window_start"].get(start) && !start.is_null();
    if (c.has_window_start) c.window_start = simdjson::to_string(start);
    std::string_view placement;
    if (!cost["placement"].get(placement)) c.placement = std::string(placement);
    simdjson::dom::array gpus;
    if (!cost["gpus"].get(gpus)) {
      for (auto g : gpus) c.gpus.emplace_back(std::string_view(g.get_string().value()));
    }
    for (const auto& field : kCostFields) {
      simdjson::dom::element e;
      if (cost[field].get(e)) {
        c.values[field] = std::nullopt;
      } else {
        c.values[field] = number_of(e);
      }
    }
    simdjson::dom::object reasons;
    if (!cost["null_reasons"].get(reasons)) {
      for (auto [key, value] : reasons) {
        std::string_view text;
        if (!value.get(text)) c.null_reasons[std::string(key)] = std::string(text);
      }
    }
  }
  return out;
}

bool same(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b) return !a && !b;
  const double scale = std::max(std::fabs(*a), std::fabs(*b));
  return std::fabs(*a - *b) <= 1e-9 * scale + 1e-15;
}

}  // namespace

TEST_CASE("3 processors and 1 processor price every usage document the same", "[cost][itest]") {
  const std::string gpu_topic = unique_topic("costitest-gpu");
  const std::string usage_topic = unique_topic("costitest-usage");
  Run one = make_run(gpu_topic, usage_topic, "costone");
  Run three = make_run(gpu_topic, usage_topic, "costthree");
  DropDatabase drop_one{one}, drop_three{three};
  create_topics(one.brokers, {gpu_topic, usage_topic}, 6);

  // Six minutes of event time: 4 hosts x 2 H200s sampled every 5 s, and 600 requests of 3
  // deployments (deployment d runs on hosts d and d + 1) and 5 tenants. A third name their
  // GPUs, a third their host, a third only their deployment (priced through the placement the
  // others teach).
  std::vector<Message> messages;
  add_gpu_samples(messages, gpu_topic, {0, 1, 2, 3}, 0, 360);
  const std::int64_t samples = static_cast<std::int64_t>(messages.size());
  const std::vector<std::string> models{"llama-3.1-70b", "llama-3.1-8b", "mixtral-8x7b"};
  // FerretDB 1.24 takes about 20 ms to write one cost block, and the three processors may each
  // write a window's blocks: 600 requests keep the case within about a minute.
  constexpr int kUsage = 600;
  for (int i = 0; i < kUsage; ++i) {
    const std::int64_t ms = kStart + 37 + i * 600LL;
    const int triple = i / 3;
    const int d = triple % 3;
    const int host = d + (triple / 3) % 2;
    events::TokenUsage u;
    u.model = models[d];
    u.tenant_id = "tenant-" + std::to_string((i * 7) % 5);
    u.input_tokens = 100 + (i * 13) % 900;
    u.output_tokens = 20 + (i * 37) % 400;
    switch (i % 3) {
      case 0:  // deployment and GPUs: one or both GPUs of one of its hosts
        u.deployment = "deploy-" + std::to_string(d);
        u.gpu_uuids.push_back(gpu_uuid(host, triple % 2));
        if ((triple / 6) % 2 == 1) u.gpu_uuids.push_back(gpu_uuid(host, 1 - triple % 2));
        break;
      case 1:  // host, with its deployment every other time
        u.host = host_name(host);
        if ((triple / 6) % 2 == 0) u.deployment = "deploy-" + std::to_string(d);
        break;
      default:  // deployment only
        u.deployment = "deploy-" + std::to_string(d);
        break;
    }
    messages.push_back(usage_event(usage_topic, "cost-itest-" + std::to_string(i), ms, u));
  }

  // Both runs start together; the three join their group before anything is produced, so each
  // owns its share of the partitions from the first message on.
  ChildProcess a(one.processor_argv());
  std::vector<std::unique_ptr<ChildProcess>> b;
  for (int i = 0; i < 3; ++i) b.push_back(std::make_unique<ChildProcess>(three.processor_argv()));
  const int port_a = listening_port(a);
  std::vector<int> ports_b;
  for (const auto& child : b) ports_b.push_back(listening_port(*child));
  const auto joined_by = std::chrono::steady_clock::now() + 45s;
  auto all_joined = [&] {
    if (assigned_partitions(a) != 12) return false;
    for (const auto& child : b) {
      if (assigned_partitions(*child) != 4) return false;
    }
    return true;
  };
  while (!all_joined() && std::chrono::steady_clock::now() < joined_by) {
    std::this_thread::sleep_for(200ms);
  }
  {
    INFO("the single processor's log:\n" << log_tail(a) << logs_of(b));
    REQUIRE(all_joined());
  }

  const auto partitions = produce(one.brokers, messages);
  // The keys spread the GPU samples over every partition, so every member of the three gets some.
  REQUIRE(partitions.at(gpu_topic).size() == 6);

  std::string state_one, state_three;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  const bool priced_one = one.wait_priced(kUsage, samples, deadline, state_one);
  const bool priced_three = three.wait_priced(kUsage, samples, deadline, state_three);
  {
    INFO("1 processor: " << state_one << "\n" << log_tail(a));
    CHECK(priced_one);
  }
  {
    INFO("3 processors: " << state_three << logs_of(b));
    CHECK(priced_three);
  }

  // Every member of the three consumed a share.
  double consumed_three = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    const double consumed =
        metric(http_get(ports_b[i], "/metrics").body, "processor_messages_consumed_total");
    INFO("processor " << i << " of 3 consumed " << consumed);
    CHECK(consumed > 0);
    CHECK(consumed < static_cast<double>(messages.size()));
    consumed_three += consumed;
  }
  CHECK(consumed_three >= static_cast<double>(messages.size()));
  CHECK(metric(http_get(port_a, "/metrics").body, "processor_messages_consumed_total") ==
        static_cast<double>(messages.size()));

  a.send_signal(SIGTERM);
  for (const auto& child : b) child->send_signal(SIGTERM);
  CHECK(a.wait_exit(30s) == 0);
  for (const auto& child : b) CHECK(child->wait_exit(30s) == 0);
  REQUIRE(priced_one);
  REQUIRE(priced_three);

  const auto costs_one = stored_costs(one);
  const auto costs_three = stored_costs(three);
  REQUIRE(costs_one.size() == static_cast<std::size_t>(kUsage));
  REQUIRE(costs_three.size() == static_cast<std::size_t>(kUsage));
  std::map<std::string, int> non_null;
  std::map<std::string, int> placements;
  std::map<std::string, double> amortized_by_window;
  int mismatches = 0;
  for (const auto& [id, c1] : costs_one) {
    const auto it = costs_three.find(id);
    REQUIRE(it != costs_three.end());
    const StoredCost& c3 = it->second;
    CHECK(c1.has_window_start);
    CHECK(c3.has_window_start);
    ++placements[c1.placement];
    if ((c1.placement != c3.placement || c1.gpus != c3.gpus) && ++mismatches <= 10) {
      UNSCOPED_INFO(id << ": placement " << c1.placement << " with 1 processor, " << c3.placement
                       << " with 3 (or their GPUs differ)");
    }
    for (const auto& field : kCostFields) {
      const auto& v1 = c1.values.at(field);
      const auto& v3 = c3.values.at(field);
      if (v1) ++non_null[field];
      if (!same(v1, v3)) {
        if (++mismatches <= 10) {
          UNSCOPED_INFO(id << " " << field << ": 1 processor "
                           << (v1 ? std::to_string(*v1) : "null") << ", 3 processors "
                           << (v3 ? std::to_string(*v3) : "null"));
        }
      }
    }
    if (c1.values.at("amortized_usd")) {
      amortized_by_window[c1.window_start] += *c1.values.at("amortized_usd");
    }
  }
  CHECK(mismatches == 0);
  for (const auto& field : kCostFields) {
    INFO(field << " priced for " << non_null[field] << " of " << kUsage);
    CHECK(non_null[field] > kUsage * 95 / 100);
  }
  // Each way of finding the GPUs served a third of the requests, as the workload names them.
  INFO("placements: gpu_uuids " << placements["gpu_uuids"] << ", host " << placements["host"]
                                << ", deployment " << placements["deployment"] << ", none "
                                << placements["none"]);
  CHECK(placements["gpu_uuids"] == kUsage / 3);
  CHECK(placements["host"] == kUsage / 3);
  CHECK(placements["deployment"] == kUsage / 3);
  // Every GPU ran tokens in every window, so each window's requests add up to 8 H200s for 60 s.
  CHECK(amortized_by_window.size() == 6);
  for (const auto& [start, total] : amortized_by_window) {
    INFO("window " << start);
    CHECK(total == Approx(8 * kH200PerHour * 60 / 3600).epsilon(1e-9));
  }
}

TEST_CASE(
    "after a processor restart, deployment-only usage is priced through the placement "
    "stored in MongoDB",
    "[cost][itest]") {
  const std::string gpu_topic = unique_topic("costitest-restart-gpu");
  const std::string usage_topic = unique_topic("costitest-restart-usage");
  Run run = make_run(gpu_topic, usage_topic, "costrestart");
  DropDatabase drop{run};
  create_topics(run.brokers, {gpu_topic, usage_topic}, 3);
  const std::vector<std::string> node_gpus{gpu_uuid(7, 0), gpu_uuid(7, 1)};

  // First minute: usage of deployment "chat" naming its host teaches chat -> host:cost-node-7.
  std::vector<Message> first;
  add_gpu_samples(first, gpu_topic, {7}, 0, 60);
  const auto first_samples = static_cast<std::int64_t>(first.size());
  for (int i = 0; i < 20; ++i) {
    events::TokenUsage u;
    u.model = "llama-3.1-70b";
    u.tenant_id = "tenant-" + std::to_string(i % 2);
    u.input_tokens = 200;
    u.output_tokens = 50 + i;
    u.deployment = "chat";
    u.host = host_name(7);
    first.push_back(usage_event(usage_topic, "restart-first-" + std::to_string(i),
                                kStart + 1000 + i * 2500LL, u));
  }
  produce(run.brokers, first);
  {
    ChildProcess processor(run.processor_argv());
    std::string state;
    const bool priced =
        run.wait_priced(20, first_samples, std::chrono::steady_clock::now() + 60s, state);
    INFO(state << "\n" << log_tail(processor));
    REQUIRE(priced);
    REQUIRE(run.count("placements", R"({"deployment":"chat","target":"host:cost-node-7"})") == 1);
    processor.send_signal(SIGTERM);
    REQUIRE(processor.wait_exit(30s) == 0);
  }

  // Two windows later, after the restart: usage of "chat" naming nothing else, and of a
  // deployment that nothing ever placed.
  std::vector<Message> second;
  add_gpu_samples(second, gpu_topic, {7}, 120, 180);
  const auto second_samples = static_cast<std::int64_t>(second.size());
  std::set<std::string> chat_ids;
  std::string unplaced_id;
  for (int i = 0; i < 10; ++i) {
    events::TokenUsage u;
    u.model = "llama-3.1-70b";
    u.tenant_id = "tenant-" + std::to_string(i % 2);
    u.input_tokens = 300;
    u.output_tokens = 80 + i;
    u.deployment = i == 9 ? "batch" : "chat";
    const std::int64_t ms = kStart + 121000 + i * 5000LL;
    second.push_back(usage_event(usage_topic, "restart-second-" + std::to_string(i), ms, u));
    const std::string id = events::deterministic_uuid_v7(ms, "restart-second-" + std::to_string(i));
    if (i == 9) {
      unplaced_id = id;
    } else {
      chat_ids.insert(id);
    }
  }
  produce(run.brokers, second);
  ChildProcess processor(run.processor_argv());
  std::string state;
  const bool priced = run.wait_priced(30, first_samples + second_samples,
                                      std::chrono::steady_clock::now() + 60s, state);
  {
    INFO(state << "\n" << log_tail(processor));
    CHECK(priced);
  }
  processor.send_signal(SIGTERM);
  CHECK(processor.wait_exit(30s) == 0);
  REQUIRE(priced);

  const auto costs = stored_costs(run);
  REQUIRE(costs.size() == 30);
  for (const auto& id : chat_ids) {
    INFO(id);
    REQUIRE(costs.count(id) == 1);
    const StoredCost& c = costs.at(id);
    CHECK(c.placement == "deployment");
    CHECK(c.gpus == node_gpus);
    for (const auto& field : kCostFields) {
      INFO(field);
      CHECK(c.values.at(field).has_value());
      CHECK(c.values.at(field).value_or(0) > 0);
    }
    CHECK(c.null_reasons.empty());
  }
  REQUIRE(costs.count(unplaced_id) == 1);
  const StoredCost& unplaced = costs.at(unplaced_id);
  CHECK(unplaced.placement == "none");
  CHECK_FALSE(unplaced.values.at("amortized_usd"));
  const auto reason = unplaced.null_reasons.find("amortized");
  CHECK((reason == unplaced.null_reasons.end() ? "(none)" : reason->second) == "no_placement");
}
