#include <catch2/catch.hpp>
#include <cmath>

#include "telemetryd/metrics.hpp"

using namespace telemetryd::metrics;

TEST_CASE("counters and gauges are exposed with HELP, TYPE and labels", "[metrics]") {
  Registry registry;
  auto& sent = registry.counter("producer_messages_sent_total", "Messages delivered.", {"topic"});
  sent.with({"gpu.metrics.v1"}).inc(3);
  sent.with({"token.usage.v1"}).inc();
  registry.gauge("producer_queue_depth", "Messages waiting.").with({}).set(7);
  CHECK(registry.expose() ==
        "# HELP producer_messages_sent_total Messages delivered.\n"
        "# TYPE producer_messages_sent_total counter\n"
        "producer_messages_sent_total{topic=\"gpu.metrics.v1\"} 3\n"
        "producer_messages_sent_total{topic=\"token.usage.v1\"} 1\n"
        "# HELP producer_queue_depth Messages waiting.\n"
        "# TYPE producer_queue_depth gauge\n"
        "producer_queue_depth 7\n");
}

TEST_CASE("histograms expose cumulative buckets, sum and count", "[metrics]") {
  Registry registry;
  auto& h = registry.histogram("latency_seconds", "Latency.", {}, {0.1, 1}).with({});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  CHECK(registry.expose() ==
        "# HELP latency_seconds Latency.\n"
        "# TYPE latency_seconds histogram\n"
        "latency_seconds_bucket{le=\"0.1\"} 1\n"
        "latency_seconds_bucket{le=\"1\"} 2\n"
        "latency_seconds_bucket{le=\"+Inf\"} 3\n"
        "latency_seconds_sum 5.55\n"
        "latency_seconds_count 3\n");
}

TEST_CASE("an observation equal to a bound falls in that bucket", "[metrics]") {
  Histogram h({1, 2});
  h.observe(1);
  const auto snap = h.snapshot();
  CHECK(snap.cumulative_counts == std::vector<std::uint64_t>{1, 1, 1});
}

TEST_CASE("label values and help text are escaped", "[metrics]") {
  Registry registry;
  registry.counter("odd_total", "Back\\slash\nnewline.", {"v"}).with({"a\"b\\c\nd"}).inc();
  const std::string text = registry.expose();
  CHECK(text.find("# HELP odd_total Back\\\\slash\\nnewline.\n") != std::string::npos);
  CHECK(text.find("odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
}

TEST_CASE("special values are formatted as Prometheus expects", "[metrics]") {
  CHECK(format_value(INFINITY) == "+Inf");
  CHECK(format_value(-INFINITY) == "-Inf");
  CHECK(format_value(NAN) == "NaN");
  CHECK(format_value(0.25) == "0.25");
  CHECK(format_value(42) == "42");
}

TEST_CASE("re-registering a family returns it; a conflicting one throws", "[metrics]") {
  Registry registry;
  auto& a = registry.counter("x_total", "X.", {"l"});
  auto& b = registry.counter("x_total", "X.", {"l"});
  CHECK(&a == &b);
  CHECK_THROWS_AS(registry.gauge("x_total", "X."), std::logic_error);
  CHECK_THROWS_AS(a.with({"1", "2"}), std::logic_error);
}

TEST_CASE("process metrics are refreshed on every exposition", "[metrics]") {
  Registry registry;
  register_process_metrics(registry, "9.9.9");
  const std::string text = registry.expose();
  CHECK(text.find("telemetryd_build_info{version=\"9.9.9\"} 1\n") != std::string::npos);
  CHECK(text.find("process_resident_memory_bytes ") != std::string::npos);
  CHECK(text.find("process_resident_memory_bytes 0\n") == std::string::npos);
  CHECK(text.find("process_open_fds 0\n") == std::string::npos);
}
