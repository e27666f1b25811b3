#include <catch2/catch.hpp>
#include <cmath>

#include "telemetryd/metrics.hpp"

using namespace telemetryd::metrics;

TEST_CASE("counters and gauges are exposed with HELP, TYPE and labels", "[metrics]") {
  Registry registry;
  auto& sent = registry.counter("producer_messages_sent_total", "Messages delivered.", {"topic"});
  sent.with({"gpu.metrics.v1"}).Increment(3);
  sent.with({"token.usage.v1"}).Increment();
  registry.gauge("producer_queue_depth", "Messages waiting.").with({}).Set(7);
  CHECK(registry.expose() ==
        "# HELP producer_messages_sent_total Messages delivered.\n"
        "# TYPE producer_messages_sent_total counter\n"
        "producer_messages_sent_total{topic=\"gpu.metrics.v1\"} 3\n"
        "producer_messages_sent_total{topic=\"token.usage.v1\"} 1\n"
        "# HELP producer_queue_depth Messages waiting.\n"
        "# TYPE producer_queue_depth gauge\n"
        "producer_queue_depth 7\n");
}

TEST_CASE("histograms expose count, sum and cumulative buckets", "[metrics]") {
  Registry registry;
  auto& h = registry.histogram("latency_seconds", "Latency.", {}, {0.1, 1}).with({});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  // prometheus::TextSerializer's order: _count and _sum before the buckets.
  CHECK(registry.expose() ==
        "# HELP latency_seconds Latency.\n"
        "# TYPE latency_seconds histogram\n"
        "latency_seconds_count 3\n"
        "latency_seconds_sum 5.55\n"
        "latency_seconds_bucket{le=\"0.1\"} 1\n"
        "latency_seconds_bucket{le=\"1\"} 2\n"
        "latency_seconds_bucket{le=\"+Inf\"} 3\n");
}

TEST_CASE("an observation equal to a bound falls in that bucket", "[metrics]") {
  Registry registry;
  auto& h = registry.histogram("h_seconds", "H.", {}, {1, 2}).with({});
  h.Observe(1);
  const auto buckets = h.Collect().histogram.bucket;
  REQUIRE(buckets.size() == 3);
  CHECK(buckets[0].cumulative_count == 1);
  CHECK(buckets[2].cumulative_count == 1);
  CHECK_THROWS_AS(registry.histogram("unsorted_seconds", "U.", {}, {2, 1}), std::logic_error);
}

TEST_CASE("label values and help text are escaped", "[metrics]") {
  Registry registry;
  registry.counter("odd_total", "Back\\slash\nnewline.", {"v"}).with({"a\"b\\c\nd"}).Increment();
  const std::string text = registry.expose();
  CHECK(text.find("# HELP odd_total Back\\\\slash\\nnewline.\n") != std::string::npos);
  CHECK(text.find("odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
}

TEST_CASE("special values are written as Prometheus reads them", "[metrics]") {
  Registry registry;
  auto& g = registry.gauge("g", "G.", {"v"});
  g.with({"inf"}).Set(INFINITY);
  g.with({"minus_inf"}).Set(-INFINITY);
  g.with({"nan"}).Set(NAN);
  g.with({"quarter"}).Set(0.25);
  g.with({"whole"}).Set(42);
  g.with({"large"}).Set(1980e6);
  const std::string text = registry.expose();
  CHECK(text.find("g{v=\"inf\"} +Inf\n") != std::string::npos);
  CHECK(text.find("g{v=\"minus_inf\"} -Inf\n") != std::string::npos);
  // prometheus-cpp 1.0.1 spells it "Nan"; Prometheus parses NaN in any case.
  CHECK(text.find("g{v=\"nan\"} Nan\n") != std::string::npos);
  CHECK(text.find("g{v=\"quarter\"} 0.25\n") != std::string::npos);
  CHECK(text.find("g{v=\"whole\"} 42\n") != std::string::npos);
  CHECK(text.find("g{v=\"large\"} 1980000000\n") != std::string::npos);
}

TEST_CASE("labels keep the family's order and series are sorted by their values", "[metrics]") {
  Registry registry;
  auto& lag = registry.gauge("lag", "Lag.", {"topic", "partition"});
  lag.with({"t", "2"}).Set(2);
  lag.with({"t", "10"}).Set(10);
  lag.with({"a", "5"}).Set(5);
  CHECK(registry.expose() ==
        "# HELP lag Lag.\n"
        "# TYPE lag gauge\n"
        "lag{topic=\"a\",partition=\"5\"} 5\n"
        "lag{topic=\"t\",partition=\"10\"} 10\n"
        "lag{topic=\"t\",partition=\"2\"} 2\n");
}

TEST_CASE("a family without series keeps its HELP and TYPE", "[metrics]") {
  Registry registry;
  registry.counter("errors_total", "Errors.", {"code"});
  CHECK(registry.expose() ==
        "# HELP errors_total Errors.\n"
        "# TYPE errors_total counter\n");
}

TEST_CASE("removing a series drops it from the exposition", "[metrics]") {
  Registry registry;
  auto& lag = registry.gauge("lag", "Lag.", {"topic", "partition"});
  lag.with({"t", "0"}).Set(1);
  lag.with({"t", "1"}).Set(2);
  CHECK(lag.remove({"t", "0"}));
  CHECK_FALSE(lag.remove({"t", "0"}));
  const std::string text = registry.expose();
  CHECK(text.find("partition=\"0\"") == std::string::npos);
  CHECK(text.find("lag{topic=\"t\",partition=\"1\"} 2\n") != std::string::npos);
}

TEST_CASE("re-registering a family returns it; a conflicting one throws", "[metrics]") {
  Registry registry;
  auto& a = registry.counter("x_total", "X.", {"l"});
  auto& b = registry.counter("x_total", "X.", {"l"});
  CHECK(&a == &b);
  CHECK_THROWS_AS(registry.gauge("x_total", "X."), std::logic_error);
  CHECK_THROWS_AS(a.with({"1", "2"}), std::logic_error);
}

TEST_CASE("process metrics are read on every exposition", "[metrics]") {
  Registry registry;
  register_process_metrics(registry, "9.9.9");
  const std::string text = registry.expose();
  CHECK(text.find("telemetryd_build_info{version=\"9.9.9\"} 1\n") != std::string::npos);
  CHECK(text.find("process_resident_memory_bytes ") != std::string::npos);
  CHECK(text.find("process_resident_memory_bytes 0\n") == std::string::npos);
  CHECK(text.find("process_open_fds 0\n") == std::string::npos);
  CHECK(text.find("# TYPE process_cpu_seconds_total counter\n") != std::string::npos);
  // Sorted among the registered families.
  CHECK(text.find("# TYPE process_max_fds") < text.find("# TYPE telemetryd_build_info"));
}

TEST_CASE("SeriesByValue hands out the family's series for a label value", "[metrics]") {
  Registry registry;
  auto& family = registry.counter("consumed_total", "Consumed.", {"topic"});
  SeriesByValue<Counter> by_topic(family);
  by_topic("a").Increment();
  by_topic(std::string("a")).Increment(2);
  CHECK(&by_topic("a") == &family.with({"a"}));
  CHECK(family.with({"a"}).Value() == 3);
  CHECK(by_topic("b").Value() == 0);
}
