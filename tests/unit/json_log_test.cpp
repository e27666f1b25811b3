#include <simdjson.h>
#include <catch2/catch.hpp>

#include "telemetryd/json_writer.hpp"
#include "telemetryd/log.hpp"

using namespace telemetryd;

TEST_CASE("JsonWriter escapes and separates", "[json]") {
  JsonWriter json;
  json.begin_object()
      .key("s")
      .value("a\"b\\\n\x01")
      .key("n")
      .value(std::int64_t{-3})
      .key("f")
      .value(1.5)
      .key("nan")
      .value(std::nan(""))
      .key("list")
      .begin_array()
      .value(true)
      .null()
      .end_array()
      .end_object();
  CHECK(json.str() == R"({"s":"a\"b\\\n\u0001","n":-3,"f":1.5,"nan":null,"list":[true,null]})");
}

TEST_CASE("a log line is one JSON object with ts, level, stage, msg and fields", "[log]") {
  const std::string line = log::format_line(log::Level::kWarn, "kafka", "broker \"down\"",
                                            {{"attempt", 3}, {"ok", false}});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(line);
  CHECK(std::string_view(doc["level"]) == "warn");
  CHECK(std::string_view(doc["stage"]) == "kafka");
  CHECK(std::string_view(doc["msg"]) == "broker \"down\"");
  CHECK(int64_t(doc["attempt"]) == 3);
  CHECK(bool(doc["ok"]) == false);
  const std::string_view ts = doc["ts"];
  CHECK(ts.size() == 24);
  CHECK(ts.back() == 'Z');
}

TEST_CASE("log levels parse and filter", "[log]") {
  log::Level level = log::Level::kInfo;
  CHECK(log::parse_level("error", level));
  CHECK(level == log::Level::kError);
  CHECK_FALSE(log::parse_level("verbose", level));
}
