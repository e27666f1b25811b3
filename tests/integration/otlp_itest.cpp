// The OTLP/HTTP receiver fed by the real OpenTelemetry Python SDK (tests/tools/otlp_genai_client.py
// in the venv TELEMETRYD_TEST_OTEL_PYTHON names): what the SDK sent is what /v1/usage shows,
// exactly; a retried export stores nothing new; bad bodies get the OTLP status they should and
// lose nothing valid; `--role processor` publishes to Kafka before answering and stores once in
// the real FerretDB.

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>
#include <algorithm>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "archive/gzip.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "support/kafka_reader.hpp"
#include "support/mongo_probe.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

std::string client_script() {
  return source_root() + "/tests/tools/otlp_genai_client.py";
}

// Runs the SDK client; returns its JSON line (the last line that starts with '{').
std::string run_client(std::vector<std::string> args) {
  args.insert(args.begin(), {required_env("TELEMETRYD_TEST_OTEL_PYTHON"), client_script()});
  const CommandResult result = run_command(args);
  INFO(result.output);
  REQUIRE(result.status == 0);
  std::istringstream lines(result.output);
  std::string json;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.front() == '{') json = line;
  }
  REQUIRE(!json.empty());
  return json;
}

struct Totals {
  std::int64_t requests = 0, input = 0, output = 0;
  double cost = 0;
  bool operator==(const Totals& o) const {
    return requests == o.requests && input == o.input && output == o.output;
  }
};

std::map<std::string, Totals> expected_models(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  std::map<std::string, Totals> out;
  for (auto [model, totals] : doc["models"].get_object()) {
    out[std::string(model)] = {totals["requests"].get_int64(), totals["input_tokens"].get_int64(),
                               totals["output_tokens"].get_int64()};
  }
  return out;
}

// /v1/usage?group_by=model, only the models named in `want`.
std::map<std::string, Totals> usage_of(int port, const std::map<std::string, Totals>& want,
                                       const std::string& auth = {}) {
  Headers headers;
  if (!auth.empty()) headers.push_back({"Authorization", "Bearer " + auth});
  const HttpResult res =
      http_request("127.0.0.1", port, "GET", "/v1/usage?group_by=model", {}, {}, headers);
  std::map<std::string, Totals> out;
  if (res.status != 200) return out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(res.body).get(doc)) return out;
  for (simdjson::dom::element row : doc["groups"].get_array()) {
    const std::string model(row["_id"].get_string().value());
    if (!want.contains(model)) continue;
    out[model] = {row["requests"].get_int64(), row["input_tokens"].get_int64(),
                  row["output_tokens"].get_int64(), row["cost_usd"].get_double()};
  }
  return out;
}

// Polls until /v1/usage shows `want` (the pipeline stores within a batch interval).
std::map<std::string, Totals> wait_for_usage(int port, const std::map<std::string, Totals>& want,
                                             const std::string& auth = {}) {
  std::map<std::string, Totals> got;
  for (int i = 0; i < 100; ++i) {
    got = usage_of(port, want, auth);
    if (got == want) break;
    std::this_thread::sleep_for(200ms);
  }
  return got;
}

// Polls until every model of `want` has a cost (its windows priced), at most 30 s.
std::map<std::string, Totals> wait_for_costs(int port, const std::map<std::string, Totals>& want) {
  std::map<std::string, Totals> got;
  for (int i = 0; i < 150; ++i) {
    got = usage_of(port, want);
    if (got == want && std::all_of(got.begin(), got.end(),
                                   [](const auto& entry) { return entry.second.cost > 0; })) {
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  return got;
}

std::string describe(const std::map<std::string, Totals>& totals) {
  std::string out;
  for (const auto& [model, t] : totals) {
    out += model + ": " + std::to_string(t.requests) + " requests, " + std::to_string(t.input) +
           " in, " + std::to_string(t.output) + " out, $" + std::to_string(t.cost) + "\n";
  }
  return out;
}

double metric_value(const std::string& exposition, const std::string& series) {
  const auto at = exposition.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + series.size() + 2));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct AllRole {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("telemetryd-otlp-" + std::to_string(getpid()));
  std::unique_ptr<ChildProcess> child;
  int port = 0;
  int otlp_port = 0;
  std::string endpoint;

  AllRole() {
    std::filesystem::remove_all(dir);
    child = std::make_unique<ChildProcess>(std::vector<std::string>{
        telemetryd_bin(), "run", "--config", source_root() + "/config/roles/all.yaml", "--set",
        "http.listen=127.0.0.1:0", "--set", "otlp.listen=127.0.0.1:0", "--set",
        "embedded.data_dir=" + dir.string(), "--set", "synthetic.sample_interval_ms=200",
        // One-second cost windows priced half a second after their last event, so the test
        // sees costs within seconds (docs/cost.md).
        "--set", "embedded.cost.window_s=1", "--set", "embedded.cost.settle_s=0.5"});
    const auto main_line = child->wait_for_line("\"listener\":\"main\"", 10s);
    const auto otlp_line = child->wait_for_line("\"listener\":\"otlp\"", 10s);
    REQUIRE(main_line);
    REQUIRE(otlp_line);
    port = port_from_listening_line(*main_line);
    otlp_port = port_from_listening_line(*otlp_line);
    endpoint = "http://127.0.0.1:" + std::to_string(otlp_port);
  }
  ~AllRole() {
    child->send_signal(SIGTERM);
    child->wait_exit(15s);
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

TEST_CASE("the all role stores exactly the usage the OpenTelemetry SDK exported, once",
          "[otlp][itest]") {
  AllRole all;
  // The receiver is on by default in the example file, without a token, on loopback.
  CHECK(all.child->stdout_text().find("\"msg\":\"OTLP/HTTP receiver enabled\"") !=
        std::string::npos);

  SECTION("protobuf, exported twice (a retried export)") {
    const std::string sent = run_client({"spans", "--endpoint", all.endpoint, "--repeat", "2",
                                         "--model-prefix", "pb-", "--count", "12"});
    CHECK(sent.find("\"exports\": [\"SUCCESS\", \"SUCCESS\"]") != std::string::npos);
    const auto want = expected_models(sent);
    REQUIRE(want.size() == 2);
    auto got = wait_for_usage(all.port, want);
    INFO("sent:\n" << describe(want) << "stored:\n" << describe(got));
    REQUIRE(got == want);
    // Both models ran on gpu-node-01 (the spans' host.name), whose synthetic GPUs are priced
    // once their cost windows settle.
    got = wait_for_costs(all.port, want);
    INFO("priced:\n" << describe(got));
    for (const auto& [model, totals] : got) CHECK(totals.cost > 0);
    std::this_thread::sleep_for(1s);
    CHECK(usage_of(all.port, want) == want);  // the second export stored nothing new

    const std::string metrics = http_get(all.port, "/metrics").body;
    CHECK(metric_value(metrics, "otlp_spans_total{outcome=\"usage\"}") == 24);
    CHECK(metric_value(metrics, "otlp_spans_total{outcome=\"without_usage\"}") == 24);
    // The second export's twelve events reached the store and were recognised as duplicates.
    CHECK(metric_value(metrics, "processor_duplicates_total") == 12);
    // Prompt and completion content never reaches the store or the log.
    std::string stored;
    for (const auto& entry : std::filesystem::directory_iterator(all.dir)) {
      stored += read_file(entry.path());
    }
    CHECK(stored.find("\"input_tokens\"") != std::string::npos);
    CHECK(stored.find("SECRET-PROMPT") == std::string::npos);
    CHECK(stored.find("SECRET-COMPLETION") == std::string::npos);
    CHECK(all.child->stdout_text().find("SECRET") == std::string::npos);
  }

  SECTION("JSON (the SDK's own encoding as OTLP/JSON), gzip, exported twice") {
    const std::string sent = run_client({"spans", "--endpoint", all.endpoint, "--protocol", "json",
                                         "--repeat", "2", "--model-prefix", "json-"});
    CHECK(sent.find("200 application/json {}") != std::string::npos);
    const auto want = expected_models(sent);
    auto got = wait_for_usage(all.port, want);
    INFO("sent:\n" << describe(want) << "stored:\n" << describe(got));
    CHECK(got == want);
    const std::string gz =
        run_client({"spans", "--endpoint", all.endpoint, "--gzip", "--model-prefix", "gz-"});
    const auto want_gz = expected_models(gz);
    CHECK(wait_for_usage(all.port, want_gz) == want_gz);
  }

  SECTION("a mixed batch: the valid spans stored, the bad ones refused in partial_success") {
    const std::string sent =
        run_client({"mixed", "--endpoint", all.endpoint, "--model-prefix", "mixed-"});
    INFO(sent);
    CHECK(sent.find("\"status\": 200") != std::string::npos);
    CHECK(sent.find("\"content_type\": \"application/x-protobuf\"") != std::string::npos);
    CHECK(sent.find("\"rejected_spans\": 2") != std::string::npos);
    CHECK(sent.find("is negative (-5)") != std::string::npos);
    CHECK(sent.find("over the limit of 10000000") != std::string::npos);
    const auto want = expected_models(sent);
    CHECK(wait_for_usage(all.port, want) == want);
  }

  SECTION("gen_ai.client.token.usage, delta and cumulative, feeds the token counters") {
    for (const std::string temporality : {"delta", "cumulative"}) {
      const std::string prefix = temporality + "-";
      const std::string sent =
          run_client({"metrics", "--endpoint", all.endpoint, "--temporality", temporality,
                      "--repeat", "3", "--count", "4", "--model-prefix", prefix});
      INFO(sent);
      CHECK(sent.find("\"exports\": [\"SUCCESS\", \"SUCCESS\", \"SUCCESS\"]") != std::string::npos);
      simdjson::dom::parser parser;
      simdjson::dom::element doc = parser.parse(sent);
      const std::string metrics = http_get(all.port, "/metrics").body;
      for (auto [key, value] : doc["tokens"].get_object()) {
        const std::string k(key);
        const std::string model = k.substr(0, k.find('|'));
        const std::string type = k.substr(k.find('|') + 1);
        const std::string series = "otlp_genai_client_tokens_total{model=\"" + model +
                                   "\",provider=\"openai\",token_type=\"" + type + "\"}";
        INFO(series);
        CHECK(metric_value(metrics, series) == static_cast<double>(value.get_int64()));
      }
    }
  }

  SECTION("bad bodies: the OTLP status, a clear error, nothing valid lost") {
    const std::filesystem::path body_file = all.dir / "body.bin";
    std::filesystem::create_directories(all.dir);
    const std::string sent =
        run_client({"body", "--out", body_file.string(), "--model-prefix", "bad-", "--count", "4"});
    const std::string body = read_file(body_file);
    REQUIRE(body.size() > 100);
    const auto post = [&](const std::string& bytes, const std::string& type,
                          const Headers& headers = {}) {
      return http_request("127.0.0.1", all.otlp_port, "POST", "/v1/traces", bytes, type, headers);
    };
    // Truncated protobuf: 400 with a google.rpc.Status in protobuf, nothing stored.
    const HttpResult truncated = post(body.substr(0, body.size() - 7), "application/x-protobuf");
    CHECK(truncated.status == 400);
    CHECK(truncated.content_type == "application/x-protobuf");
    CHECK(truncated.body.find("cannot be decoded") != std::string::npos);
    // The JSON form of the same request truncated: a JSON Status.
    const std::string json = read_file(body_file.string() + ".json");
    const HttpResult bad_json = post(json.substr(0, json.size() / 2), "application/json");
    CHECK(bad_json.status == 400);
    CHECK(bad_json.body.find("\"code\":3") != std::string::npos);
    // Wrong content type.
    const HttpResult text = post(body, "text/plain");
    CHECK(text.status == 415);
    // Not gzip although it says so.
    const HttpResult bad_gzip =
        post(body, "application/x-protobuf", {{"Content-Encoding", "gzip"}});
    CHECK(bad_gzip.status == 400);
    CHECK(bad_gzip.body.find("gzip") != std::string::npos);
    // 21 MiB of zeros gzip to about 20 KiB: refused after inflating, not stored, not a crash.
    const HttpResult bomb = post(telemetryd::archive::gzip_compress(std::string(21 << 20, '\0')),
                                 "application/x-protobuf", {{"Content-Encoding", "gzip"}});
    CHECK(bomb.status == 413);
    // An unknown field (number 99, varint) at the top level is skipped: the spans are stored.
    std::string unknown = body;
    unknown += static_cast<char>((99 << 3) & 0x7f | 0x80);
    unknown += static_cast<char>(99 >> 4);
    unknown += static_cast<char>(1);
    const HttpResult ok = post(unknown, "application/x-protobuf");
    CHECK(ok.status == 200);
    const auto want = expected_models(sent);
    const auto got = wait_for_usage(all.port, want);
    INFO("sent:\n" << describe(want) << "stored:\n" << describe(got));
    CHECK(got == want);
    const std::string metrics = http_get(all.port, "/metrics").body;
    CHECK(metric_value(metrics, "otlp_requests_total{signal=\"traces\",status=\"400\"}") == 3);
    CHECK(metric_value(metrics, "otlp_requests_total{signal=\"traces\",status=\"413\"}") == 1);
    CHECK(metric_value(metrics, "otlp_requests_total{signal=\"traces\",status=\"415\"}") == 1);
  }
}

TEST_CASE("the processor role publishes the spans' usage to Kafka before the 200, stored once",
          "[otlp][itest]") {
  const std::string brokers = required_env("TELEMETRYD_TEST_KAFKA_BROKERS");
  const std::string uri = required_env("TELEMETRYD_TEST_MONGO_URI");
  const std::string topic = unique_topic("otlp-usage");
  const std::string database = "otlpit" + std::to_string(getpid());
  struct Drop {
    std::string uri, database;
    ~Drop() { drop_database(uri, database); }
  } drop{uri, database};
  const auto tokens = std::filesystem::temp_directory_path() /
                      ("telemetryd-otlp-tokens-" + std::to_string(getpid()));
  const std::string token = "otlp-itest-token-0123456789";
  {
    std::ofstream out(tokens);
    out << "vllm-gateway " << token << "\n";
  }
  std::filesystem::permissions(
      tokens, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ChildProcess child(
      {telemetryd_bin(), "run",
       "--role",         "processor",
       "--set",          "http.listen=127.0.0.1:0",
       "--set",          "kafka.brokers=" + brokers,
       "--set",          "mongodb.uri=" + uri,
       "--set",          "mongodb.database=" + database,
       "--set",          "processor.group_id=" + unique_topic("otlp-group"),
       "--set",          "processor.topics.gpu_metrics=" + unique_topic("otlp-unused"),
       "--set",          "processor.topics.token_usage=" + topic,
       "--set",          "ingest.topics.token_usage=" + topic,
       "--set",          "otlp.enabled=true",
       "--set",          "otlp.listen=127.0.0.1:0",
       "--set",          "otlp.tokens_file=" + tokens.string(),
       "--set",          "processor.query.tokens_file=" + tokens.string()});
  const auto main_line = child.wait_for_line("\"listener\":\"main\"", 15s);
  const auto otlp_line = child.wait_for_line("\"listener\":\"otlp\"", 15s);
  INFO(child.stdout_text().substr(0, 4000));
  REQUIRE(main_line);
  REQUIRE(otlp_line);
  const int port = port_from_listening_line(*main_line);
  const std::string endpoint =
      "http://127.0.0.1:" + std::to_string(port_from_listening_line(*otlp_line));

  // Without the token: 401, nothing published.
  const std::string refused =
      run_client({"mixed", "--endpoint", endpoint, "--model-prefix", "noauth-", "--count", "2"});
  CHECK(refused.find("\"status\": 401") != std::string::npos);

  const std::string sent = run_client({"spans", "--endpoint", endpoint, "--token", token,
                                       "--repeat", "2", "--model-prefix", "proc-"});
  CHECK(sent.find("\"exports\": [\"SUCCESS\", \"SUCCESS\"]") != std::string::npos);
  const auto want = expected_models(sent);
  std::int64_t requests = 0;
  for (const auto& [model, totals] : want) requests += totals.requests;
  // Acknowledged before the 200: every event of both exports is on the topic already.
  const auto messages =
      read_topics(brokers, {topic}, static_cast<std::size_t>(2 * requests), 10s, 1s);
  CHECK(messages.size() == static_cast<std::size_t>(2 * requests));
  std::set<std::string> keys;
  for (const auto& m : messages) keys.insert(m.key);
  CHECK(keys == std::set<std::string>{"chat-frontend"});  // keyed by deployment (service.name)
  // The query API takes the same tokens file: the client's token reads the usage back.
  CHECK(http_get(port, "/v1/usage?group_by=model").status == 401);
  const auto got = wait_for_usage(port, want, token);
  INFO("sent:\n" << describe(want) << "stored:\n" << describe(got));
  CHECK(got == want);
  CHECK(count_documents(uri, database, "token_usage") == requests);
  child.send_signal(SIGTERM);
  CHECK(child.wait_exit(20s) == 0);
  std::filesystem::remove(tokens);
}
