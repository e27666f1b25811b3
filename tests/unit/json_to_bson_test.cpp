// mongo::append_json_object against libbson's own JSON reader, which it replaced on the
// processor's hot path: for plain JSON both must build the same BSON, byte for byte.

#include "mongo/json_to_bson.hpp"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <memory>

#include "support/child_process.hpp"

using telemetryd::mongo::append_json_object;

// libbson declares bson_t 128-byte aligned; a unique_ptr to one drops the attribute harmlessly.
#pragma GCC diagnostic ignored "-Wignored-attributes"

namespace {

struct BsonDeleter {
  void operator()(bson_t* b) const { bson_destroy(b); }
};
using BsonPtr = std::unique_ptr<bson_t, BsonDeleter>;

BsonPtr ours(std::string_view json, std::string& error) {
  BsonPtr doc(bson_new());
  if (!append_json_object(doc.get(), json, error)) return nullptr;
  return doc;
}

BsonPtr libbsons(std::string_view json) {
  bson_error_t error;
  return BsonPtr(bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                    static_cast<ssize_t>(json.size()), &error));
}

std::string as_json(const bson_t* doc) {
  char* text = bson_as_canonical_extended_json(doc, nullptr);
  std::string out = text != nullptr ? text : "(null)";
  bson_free(text);
  return out;
}

void check_same(std::string_view json) {
  INFO(json);
  std::string error;
  const BsonPtr mine = ours(json, error);
  INFO(error);
  REQUIRE(mine);
  const BsonPtr theirs = libbsons(json);
  REQUIRE(theirs);
  CHECK(as_json(mine.get()) == as_json(theirs.get()));
  CHECK(bson_equal(mine.get(), theirs.get()));
}

}  // namespace

TEST_CASE("json_to_bson: types as libbson's reader types them", "[mongo][bson]") {
  check_same(R"({})");
  check_same(
      R"({"small":1,"negative":-7,"zero":0,"int32_max":2147483647,"int32_min":-2147483648})");
  check_same(R"({"int64":2147483648,"int64_min":-9223372036854775808,"big":9223372036854775807})");
  check_same(R"({"d":1.5,"e":1e3,"neg":-0.25,"tiny":5e-324,"exp":1.7976931348623157e308})");
  check_same(R"({"t":true,"f":false,"n":null,"s":"text","empty":""})");
  check_same(R"({"unicode":"Grüße, 世界 🚀","escaped":"a\"b\\c\nd\u0001","nul":"a\u0000b"})");
  check_same(R"({"nested":{"deeper":{"list":[1,"two",3.5,null,true,{"k":[]}]}},"arr":[[],[[1]]]})");
  check_same(R"({"dup":1,"dup":2})");
  check_same(R"({"neg_zero":-0,"zero_point":0.0,"neg_small":-1e-2,"upper":1E2,"plus_exp":2e+3})");
  check_same(R"({"dotted.key":1,"inner":{"$x":1}})");  // the server's to judge, as before
}

TEST_CASE("json_to_bson: every data object of the valid event fixtures matches libbson's",
          "[mongo][bson]") {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/events/valid.ndjson");
  simdjson::dom::parser parser;
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    simdjson::dom::element event = parser.parse(line);
    simdjson::dom::element data;
    if (event["data"].get(data)) continue;
    check_same(simdjson::minify(data));
    ++checked;
  }
  CHECK(checked >= 3);
}

TEST_CASE("json_to_bson: refuses what BSON or libmongoc's skipped check would", "[mongo][bson]") {
  std::string error;
  CHECK_FALSE(ours(R"({"":1})", error));
  CHECK(error == "an empty key");
  error.clear();
  CHECK_FALSE(ours(R"({"a":{"":1}})", error));
  CHECK(error == "an empty key");
  error.clear();
  CHECK_FALSE(ours(R"({"a\u0000b":1})", error));
  CHECK(error == "a key holding a NUL character");
  error.clear();
  CHECK_FALSE(ours(R"({"u64":18446744073709551615})", error));
  CHECK(error == "an integer above 9223372036854775807");
  CHECK_FALSE(libbsons(R"({"u64":18446744073709551615})"));  // refused before, too
  error.clear();
  CHECK_FALSE(ours(R"([1,2])", error));
  CHECK(error == "not a JSON object");
  error.clear();
  CHECK_FALSE(ours(R"({"a":)", error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("json_to_bson: extended JSON is kept as plain documents", "[mongo][bson]") {
  std::string error;
  const BsonPtr doc = ours(R"({"when":{"$date":"2026-01-01T00:00:00Z"}})", error);
  REQUIRE(doc);
  bson_iter_t it;
  REQUIRE(bson_iter_init_find(&it, doc.get(), "when"));
  CHECK(BSON_ITER_HOLDS_DOCUMENT(&it));
}
