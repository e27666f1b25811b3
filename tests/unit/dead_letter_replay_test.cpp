// dlq replay's decisions without Kafka: reading a letter's headers, the filters, the replayed
// message's headers and destination.

#include "sinks/dead_letter_replay.hpp"

#include <catch2/catch.hpp>

using namespace telemetryd::sinks;

namespace {

Headers letter_headers() {
  return {{"x-telemetryd-reason", "store_rejected"},
          {"x-telemetryd-detail", "code 121: Document failed validation"},
          {"x-telemetryd-stage", "store"},
          {"x-telemetryd-source-topic", "token.usage.v1"},
          {"x-telemetryd-source-partition", "2"},
          {"x-telemetryd-source-offset", "1234"}};
}

}  // namespace

TEST_CASE("dead_letter_origin reads what KafkaDeadLetters writes", "[dlq]") {
  const DeadLetterOrigin origin = dead_letter_origin(letter_headers());
  CHECK(origin.reason == "store_rejected");
  CHECK(origin.detail == "code 121: Document failed validation");
  CHECK(origin.stage == "store");
  CHECK(origin.topic == "token.usage.v1");
  CHECK(origin.partition == 2);
  CHECK(origin.offset == 1234);

  const DeadLetterOrigin bad = dead_letter_origin(
      {{"x-telemetryd-source-partition", "two"}, {"x-telemetryd-source-offset", "12x"}});
  CHECK(bad.partition == -1);
  CHECK(bad.offset == -1);
  CHECK(bad.topic.empty());
  CHECK(dead_letter_origin({}).reason.empty());
}

TEST_CASE("matches: every set bound must hold, an unset one selects all", "[dlq]") {
  const DeadLetterOrigin origin = dead_letter_origin(letter_headers());
  const std::int64_t t = 1'700'000'000'000;
  CHECK(matches({}, origin, t));
  CHECK(matches({}, origin, -1));

  CHECK(matches({.reasons = {"invalid_json", "store_rejected"}}, origin, t));
  CHECK_FALSE(matches({.reasons = {"invalid_json"}}, origin, t));
  CHECK(matches({.stages = {"store"}}, origin, t));
  CHECK_FALSE(matches({.stages = {"validate"}}, origin, t));

  CHECK(matches({.partition = 2}, origin, t));
  CHECK_FALSE(matches({.partition = 0}, origin, t));
  // Both offset bounds are included.
  CHECK(matches({.from_offset = 1234, .to_offset = 1234}, origin, t));
  CHECK_FALSE(matches({.from_offset = 1235}, origin, t));
  CHECK_FALSE(matches({.to_offset = 1233}, origin, t));

  // since included, until excluded.
  CHECK(matches({.since_ms = t, .until_ms = t + 1}, origin, t));
  CHECK_FALSE(matches({.since_ms = t + 1}, origin, t));
  CHECK_FALSE(matches({.until_ms = t}, origin, t));
}

TEST_CASE("matches: a bound on something the letter lacks never matches", "[dlq]") {
  const DeadLetterOrigin unknown = dead_letter_origin({{"x-telemetryd-reason", "invalid_json"}});
  CHECK(matches({.reasons = {"invalid_json"}}, unknown, 5));
  CHECK_FALSE(matches({.partition = 0}, unknown, 5));
  CHECK_FALSE(matches({.from_offset = 0}, unknown, 5));
  CHECK_FALSE(matches({.to_offset = 100}, unknown, 5));
  CHECK_FALSE(matches({.since_ms = 0}, unknown, -1));
  CHECK_FALSE(matches({.until_ms = 100}, unknown, -1));
  CHECK_FALSE(matches({.stages = {"validate"}}, unknown, 5));
}

TEST_CASE("replay_headers: dead-letter headers out, others kept in order, provenance added",
          "[dlq]") {
  Headers headers = letter_headers();
  headers.insert(headers.begin() + 1, {"traceparent", "00-abc-def-01"});
  headers.emplace_back("x-telemetryd-replayed-from", "older.dlq/0/1");
  headers.emplace_back("x-telemetryd-replay-reason", "older");
  headers.emplace_back("tenant", "acme");
  const Headers out = replay_headers(headers, "token.usage.v1.dlq", 1, 77, "store_rejected");
  const Headers expected{{"traceparent", "00-abc-def-01"},
                         {"tenant", "acme"},
                         {"x-telemetryd-replayed-from", "token.usage.v1.dlq/1/77"},
                         {"x-telemetryd-replay-reason", "store_rejected"}};
  CHECK(out == expected);
}

TEST_CASE("replay_destination: --to wins, else the source topic, else none", "[dlq]") {
  const DeadLetterOrigin origin = dead_letter_origin(letter_headers());
  CHECK(replay_destination("", origin) == "token.usage.v1");
  CHECK(replay_destination("elsewhere", origin) == "elsewhere");
  CHECK(replay_destination("", DeadLetterOrigin{}).empty());
}
