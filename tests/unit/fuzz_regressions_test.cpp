// Inputs the libFuzzer targets in fuzz/ found, inline, each asserting the invariant it broke
// (docs/fuzzing.md). These run in the ordinary unit suite, without clang or a fuzzer.
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>

#include "app/roles.hpp"
#include "events/cloudevent.hpp"
#include "events/event_decoder.hpp"
#include "http/router.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

using namespace telemetryd;

namespace {

bool valid_utf8(std::string_view text) {
  return simdjson::validate_utf8(text.data(), text.size());
}

// The fuzz target's round trip: decode, re-encode with the producer's encoder, decode again.
telemetryd::events::DecodedEvent round_trip(const std::string& line, std::string& encoded) {
  simdjson::dom::parser parser;
  auto first = telemetryd::events::decode_event(line, parser);
  REQUIRE(std::holds_alternative<telemetryd::events::DecodedEvent>(first));
  const auto& event = std::get<telemetryd::events::DecodedEvent>(first);
  encoded = events::encode_cloudevent(event.id, event.source, event.type, event.time, event.subject,
                                      event.data_json);
  simdjson::dom::parser again;
  auto second = telemetryd::events::decode_event(encoded, again);
  INFO(encoded);
  REQUIRE(std::holds_alternative<telemetryd::events::DecodedEvent>(second));
  const auto& decoded = std::get<telemetryd::events::DecodedEvent>(second);
  CHECK(decoded.time == event.time);
  CHECK(decoded.subject == event.subject);
  return decoded;
}

// A role file in a private temporary file, removed afterwards.
class RoleFile {
 public:
  explicit RoleFile(const std::string& text) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "fuzz_regression_XXXXXX.yaml").string();
    const int fd = mkstemps(pattern.data(), 5);
    REQUIRE(fd >= 0);
    close(fd);
    path_ = pattern;
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~RoleFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<ConfigProblem> problems_of(const LoadOptions& options) {
  try {
    load_config(options, app::role_catalog());
  } catch (const ConfigError& e) {
    return e.problems();
  }
  FAIL("the role file was accepted");
  return {};
}

}  // namespace

// ---- fuzz_event_decoder ---------------------------------------------------------------------

TEST_CASE("fuzz: a time before 1970 with a fraction re-encodes to the same instant",
          "[fuzz][decoder]") {
  // rfc3339_utc truncated toward zero: -0.5 s came out as 1970-01-01T00:00:00.500Z.
  const std::string line =
      R"({"specversion":"1.0","id":"01a20320-c308-70ff-98c0-6effa0c5154e","source":"//s",)"
      R"("type":"io.telemetryd.token.usage.v1","time":"1969-12-31T23:59:59.500Z","subject":"x",)"
      R"("data":{"model":"m","tenant_id":"t","usage":{"input_tokens":1,"output_tokens":2}}})";
  std::string encoded;
  round_trip(line, encoded);
  CHECK(encoded.find(R"("time":"1969-12-31T23:59:59.500Z")") != std::string::npos);
  CHECK(rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(-1))) ==
        "1969-12-31T23:59:59.999Z");
  CHECK(rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(-1000))) ==
        "1969-12-31T23:59:59.000Z");
}

TEST_CASE("fuzz: an event without a subject re-encodes to one the decoder accepts",
          "[fuzz][decoder]") {
  // encode_cloudevent wrote "subject":"", which the schema (and the decoder) reject.
  const std::string line =
      R"({"specversion":"1.0","id":"01a20320-c308-70ff-98c0-6effa0c5154e","source":"//s",)"
      R"("type":"io.telemetryd.gpu.metrics.v1","time":"2026-11-22T12:00:05Z","data":)"
      R"({"gpu_uuid":"GPU-1","host":"h","model_name":"m","collector":"nvml"}})";
  std::string encoded;
  CHECK(round_trip(line, encoded).subject.empty());
  CHECK(encoded.find("subject") == std::string::npos);
}

TEST_CASE("fuzz: an unknown type is cut on a character boundary", "[fuzz][decoder]") {
  // The detail cut the type at byte 100, inside a two-byte character.
  std::string type = "io.telemetryd.x";
  for (int i = 0; i < 60; ++i) type += "\xc3\xa9";  // é
  const std::string line =
      R"({"specversion":"1.0","id":"01a20320-c308-70ff-98c0-6effa0c5154e","source":"//s","type":")" +
      type + R"(","time":"2026-11-22T12:00:05Z","data":{}})";
  simdjson::dom::parser parser;
  const auto result = telemetryd::events::decode_event(line, parser);
  REQUIRE(std::holds_alternative<telemetryd::events::DecodeError>(result));
  const auto& error = std::get<telemetryd::events::DecodeError>(result);
  CHECK(error.reason == "unknown_type");
  CHECK(valid_utf8(error.detail));
  CHECK(error.detail.size() <= 200);
}

// ---- fuzz_http_request ----------------------------------------------------------------------

TEST_CASE("fuzz: a 404 for a path that is not UTF-8 is still JSON", "[fuzz][http]") {
  // Beast accepts bytes 0x80-0xff in the target; the error body copied them into a JSON string.
  const http::Response res = http::json_error(boost::beast::http::status::not_found, "not_found",
                                              "no route for /caf\xe9\xff\xc3");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  INFO(res.body());
  REQUIRE(parser.parse(res.body()).get(root) == simdjson::SUCCESS);
  std::string_view message;
  REQUIRE(root["error"]["message"].get(message) == simdjson::SUCCESS);
  CHECK(message == "no route for /caf\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("fuzz: JSON strings keep valid UTF-8 and replace only what is not", "[fuzz][json]") {
  std::string out;
  // 2-, 3- and 4-byte characters pass; an overlong '/', a surrogate, a lone continuation byte
  // and a truncated sequence do not.
  append_json_string(out,
                     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\xc0\xaf|\xed\xa0\x80|\x80|\xe2\x82");
  CHECK(out ==
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|"
        "\\ufffd|\\ufffd\\ufffd\"");
}

// ---- fuzz_config_loader ---------------------------------------------------------------------

TEST_CASE("fuzz: a mapping or list as a key is a ConfigError at its line", "[fuzz][config]") {
  // yaml-cpp's as<std::string>() threw YAML::TypedBadConversion out of load_config.
  const RoleFile file("role: processor\n[a, b]: 1\nhttp:\n  ? {x: 1}\n  : 2\n");
  const auto problems = problems_of({.file = file.path()});
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].line == 2);
  CHECK(problems[0].message == "a key must be a name, not a list");
  CHECK(problems[1].line == 4);
  CHECK(problems[1].path == "http");
  CHECK(problems[1].message == "a key must be a name, not a mapping");
}

TEST_CASE("fuzz: problems inside a --set value point at that --set", "[fuzz][config]") {
  // Nodes parsed from the --set text carried marks of that text (line 1 of the file), and the
  // mappings --set created on its way down had none (line 0).
  const RoleFile file("role: processor\n\n\nhttp:\n  listen: 127.0.0.1:8000\n");
  const auto problems =
      problems_of({.file = file.path(),
                   .overrides = {"mongodb.ttl_days=7", "http={lisen: 1}", "kafka.deeper.key=1"}});
  REQUIRE(problems.size() == 2);
  for (const auto& p : problems) {
    INFO(p.to_string());
    CHECK(p.file == "--set");
  }
  CHECK(problems[0].path == "http.lisen");
  CHECK(problems[0].line == 2);
  CHECK(problems[1].path == "kafka.deeper");
  CHECK(problems[1].line == 3);
}

TEST_CASE("fuzz: a YAML syntax error at the end of the file points at a column it has",
          "[fuzz][config]") {
  // yaml-cpp placed the error one column past the end of the last line (3:23 on a 21-byte line).
  const RoleFile file(
      std::string("r\xefle:(\x7f: 1e:ocessr\nhttp:\n  listne: 128.0\x08nope\0", 46));
  const auto problems = problems_of({.file = file.path()});
  REQUIRE(problems.size() == 1);
  INFO(problems[0].to_string());
  CHECK(problems[0].message.rfind("YAML syntax error", 0) == 0);
  CHECK(problems[0].line == 3);
  CHECK(problems[0].column >= 1);
  CHECK(problems[0].column <= 22);
}

TEST_CASE("fuzz: libmongoc's message about a bad URI does not leak its password",
          "[fuzz][config]") {
  // mongoc_uri_new_with_error quotes the password it rejects, and the loader passed its
  // message through for the secret mongodb.uri.
  const RoleFile file(
      "role: processor\nmongodb:\n  uri: "
      "\"mongodb://admin:Pa55wordsynthetic:X@127.0.0.1:27017/?authMechanism=Pa55wordX\"\n");
  const auto problems = problems_of({.file = file.path()});
  REQUIRE(problems.size() == 1);
  const std::string text = problems[0].to_string();
  INFO(text);
  CHECK(problems[0].path == "mongodb.uri");
  CHECK(problems[0].line == 3);
  CHECK(text.find("invalid MongoDB URI") != std::string::npos);
  CHECK(text.find("Pa55word") == std::string::npos);
  CHECK(text.find("admin") == std::string::npos);
}

TEST_CASE("fuzz: an alias inside the mapping it names does not recurse forever", "[fuzz][config]") {
  // check_duplicates walked the aliased mapping into itself until the stack overflowed.
  const RoleFile file(
      "role: processor\nbase: &b {listen: \"1\xda\x37.0.0.1:1\"}\nhttp: *b\nkafka: &k\n"
      "  bprocessor.cost.prices: *k\n");
  const auto problems = problems_of({.file = file.path()});
  REQUIRE(!problems.empty());
  CHECK(std::any_of(problems.begin(), problems.end(), [](const ConfigProblem& p) {
    return p.path == "kafka.bprocessor.cost.prices" && p.message == "unknown key";
  }));
}

TEST_CASE("fuzz: aliases of aliases are checked once, not once per path", "[fuzz][config]") {
  // 2^24 paths to the same mapping: walked as a tree this never finishes.
  std::string text = "role: processor\na0: &a0 {x: 1}\n";
  for (int i = 1; i <= 24; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " {l: " + prev + ", r: " + prev +
            "}\n";
  }
  const RoleFile file(text);
  const auto problems = problems_of({.file = file.path()});
  CHECK(problems.size() == 25);  // each a<i> is an unknown section
}

TEST_CASE("fuzz: a --set through an aliased section points at the --set", "[fuzz][config]") {
  // mongodb is an alias of kafka's mapping, so --set mongodb.uri also added kafka.uri: a key
  // with no mark, reported at line 0 of the file.
  const RoleFile file("role: processor\nkafka: &k\n  brokers: \"h:1\"\nmongodb: *k\n");
  const auto problems =
      problems_of({.file = file.path(),
                   .overrides = {"http.read_timeout_ms=100", "mongodb.uri=mongodb://127.0.0.1/"}});
  const auto kafka_uri = std::find_if(problems.begin(), problems.end(),
                                      [](const ConfigProblem& p) { return p.path == "kafka.uri"; });
  REQUIRE(kafka_uri != problems.end());
  CHECK(kafka_uri->file == "--set");
  CHECK(kafka_uri->line == 2);
}

TEST_CASE("fuzz: text between ${ and } that is no variable name is not quoted back",
          "[fuzz][config]") {
  // fuzz_config_loader: a secret key's ${...} held the value of another secret; the problem
  // "environment variable <that text> is not set" printed it.
  const std::string secret = "Env5ecretValue42";
  const RoleFile file("role: processor\nkafka:\n  sasl_password: \"${FUZZ_=nul\xb1lSEC\xff" +
                      secret + "\xff\xb3-Other5ecret}\"\n");
  const auto problems = problems_of({.file = file.path()});
  REQUIRE(problems.size() == 1);
  INFO(problems[0].to_string());
  CHECK(problems[0].path == "kafka.sasl_password");
  CHECK(problems[0].message.find("invalid variable name") != std::string::npos);
  CHECK(problems[0].to_string().find(secret) == std::string::npos);
}
