// The ingest API's parts: bearer tokens, the rate limiter, Idempotency-Key ids and the metadata
// normaliser; then the endpoints through the real binary, publishing to librdkafka's mock
// cluster (the real broker is in tests/integration/ingest_itest.cpp).

#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "events/event_decoder.hpp"
#include "http/bearer_tokens.hpp"
#include "ingest/idempotency.hpp"
#include "ingest/metadata_normalizer.hpp"
#include "ingest/rate_limiter.hpp"
#include "support/child_process.hpp"
#include "support/http_client.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"

using namespace telemetryd;
using namespace telemetryd::ingest;
using telemetryd::http::BearerTokens;
using telemetryd::http::TokenClient;
using namespace std::chrono_literals;

namespace {

struct TokensFile {
  std::string path;
  explicit TokensFile(const std::string& text) {
    char name[] = "/tmp/telemetryd-tokens-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TokensFile() { unlink(path.c_str()); }
};

std::vector<ConfigProblem> load_problems(const std::string& text) {
  TokensFile file(text);
  try {
    BearerTokens::load(file.path, "ingest.tokens_file");
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  return parser.parse(json).value();
}

}  // namespace

TEST_CASE("bearer tokens: the right token names its client, anything else is refused", "[ingest]") {
  TokensFile file("# clients\nalice  aaaaaaaaaaaaaaaaaaaaaaaa\n\nbob\tbbbbbbbbbbbbbbbbbbbbbbbb\n");
  const BearerTokens tokens = BearerTokens::load(file.path, "ingest.tokens_file");
  CHECK(tokens.size() == 2);
  CHECK(tokens.authenticate("Bearer aaaaaaaaaaaaaaaaaaaaaaaa").value().name == "alice");
  CHECK(tokens.authenticate("bearer bbbbbbbbbbbbbbbbbbbbbbbb").value().name == "bob");
  CHECK(tokens.authenticate("Bearer aaaaaaaaaaaaaaaaaaaaaaaa").value().all_tenants());
  CHECK_FALSE(tokens.authenticate("Bearer aaaaaaaaaaaaaaaaaaaaaaab"));
  CHECK_FALSE(tokens.authenticate("Bearer aaaaaaaaaaaaaaaaaaaaaaa"));
  CHECK_FALSE(tokens.authenticate("Basic aaaaaaaaaaaaaaaaaaaaaaaa"));
  CHECK_FALSE(tokens.authenticate("Bearer "));
  CHECK_FALSE(tokens.authenticate(""));
}

TEST_CASE("bearer tokens: a bad tokens file names the line and never the token", "[ingest]") {
  const auto short_token = load_problems("alice short-secret-1\n");
  REQUIRE(short_token.size() == 1);
  CHECK(short_token[0].line == 1);
  CHECK(short_token[0].path == "ingest.tokens_file");
  CHECK(short_token[0].message.find("shorter than 16") != std::string::npos);
  // Columns swapped: the token is where the name should be, and is never quoted.
  const auto swapped = load_problems("sup3r-secret-token-value alice\n");
  REQUIRE(swapped.size() == 1);
  CHECK(swapped[0].to_string().find("sup3r-secret-token-value") == std::string::npos);
  CHECK(short_token[0].to_string().find("short-secret-1") == std::string::npos);

  const auto repeated = load_problems(
      "alice aaaaaaaaaaaaaaaaaaaaaaaa\nbob aaaaaaaaaaaaaaaaaaaaaaaa\nalice "
      "cccccccccccccccccccccccc\n");
  REQUIRE(repeated.size() == 2);
  CHECK(repeated[0].line == 2);
  CHECK(repeated[1].line == 3);
  for (const auto& p : repeated) CHECK(p.to_string().find("aaaaaaaaaaaaaaaa") == std::string::npos);

  CHECK(load_problems("lonely-token-without-name\n").size() == 1);
  CHECK(load_problems("# only a comment\n").size() == 1);
  try {
    BearerTokens::load("/nonexistent/tokens", "ingest.tokens_file");
    FAIL("no error for a missing file");
  } catch (const ConfigError& e) {
    CHECK(e.problems().at(0).message.find("cannot read") != std::string::npos);
  }
}

TEST_CASE("bearer tokens: tenants= scopes a token, * or no field means every tenant",
          "[ingest][tokens]") {
  TokensFile file(
      "ops   oooooooooooooooooooooooo\n"
      "star  ssssssssssssssssssssssss tenants=*\n"
      "acme  aaaaaaaaaaaaaaaaaaaaaaaa tenants=acme\n"
      "both\tbbbbbbbbbbbbbbbbbbbbbbbb\ttenants=globex,acme,acme\n");
  const BearerTokens tokens = BearerTokens::load(file.path, "processor.query.tokens_file");
  CHECK(tokens.size() == 4);
  const TokenClient ops = tokens.authenticate("Bearer oooooooooooooooooooooooo").value();
  CHECK(ops.all_tenants());
  CHECK(ops.may_read("anyone"));
  CHECK(tokens.authenticate("Bearer ssssssssssssssssssssssss").value().all_tenants());
  const TokenClient acme = tokens.authenticate("Bearer aaaaaaaaaaaaaaaaaaaaaaaa").value();
  CHECK(acme.name == "acme");
  CHECK(acme.tenants == std::vector<std::string>{"acme"});
  CHECK(acme.may_read("acme"));
  CHECK_FALSE(acme.may_read("globex"));
  CHECK_FALSE(acme.may_read(""));
  const TokenClient both = tokens.authenticate("Bearer bbbbbbbbbbbbbbbbbbbbbbbb").value();
  CHECK(both.tenants == std::vector<std::string>{"acme", "globex"});  // sorted, distinct
}

TEST_CASE("bearer tokens: a bad tenants= field names the key and line, never the token",
          "[ingest][tokens]") {
  for (const char* line :
       {"acme aaaaaaaaaaaaaaaaaaaaaaaa tenants=\n", "acme aaaaaaaaaaaaaaaaaaaaaaaa tenants=a,,b\n",
        "acme aaaaaaaaaaaaaaaaaaaaaaaa tenants=*,acme\n",
        "acme aaaaaaaaaaaaaaaaaaaaaaaa tenant=acme\n",
        "acme aaaaaaaaaaaaaaaaaaaaaaaa tenants=acme extra\n", "acme aaaaaaaaaaaaaaaa aaaaaaaa\n"}) {
    INFO(line);
    TokensFile file(std::string("# scoped\n") + line);
    try {
      BearerTokens::load(file.path, "processor.query.tokens_file");
      FAIL("no error");
    } catch (const ConfigError& e) {
      REQUIRE(e.problems().size() == 1);
      CHECK(e.problems()[0].line == 2);
      CHECK(e.problems()[0].path == "processor.query.tokens_file");
      CHECK(e.problems()[0].to_string().find("aaaaaaaaaaaaaaaa") == std::string::npos);
    }
  }
}

TEST_CASE("rate limiter: a burst passes, then the rate; refusals say when to retry", "[ingest]") {
  RateLimiter limiter(10, 5);
  const auto t0 = RateLimiter::Clock::now();
  int retry = 0;
  for (int i = 0; i < 5; ++i) CHECK(limiter.take("a", 1, t0, retry));
  CHECK_FALSE(limiter.take("a", 1, t0, retry));
  CHECK(retry == 1);
  CHECK(limiter.take("b", 1, t0, retry));          // buckets are per client
  CHECK(limiter.take("a", 1, t0 + 150ms, retry));  // 1.5 tokens refilled
  CHECK_FALSE(limiter.take("a", 1, t0 + 150ms, retry));
  CHECK_FALSE(limiter.take("a", 50, t0 + 10s, retry));  // more than the burst: never, but finite
  CHECK(retry >= 1);
  RateLimiter slow(0.1, 1);
  CHECK(slow.take("c", 1, t0, retry));
  CHECK_FALSE(slow.take("c", 1, t0, retry));
  CHECK(retry == 10);
  RateLimiter off(0, 1);
  for (int i = 0; i < 100; ++i) CHECK(off.take("d", 1, t0, retry));
}

TEST_CASE("idempotency keys: same client and key, same v7-shaped id; scoped by client",
          "[ingest]") {
  const std::string a = event_id_for_key("alice", "order-42");
  CHECK(a == event_id_for_key("alice", "order-42"));
  CHECK(telemetryd::events::is_uuid_v7(a));
  CHECK(a != event_id_for_key("bob", "order-42"));
  CHECK(a != event_id_for_key("alice", "order-43"));
  const std::string v7 = "01890a5d-ac96-774b-bcce-b302099a8057";
  CHECK(telemetryd::events::is_uuid_v7(event_id_for_key("alice", v7)));
  CHECK(event_id_for_key("alice", v7) != event_id_for_key("bob", v7));  // scoped, even a UUID
  CHECK_FALSE(check_idempotency_key("order-42"));
  CHECK(check_idempotency_key(""));
  CHECK(check_idempotency_key("has space"));
  CHECK(check_idempotency_key(std::string(256, 'k')));
}

TEST_CASE("metadata normaliser: units, trimming, UTC and unknown fields", "[ingest]") {
  const NormalizeResult result = normalize_metadata(
      R"({"gpu_uuid":"  GPU-1  ","host":"node-7\n","model_name":"H100 80GB","observed_at":)"
      R"("2026-12-01T11:00:00.5+01:00","memory_total":"80 GiB","mig_mode":"Enabled",)"
      R"("serial":"  ","rack":{"row":3},"driver_version":" 550.54 "})");
  REQUIRE(std::holds_alternative<NormalizedMetadata>(result));
  const auto& m = std::get<NormalizedMetadata>(result);
  CHECK(m.gpu_uuid == "GPU-1");
  simdjson::dom::parser parser;
  const auto data = parse(parser, m.data_json);
  CHECK(std::string_view(data["gpu_uuid"]) == "GPU-1");
  CHECK(std::string_view(data["host"]) == "node-7");
  CHECK(std::string_view(data["observed_at"]) == "2026-12-01T10:00:00.500Z");
  CHECK(std::int64_t(data["memory_total_bytes"]) == 85899345920);
  CHECK(bool(data["mig_mode"]) == true);
  CHECK(data["serial"].error() == simdjson::NO_SUCH_FIELD);  // empty after trimming: omitted
  CHECK(std::string_view(data["driver_version"]) == "550.54");
  CHECK(std::int64_t(data["rack"]["row"]) == 3);
  CHECK(data["memory_total"].error() == simdjson::NO_SUCH_FIELD);

  const auto mib = normalize_metadata(
      R"({"gpu_uuid":"g","host":"h","model_name":"m","observed_at":"2026-12-01T10:00:00Z","memory_total_mib":40960})");
  REQUIRE(std::holds_alternative<NormalizedMetadata>(mib));
  CHECK(std::get<NormalizedMetadata>(mib).data_json.find("\"memory_total_bytes\":42949672960") !=
        std::string::npos);
  std::int64_t bytes = 0;
  CHECK(parse_memory_size("81920MiB", bytes));
  CHECK(bytes == 85899345920);
  CHECK(parse_memory_size("1024", bytes));
  CHECK(bytes == 1024);
  CHECK_FALSE(parse_memory_size("lots", bytes));
  CHECK_FALSE(parse_memory_size("80 parsecs", bytes));
}

TEST_CASE("metadata normaliser: each problem names its field", "[ingest]") {
  const auto field_of = [](const std::string& body) {
    const auto r = normalize_metadata(body);
    REQUIRE(std::holds_alternative<InputError>(r));
    return std::get<InputError>(r).field;
  };
  const std::string ok_prefix = R"("gpu_uuid":"g","host":"h","model_name":"m")";
  CHECK(field_of(R"({"host":"h","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})") ==
        "gpu_uuid");
  CHECK(field_of("{" + ok_prefix + "}") == "observed_at");
  CHECK(field_of("{" + ok_prefix + R"(,"observed_at":"yesterday"})") == "observed_at");
  CHECK(
      field_of(
          R"({"gpu_uuid":"   ","host":"h","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})") ==
      "gpu_uuid");
  CHECK(field_of(
            R"({"gpu_uuid":7,"host":"h","model_name":"m","observed_at":"2026-12-01T10:00:00Z"})") ==
        "gpu_uuid");
  CHECK(field_of("{" + ok_prefix +
                 R"(,"observed_at":"2026-12-01T10:00:00Z","memory_total":"x"})") == "memory_total");
  CHECK(field_of("{" + ok_prefix +
                 R"(,"observed_at":"2026-12-01T10:00:00Z","memory_total_bytes":-1})") ==
        "memory_total_bytes");
  CHECK(
      field_of(
          "{" + ok_prefix +
          R"(,"observed_at":"2026-12-01T10:00:00Z","memory_total_gib":1,"memory_total_mib":1024})") ==
      "memory_total_mib");
  CHECK(field_of("{" + ok_prefix +
                 R"(,"observed_at":"2026-12-01T10:00:00Z","mig_mode":"maybe"})") == "mig_mode");
  const auto broken = normalize_metadata("{not json");
  REQUIRE(std::holds_alternative<InputError>(broken));
  CHECK(std::get<InputError>(broken).code == "invalid_json");
  CHECK(std::get<InputError>(normalize_metadata("[1,2]")).code == "invalid_json");
}

namespace {

// A processor whose ingest API publishes to librdkafka's in-process mock cluster.
struct MockIngest {
  TokensFile tokens{"alice aaaaaaaaaaaaaaaaaaaaaaaa\nbob bbbbbbbbbbbbbbbbbbbbbbbb\n"};
  std::unique_ptr<test_support::ChildProcess> process;
  int port = 0;

  explicit MockIngest(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{test_support::telemetryd_bin(),
                                  "run",
                                  "--role",
                                  "processor",
                                  "--set",
                                  "http.listen=127.0.0.1:0",
                                  "--set",
                                  "kafka.extra_properties=test.mock.num.brokers=1",
                                  "--set",
                                  "mongodb.uri=mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
                                  "--set",
                                  "ingest.enabled=true",
                                  "--set",
                                  "ingest.tokens_file=" + tokens.path,
                                  "--set",
                                  "processor.query.tokens_file=" + tokens.path};
    for (auto& item : extra) argv.push_back(std::move(item));
    process = std::make_unique<test_support::ChildProcess>(argv);
    const auto line = process->wait_for_line("\"msg\":\"listening\"", 10s);
    REQUIRE(line);
    port = test_support::port_from_listening_line(*line);
  }

  test_support::HttpResult post(const std::string& target, const std::string& body,
                                const std::string& type = "application/json",
                                test_support::Headers headers = {
                                    {"Authorization", "Bearer aaaaaaaaaaaaaaaaaaaaaaaa"}}) const {
    return test_support::http_request("127.0.0.1", port, "POST", target, body, type, headers);
  }
};

const std::string kMetadata =
    R"({"gpu_uuid":"GPU-u1","host":"node-1","model_name":"A100 40GB","observed_at":"2026-12-01T10:00:00Z"})";

std::string error_code(const std::string& body) {
  simdjson::dom::parser parser;
  std::string_view code;
  if (parser.parse(body)["error"]["code"].get(code) != simdjson::SUCCESS) return "<no JSON error>";
  return std::string(code);
}

}  // namespace

TEST_CASE("ingest on the mock cluster: 202 with the id, the same key gives the same id",
          "[ingest][binary]") {
  MockIngest ingest;
  const auto first = ingest.post(
      "/metadata", kMetadata, "application/json",
      {{"Authorization", "Bearer aaaaaaaaaaaaaaaaaaaaaaaa"}, {"Idempotency-Key", "req-1"}});
  REQUIRE(first.status == 202);
  simdjson::dom::parser parser;
  const std::string id(std::string_view(parser.parse(first.body)["id"]));
  CHECK(id == event_id_for_key("alice", "req-1"));
  CHECK(std::string_view(parser.parse(first.body)["topic"]) == "gpu-metadata");
  const auto again = ingest.post(
      "/metadata", kMetadata, "application/json; charset=utf-8",
      {{"Authorization", "Bearer aaaaaaaaaaaaaaaaaaaaaaaa"}, {"Idempotency-Key", "req-1"}});
  REQUIRE(again.status == 202);
  CHECK(std::string_view(parser.parse(again.body)["id"]) == id);
  const auto bob = ingest.post(
      "/metadata", kMetadata, "application/json",
      {{"Authorization", "Bearer bbbbbbbbbbbbbbbbbbbbbbbb"}, {"Idempotency-Key", "req-1"}});
  REQUIRE(bob.status == 202);
  CHECK(std::string_view(parser.parse(bob.body)["id"]) != id);
  const auto no_key = ingest.post("/metadata", kMetadata);
  REQUIRE(no_key.status == 202);
  CHECK(telemetryd::events::is_uuid_v7(std::string_view(parser.parse(no_key.body)["id"])));
}

TEST_CASE("ingest on the mock cluster: every refusal is a JSON error with the right status",
          "[ingest][binary]") {
  MockIngest ingest({"--set", "ingest.rate_limit_per_s=0.5", "--set", "ingest.rate_limit_burst=4",
                     "--set", "http.body_limit_bytes=2000", "--set", "ingest.max_items=3"});
  auto r = ingest.post("/metadata", kMetadata, "application/json", {});
  CHECK(r.status == 401);
  CHECK(error_code(r.body) == "missing_token");
  CHECK(r.headers["www-authenticate"].find("Bearer") == 0);
  r = ingest.post("/metadata", kMetadata, "application/json",
                  {{"Authorization", "Bearer not-a-valid-token-at-all"}});
  CHECK(r.status == 401);
  CHECK(error_code(r.body) == "invalid_token");
  r = ingest.post("/metadata", std::string(3000, ' '));
  CHECK(r.status == 413);
  CHECK(error_code(r.body) == "payload_too_large");
  r = ingest.post("/metadata", kMetadata, "text/plain");  // 1st token
  CHECK(r.status == 415);
  CHECK(error_code(r.body) == "unsupported_media_type");
  r = ingest.post("/metadata", "{\"gpu_uuid\":", "application/json");  // 2nd
  CHECK(r.status == 400);
  CHECK(error_code(r.body) == "invalid_json");
  r = ingest.post("/v1/events", "[{},{},{}]");  // costs 3: over the 2 left
  CHECK(r.status == 429);
  CHECK(error_code(r.body) == "rate_limited");
  CHECK(std::stoi(r.headers["retry-after"]) >= 1);
  r = ingest.post("/metadata", R"({"gpu_uuid":"g","host":"h","model_name":"m"})");  // 3rd
  CHECK(r.status == 400);
  CHECK(error_code(r.body) == "missing_field");
  CHECK(r.body.find("\"field\":\"observed_at\"") != std::string::npos);
  // Four items are over max_items: 413, and the refusal costs one token, not four.
  r = ingest.post("/v1/events", "[{},{},{},{}]", "application/json",
                  {{"Authorization", "Bearer bbbbbbbbbbbbbbbbbbbbbbbb"}});
  CHECK(r.status == 413);
  CHECK(error_code(r.body) == "too_many_events");
  const auto health = test_support::http_get(ingest.port, "/health");
  CHECK(health.status == 200);
}

TEST_CASE("ingest: Kafka that never answers gives 503 with Retry-After, never 202",
          "[ingest][binary]") {
  MockIngest ingest({"--set", "kafka.brokers=127.0.0.1:1", "--set",
                     "kafka.extra_properties=socket.connection.setup.timeout.ms=1000", "--set",
                     "ingest.ack_timeout_ms=800"});
  auto r = ingest.post("/metadata", kMetadata);
  CHECK(r.status == 503);
  CHECK(error_code(r.body) == "kafka_unavailable");
  CHECK(r.headers["retry-after"] == "1");
  const auto batch = ingest.post("/v1/events", "[]");
  CHECK(batch.status == 400);
  CHECK(error_code(batch.body) == "no_events");
}

TEST_CASE("ingest is off unless enabled, and bearer auth needs a tokens file", "[ingest][binary]") {
  const auto checked =
      test_support::run_command({test_support::telemetryd_bin(), "run", "--role", "processor",
                                 "--set", "http.listen=127.0.0.1:0", "--set", "ingest.enabled=true",
                                 "--set", "processor.query.auth=none"});
  CHECK(checked.status == kExitConfig);
  CHECK(checked.output.find("ingest.tokens_file") != std::string::npos);
}
