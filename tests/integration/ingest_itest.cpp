// The ingest API against the real broker: what a 202 promised is in Kafka, byte-valid against the
// contract and normalised; a batch is split by type into its topics with a status per item; and
// every refusal is a JSON error with its status, 503 included when the broker cannot take it.

#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "events/event_decoder.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

const std::string kAuth = "Bearer itest-token-0123456789abcdef";

struct IngestDaemon {
  std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  std::string tokens_path = "/tmp/telemetryd-ingest-itest-" + std::to_string(getpid());
  std::string metadata_topic = unique_topic("iitest-meta");
  std::string metrics_topic = unique_topic("iitest-gpu");
  std::string usage_topic = unique_topic("iitest-usage");
  std::unique_ptr<ChildProcess> process;
  int port = 0;

  explicit IngestDaemon(std::vector<std::string> extra = {}) {
    std::ofstream(tokens_path) << "itest itest-token-0123456789abcdef\n";
    std::vector<std::string> argv{
        telemetryd_bin(), "run",
        "--role",         "processor",
        "--set",          "http.listen=127.0.0.1:0",
        "--set",          "kafka.brokers=" + brokers,
        "--set",          "mongodb.uri=" + required_env("TELEMETRYD_TEST_MONGO_URI"),
        "--set",          "processor.group_id=" + unique_topic("iitest-group"),
        "--set",          "processor.topics.gpu_metrics=" + unique_topic("iitest-unused"),
        "--set",          "processor.topics.token_usage=" + unique_topic("iitest-unused"),
        "--set",          "ingest.enabled=true",
        "--set",          "ingest.tokens_file=" + tokens_path,
        "--set",          "processor.query.tokens_file=" + tokens_path,
        "--set",          "ingest.topics.gpu_metadata=" + metadata_topic,
        "--set",          "ingest.topics.gpu_metrics=" + metrics_topic,
        "--set",          "ingest.topics.token_usage=" + usage_topic};
    for (auto& item : extra) argv.push_back(std::move(item));
    process = std::make_unique<ChildProcess>(argv);
    const auto line = process->wait_for_line("\"msg\":\"listening\"", 15s);
    REQUIRE(line);
    port = port_from_listening_line(*line);
  }
  ~IngestDaemon() { unlink(tokens_path.c_str()); }

  HttpResult post(const std::string& target, const std::string& body,
                  const std::string& type = "application/json", Headers headers = {}) const {
    headers.emplace_back("Authorization", kAuth);
    return http_request("127.0.0.1", port, "POST", target, body, type, headers);
  }
};

std::string error_code(const std::string& body) {
  simdjson::dom::parser parser;
  std::string_view code;
  if (parser.parse(body)["error"]["code"].get(code) != simdjson::SUCCESS) return "<no JSON error>";
  return std::string(code);
}

std::string cloudevent(const std::string& id, const std::string& type, const std::string& data) {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"//itest","type":"io.telemetryd.)" +
         type + R"(","time":"2026-12-01T10:00:00.000Z","data":)" + data + "}";
}

}  // namespace

TEST_CASE("POST /metadata: 202 means the normalised event is in Kafka, valid and keyed",
          "[ingest][itest]") {
  IngestDaemon daemon;
  const auto r = daemon.post(
      "/metadata",
      R"({"gpu_uuid":" GPU-it-1 ","host":"node-1","model_name":"H100 80GB",)"
      R"("observed_at":"2026-12-01T12:00:00+02:00","memory_total":"80 GiB","mig_mode":"Disabled",)"
      R"("rack":"r7"})",
      "application/json", {{"Idempotency-Key", "itest-key-1"}});
  REQUIRE(r.status == 202);
  simdjson::dom::parser parser;
  const std::string id(std::string_view(parser.parse(r.body)["id"]));

  const auto messages = read_topics(daemon.brokers, {daemon.metadata_topic}, 1, 30s, 2s);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].key == "GPU-it-1");
  simdjson::dom::parser decoder_parser;
  const auto decoded = telemetryd::events::decode_event(messages[0].value, decoder_parser);
  REQUIRE(std::holds_alternative<telemetryd::events::DecodedEvent>(decoded));
  const auto& event = std::get<telemetryd::events::DecodedEvent>(decoded);
  CHECK(event.id == id);
  CHECK(event.type == "io.telemetryd.gpu.metadata.v1");
  CHECK(event.gpu_uuid == "GPU-it-1");
  const auto data = parser.parse(event.data_json).value();
  CHECK(std::string_view(data["observed_at"]) == "2026-12-01T10:00:00.000Z");
  CHECK(std::int64_t(data["memory_total_bytes"]) == 85899345920);
  CHECK(bool(data["mig_mode"]) == false);
  CHECK(std::string_view(data["rack"]) == "r7");
}

TEST_CASE("POST /v1/events: each type to its topic, a status per item, 207 for a mix",
          "[ingest][itest]") {
  IngestDaemon daemon;
  const std::string metrics = cloudevent(
      "01890a5d-ac96-774b-bcce-b302099a8001", "gpu.metrics.v1",
      R"({"gpu_uuid":"GPU-it-2","host":"node-2","model_name":"A100 40GB","collector":"nvml","utilization_gpu_percent":50})");
  const std::string usage = cloudevent(
      "01890a5d-ac96-774b-bcce-b302099a8002", "token.usage.v1",
      R"({"model":"llama-3-8b","tenant_id":"acme","deployment":"chat-a","usage":{"input_tokens":10,"output_tokens":20}})");
  const std::string metadata = cloudevent(
      "01890a5d-ac96-774b-bcce-b302099a8003", "gpu.metadata.v1",
      R"({"gpu_uuid":"GPU-it-2","host":"node-2","model_name":"A100 40GB","observed_at":"2026-12-01T10:00:00Z"})");
  const std::string bad = cloudevent("not-a-uuid", "gpu.metrics.v1", "{}");

  const auto all_good = daemon.post("/v1/events", metrics + "\n" + usage + "\n" + metadata + "\n",
                                    "application/x-ndjson");
  INFO(all_good.body);
  REQUIRE(all_good.status == 202);
  CHECK(all_good.body.find("\"accepted\":3") != std::string::npos);

  const auto mixed = daemon.post("/v1/events", "[" + bad + "," + usage + "]");
  REQUIRE(mixed.status == 207);
  simdjson::dom::parser parser;
  const auto items = parser.parse(mixed.body)["items"];
  CHECK(std::int64_t(items.at(0)["status"]) == 400);
  CHECK(std::string_view(items.at(0)["error"]["field"]) == "id");
  CHECK(std::int64_t(items.at(1)["status"]) == 202);

  const auto invalid = daemon.post("/v1/events", "[" + bad + "]");
  CHECK(invalid.status == 400);

  const auto got =
      read_topics(daemon.brokers, {daemon.metrics_topic, daemon.usage_topic, daemon.metadata_topic},
                  4, 30s, 2s);
  std::multiset<std::string> where;
  for (const auto& m : got) where.insert(m.topic + " " + m.key);
  CHECK(where.count(daemon.metrics_topic + " GPU-it-2") == 1);
  CHECK(where.count(daemon.usage_topic + " chat-a") == 2);
  CHECK(where.count(daemon.metadata_topic + " GPU-it-2") == 1);
  CHECK(got.size() == 4);
}

TEST_CASE("ingest refusals against the real broker: 400 401 413 415 429, each a JSON error",
          "[ingest][itest]") {
  IngestDaemon daemon({"--set", "ingest.rate_limit_per_s=0.2", "--set", "ingest.rate_limit_burst=3",
                       "--set", "http.body_limit_bytes=4096"});
  const std::string good =
      R"({"gpu_uuid":"GPU-it-3","host":"n","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})";
  auto r = http_request("127.0.0.1", daemon.port, "POST", "/metadata", good, "application/json");
  CHECK(r.status == 401);
  CHECK(error_code(r.body) == "missing_token");
  r = http_request("127.0.0.1", daemon.port, "POST", "/metadata", good, "application/json",
                   {{"Authorization", "Bearer itest-token-0123456789abcdeX"}});
  CHECK(r.status == 401);
  CHECK(error_code(r.body) == "invalid_token");
  r = daemon.post("/metadata", std::string(5000, 'x'));
  CHECK(r.status == 413);
  CHECK(error_code(r.body) == "payload_too_large");
  r = daemon.post("/metadata", good, "application/xml");
  CHECK(r.status == 415);
  CHECK(error_code(r.body) == "unsupported_media_type");
  r = daemon.post("/metadata",
                  R"({"host":"n","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})");
  CHECK(r.status == 400);
  CHECK(error_code(r.body) == "missing_field");
  r = daemon.post("/metadata", good);
  CHECK(r.status == 202);
  r = daemon.post("/metadata", good);
  CHECK(r.status == 429);
  CHECK(error_code(r.body) == "rate_limited");
  CHECK(std::stoi(r.headers["retry-after"]) >= 1);
  // What was refused never reached Kafka: exactly the one accepted event is there.
  CHECK(read_topics(daemon.brokers, {daemon.metadata_topic}, 1, 20s, 2s).size() == 1);
}

TEST_CASE("ingest: a broker that is down gives 503 with Retry-After, and nothing is acknowledged",
          "[ingest][itest]") {
  // A port where no broker listens: librdkafka cannot deliver within ack_timeout_ms.
  IngestDaemon daemon(
      {"--set", "kafka.brokers=127.0.0.1:9", "--set", "ingest.ack_timeout_ms=1500"});
  auto r = daemon.post(
      "/metadata",
      R"({"gpu_uuid":"GPU-it-4","host":"n","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})");
  CHECK(r.status == 503);
  CHECK(error_code(r.body) == "kafka_unavailable");
  CHECK(r.headers["retry-after"] == "1");
  r = daemon.post(
      "/v1/events",
      cloudevent(
          "01890a5d-ac96-774b-bcce-b302099a8004", "gpu.metadata.v1",
          R"({"gpu_uuid":"g","host":"h","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})"),
      "application/x-ndjson");
  CHECK(r.status == 503);
  CHECK(r.body.find("\"failed\":1") != std::string::npos);
  const auto metrics = http_get(daemon.port, "/metrics");
  CHECK(metrics.body.find("ingest_publish_failures_total{topic=\"" + daemon.metadata_topic) !=
        std::string::npos);
}
