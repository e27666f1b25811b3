// The scrape source's library: exposition parser, vLLM/SGLang serving metrics, token deltas.
// tests/fixtures/scrape/*.txt are real prometheus_client output (generate.py says how); the
// expected numbers below are worked out by hand from the values generate.py sets.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "events/event_decoder.hpp"
#include "scrape/exposition.hpp"
#include "scrape/serving_metrics.hpp"
#include "scrape/token_deltas.hpp"
#include "support/child_process.hpp"

using namespace telemetryd::scrape;
using telemetryd::Error;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/scrape/" + name,
                   std::ios::binary);
  REQUIRE(in);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Exposition parse_ok(std::string_view text, bool openmetrics = false) {
  auto result = parse_exposition(text, openmetrics);
  if (!result) FAIL(result.error().message);
  return std::move(result.value());
}

// The error message, or "ok" when the text parsed.
std::string parse_error(std::string_view text, bool openmetrics = false) {
  const auto result = parse_exposition(text, openmetrics);
  if (result) return "ok";
  CHECK(result.error().kind == Error::Kind::kPermanent);
  return result.error().message;
}

Approx near(double value) {
  return Approx(value).epsilon(1e-9);
}

ModelServing counters(std::string kind, std::string model, double prompt, double generation,
                      std::optional<double> cached = std::nullopt) {
  ModelServing m;
  m.server_kind = std::move(kind);
  m.model = std::move(model);
  m.prompt_tokens_total = prompt;
  m.generation_tokens_total = generation;
  m.cached_prompt_tokens_total = cached;
  return m;
}

}  // namespace

TEST_CASE("exposition: samples, labels, escapes and values", "[scrape]") {
  const auto e = parse_ok(
      "# HELP m A help text with \\\\ and \"quotes\"\n"
      "# TYPE m gauge\n"
      "m{a=\"x\\\\y\\\"z\\nw\",b=\"\\q\"} 1\n"
      "m{a=\"inf\"} +Inf\n"
      "m{a=\"-inf\"} -Inf\n"
      "m{a=\"nan\"} NaN\n"
      "m{a=\"exp\",} 1.5e3\n"
      "m{ a = \"neg\" } -2E-2\n"
      "vllm:prompt_tokens_total{model_name=\"x\"} 1.2345678e+07\n"
      "no_labels 7\n"
      "empty_labels{} 8\n");
  REQUIRE(e.samples.size() == 9);
  CHECK(e.samples[0].labels.size() == 2);
  CHECK(e.samples[0].labels[0].value == "x\\y\"z\nw");
  CHECK(e.samples[0].labels[1].value == "\\q");  // not an escape: kept, as Prometheus does
  CHECK(e.samples[1].value == std::numeric_limits<double>::infinity());
  CHECK(e.samples[2].value == -std::numeric_limits<double>::infinity());
  CHECK(std::isnan(e.samples[3].value));
  CHECK(e.samples[4].value == 1500);
  CHECK(e.samples[5].labels[0].value == "neg");
  CHECK(e.samples[5].value == near(-0.02));
  CHECK(e.samples[6].name == "vllm:prompt_tokens_total");
  CHECK(e.samples[6].value == 12345678);
  CHECK(e.samples[7].labels.empty());
  CHECK(e.samples[8].value == 8);
  CHECK(e.types.at("m") == MetricType::kGauge);
  CHECK_FALSE(e.samples[0].timestamp_ms);
}

TEST_CASE("exposition: numbers that are not numbers are refused", "[scrape]") {
  CHECK(parse_error("a 0x10\n") == "exposition line 1: the value of a is not a number");
  CHECK(parse_error("a 1e\n") != "ok");
  CHECK(parse_error("a --1\n") != "ok");
  CHECK(parse_error("a +NaN\n") != "ok");
  CHECK(parse_error("a 1e999\n") != "ok");
  CHECK(parse_error("a\n") == "exposition line 1: no value for a");
  CHECK(parse_error("a{b=\"1\"}\n") == "exposition line 1: no value for a");
}

TEST_CASE("exposition: timestamps, milliseconds in text and seconds in OpenMetrics", "[scrape]") {
  auto text = parse_ok("a 1 1700000000123\nb 2 -5\n");
  CHECK(text.samples[0].timestamp_ms == 1700000000123);
  CHECK(text.samples[1].timestamp_ms == -5);
  CHECK(parse_error("a 1 1.5\n") == "exposition line 1: the timestamp of a is not valid");
  CHECK(parse_error("a 1 2 3\n") == "exposition line 1: unexpected text after the timestamp of a");

  auto om = parse_ok("a 1 1700000000.123\nb 2 1700000000\n# EOF\n", true);
  CHECK(om.samples[0].timestamp_ms == 1700000000123);
  CHECK(om.samples[1].timestamp_ms == 1700000000000);
  CHECK(parse_error("a 1 NaN\n", true) != "ok");
}

TEST_CASE("exposition: OpenMetrics exemplars are skipped, # EOF ends the text", "[scrape]") {
  const auto e = parse_ok(
      "# TYPE foo counter\n"
      "foo_total 3 # {trace_id=\"abc\"} 1.0 1700000000.0\n"
      "foo_created 1700000000.5\n"
      "# TYPE h histogram\n"
      "h_bucket{le=\"1\"} 2 1700000000 # {trace_id=\"x\"} 0.5\n"
      "h_bucket{le=\"+Inf\"} 2\n"
      "# EOF\n",
      true);
  REQUIRE(e.samples.size() == 4);
  CHECK(e.samples[0].name == "foo_total");
  CHECK(e.samples[0].value == 3);
  CHECK(e.samples[1].name == "foo_created");
  CHECK(e.samples[2].timestamp_ms == 1700000000000);
  CHECK(e.types.at("foo") == MetricType::kCounter);
  CHECK(family_type(e, "foo_total") == MetricType::kCounter);
  CHECK(family_type(e, "foo_created") == MetricType::kCounter);
  CHECK(family_type(e, "h_bucket") == MetricType::kHistogram);
  CHECK_FALSE(family_type(e, "bar"));

  CHECK(parse_error("a 1\n# EOF\nb 2\n", true) == "exposition line 3: text after # EOF");
  CHECK(parse_error("a 1\n", true) == "ok");  // leniently, # EOF may be missing
  CHECK(parse_error("a 1\n# EOF\n\n", true) == "ok");
  // In the text format "# EOF" is a comment like any other, and an exemplar is garbage.
  CHECK(parse_error("a 1\n# EOF\nb 2\n") == "ok");
  CHECK(parse_error("foo_total 3 # {trace_id=\"abc\"} 1.0\n") != "ok");
}

TEST_CASE("exposition: a bad line refuses the whole text and names its line", "[scrape]") {
  CHECK(parse_error("a 1\n\nb{ 2\n") == "exposition line 3: expected a label name");
  CHECK(parse_error("a 1\r\nb{c=\"1\",c=\"2\"} 2\r\n") ==
        "exposition line 2: label c appears twice");
  CHECK(parse_error("a{c=1} 1\n") == "exposition line 1: the value of label c is not quoted");
  CHECK(parse_error("a{c=\"1} 1\n") == "exposition line 1: a quoted string is not closed");
  CHECK(parse_error("a{c=\"1\" d=\"2\"} 1\n") ==
        "exposition line 1: expected ',' or '}' in the labels");
  CHECK(parse_error("1a 1\n") == "exposition line 1: expected a metric name");
  CHECK(parse_error("a.b 1\n") ==
        "exposition line 1: unexpected character after the metric name a");
  CHECK(parse_error("# TYPE a counter\n# TYPE a gauge\n") ==
        "exposition line 2: a second, different TYPE for a");
  CHECK(parse_error("# TYPE a countr\n") != "ok");
  CHECK(parse_error("# TYPE a\n") == "exposition line 1: TYPE of a without a type");
  CHECK(parse_error("a{b=\"\xff\"} 1\n") == "exposition line 1: not valid UTF-8");
  CHECK(parse_error(std::string_view("a 1\0", 4)) != "ok");
  // Free comments, indentation (text format only) and CRLF are fine.
  CHECK(parse_error("# just a comment\n#no space\n  a 1\r\n\t\r\n") == "ok");
  CHECK(parse_error("  a 1\n", true) != "ok");
}

TEST_CASE("exposition: UTF-8 quoted metric names", "[scrape]") {
  const auto e = parse_ok(
      "# TYPE \"my.metric\" gauge\n"
      "{\"my.metric\", label=\"x\"} 1\n"
      "{\"my.metric\"} 2\n"
      "{\"my.metric\",\"label.with.dots\"=\"y\"} 3\n");
  REQUIRE(e.samples.size() == 3);
  CHECK(e.samples[0].name == "my.metric");
  CHECK(e.samples[0].labels.at(0).value == "x");
  CHECK(e.samples[1].labels.empty());
  CHECK(e.samples[2].labels.at(0).name == "label.with.dots");
  CHECK(e.types.at("my.metric") == MetricType::kGauge);
  CHECK(parse_error("a{\"b\"} 1\n") != "ok");  // a second name
  CHECK(parse_error("{\"a\" \"b\"} 1\n") != "ok");
  CHECK(parse_error("{label=\"x\"} 1\n") == "exposition line 1: a sample without a metric name");
}

TEST_CASE("exposition: limits are errors", "[scrape]") {
  const std::string at_limit(kMaxLabelValueBytes, 'v');
  CHECK(parse_error("a{b=\"" + at_limit + "\"} 1\n") == "ok");
  CHECK(parse_error("a{b=\"" + at_limit + "v\"} 1\n") ==
        "exposition line 1: a quoted string is longer than 65536 bytes");

  // Tens of thousands of labels on one line: the duplicate check is not quadratic.
  std::string wide = "a{";
  for (int i = 0; i < 50000; ++i) wide += "l" + std::to_string(i) + "=\"\",";
  CHECK(parse_error(wide + "} 1\n") == "ok");
  CHECK(parse_error(wide + "l49999=\"\"} 1\n") == "exposition line 1: label l49999 appears twice");

  std::string many;
  many.reserve(4 * (kMaxSamples + 1));
  for (std::size_t i = 0; i < kMaxSamples; ++i) many += "a 1\n";
  CHECK(parse_error(many) == "ok");
  many += "a 1\n";
  CHECK(parse_error(many) == "exposition line 1000001: more than 1000000 samples");
}

TEST_CASE("exposition: content types", "[scrape]") {
  CHECK(is_openmetrics("application/openmetrics-text; version=1.0.0; charset=utf-8"));
  CHECK(is_openmetrics(" Application/OpenMetrics-Text ;version=0.0.1"));
  CHECK_FALSE(is_openmetrics("text/plain; version=0.0.4; charset=utf-8"));
  CHECK_FALSE(is_openmetrics(""));
}

TEST_CASE("exposition: the vLLM and SGLang fixtures parse", "[scrape]") {
  const auto vllm = parse_ok(fixture("vllm.txt"));
  CHECK(vllm.types.at("vllm:prompt_tokens_total") == MetricType::kCounter);
  CHECK(vllm.types.at("vllm:prompt_tokens_created") == MetricType::kGauge);
  CHECK(vllm.types.at("vllm:time_to_first_token_seconds") == MetricType::kHistogram);
  CHECK(vllm.types.at("vllm:cache_config_info") == MetricType::kGauge);
  CHECK(family_type(vllm, "vllm:time_to_first_token_seconds_bucket") == MetricType::kHistogram);

  const auto om = parse_ok(fixture("vllm.om.txt"), true);
  CHECK(om.types.at("vllm:prompt_tokens") == MetricType::kCounter);
  // Same series, without the text format's separate _created gauge families' extra lines.
  CHECK(om.samples.size() == vllm.samples.size());

  const auto sglang = parse_ok(fixture("sglang.txt"));
  CHECK(sglang.types.at("sglang:prompt_tokens_total") == MetricType::kCounter);
}

TEST_CASE("serving metrics: vLLM, two models, one on two engines", "[scrape]") {
  const auto models = serving_by_model(parse_ok(fixture("vllm.txt")));
  REQUIRE(models.size() == 2);
  CHECK(models[0].model == "llama-3.1-8b");
  CHECK(models[1].model == "qwen2.5-7b");

  const ModelServing& llama = models[0];
  CHECK(llama.server_kind == "vllm");
  CHECK(llama.prompt_tokens_total == 12345678.0 + 98765.0);
  CHECK(llama.generation_tokens_total == 34567.0 + 23456.0);
  CHECK(llama.cached_prompt_tokens_total == 4096.0 + 2048.0);
  CHECK(llama.requests_total == 40.0 + 5 + 1 + 30 + 2 + 0);
  CHECK(llama.kv_cache_usage_ratio == near(0.5));  // (0.25 + 0.75) / 2
  CHECK(llama.requests_running == 5);
  CHECK(llama.requests_waiting == 1);
  // TTFT, both engines: 0.03 0.05 0.07 0.3 | 0.09 0.2 0.6 1.5. Cumulative: le 0.04:1 0.06:2
  // 0.08:3 0.1:4 0.25:5 0.5:6 0.75:7 1:7 2.5:8. p50 rank 4 -> bucket (0.08, 0.1], all of it: 0.1.
  // p90 rank 7.2 -> (1, 2.5], 0.2 of 1: 1.3. p99 rank 7.92 -> 1 + 1.5 * 0.92 = 2.38.
  CHECK(llama.ttft.count == 8);
  CHECK(llama.ttft.sum == near(2.84));
  CHECK(*llama.ttft.p50 == near(0.1));
  CHECK(*llama.ttft.p90 == near(1.3));
  CHECK(*llama.ttft.p99 == near(2.38));
  // ITL from vllm:time_per_output_token_seconds (this vLLM has no inter_token_latency yet):
  // 0.02 0.03 0.04 0.06 | 0.02 0.08 0.12 0.5. Cumulative: le 0.025:2 0.05:4 0.075:5 0.1:6 0.15:7
  // 0.4:7 0.5:8. p50 rank 4 -> 0.05. p90 rank 7.2 -> 0.4 + 0.1 * 0.2. p99 -> 0.4 + 0.1 * 0.92.
  CHECK(llama.itl.count == 8);
  CHECK(llama.itl.sum == near(0.87));
  CHECK(*llama.itl.p50 == near(0.05));
  CHECK(*llama.itl.p90 == near(0.42));
  CHECK(*llama.itl.p99 == near(0.492));

  const ModelServing& qwen = models[1];
  CHECK(qwen.prompt_tokens_total == 5000);
  CHECK(qwen.generation_tokens_total == 1500);
  CHECK(qwen.cached_prompt_tokens_total == 0);
  CHECK(qwen.requests_total == 0);
  CHECK(qwen.ttft.count == 0);
  CHECK_FALSE(qwen.ttft.p50);
  CHECK_FALSE(qwen.itl.p99);
}

TEST_CASE("serving metrics: the OpenMetrics vLLM exposition says the same", "[scrape]") {
  // prometheus_client 0.26 writes vllm_ for vllm: in OpenMetrics sample names.
  const auto om = parse_ok(fixture("vllm.om.txt"), true);
  REQUIRE(om.samples.size() > 0);
  CHECK(om.samples[0].name.starts_with("vllm_"));
  const auto text = serving_by_model(parse_ok(fixture("vllm.txt")));
  const auto open = serving_by_model(om);
  REQUIRE(open.size() == text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    CHECK(open[i].model == text[i].model);
    CHECK(open[i].prompt_tokens_total == text[i].prompt_tokens_total);
    CHECK(open[i].generation_tokens_total == text[i].generation_tokens_total);
    CHECK(open[i].cached_prompt_tokens_total == text[i].cached_prompt_tokens_total);
    CHECK(open[i].requests_total == text[i].requests_total);
    CHECK(open[i].kv_cache_usage_ratio == text[i].kv_cache_usage_ratio);
    CHECK(open[i].ttft.p90 == text[i].ttft.p90);
    CHECK(open[i].itl.count == text[i].itl.count);
  }
}

TEST_CASE("serving metrics: SGLang, two data-parallel ranks", "[scrape]") {
  const auto models = serving_by_model(parse_ok(fixture("sglang.txt")));
  REQUIRE(models.size() == 1);
  const ModelServing& m = models[0];
  CHECK(m.server_kind == "sglang");
  CHECK(m.model == "meta-llama/Llama-3.1-8B-Instruct");
  CHECK(m.prompt_tokens_total == 150000);
  CHECK(m.generation_tokens_total == 45000);
  CHECK(m.cached_prompt_tokens_total == 30000);
  CHECK(m.requests_total == 120);
  CHECK(m.kv_cache_usage_ratio == near(0.3));  // (0.2 + 0.4) / 2
  CHECK(m.requests_running == 5);
  CHECK(m.requests_waiting == 5);
  // TTFT 0.15 0.25 0.35 0.9 3.0. Cumulative: le 0.2:1 0.4:3 1:4 4:5. p50 rank 2.5 -> 0.2 + 0.2 *
  // 1.5/2 = 0.35. p90 rank 4.5 -> 2 + 2 * 0.5 = 3. p99 rank 4.95 -> 2 + 2 * 0.95 = 3.9.
  CHECK(m.ttft.count == 5);
  CHECK(m.ttft.sum == near(4.65));
  CHECK(*m.ttft.p50 == near(0.35));
  CHECK(*m.ttft.p90 == near(3.0));
  CHECK(*m.ttft.p99 == near(3.9));
  // ITL 0.003 0.007 0.009 0.012 0.012 0.018 0.022 0.05 0.07 0.15. Cumulative: le 0.01:3 0.015:5
  // 0.06:8 0.08:9 0.2:10. p50 rank 5 -> 0.015. p90 rank 9 -> 0.08. p99 rank 9.9 -> 0.19.
  CHECK(m.itl.count == 10);
  CHECK(m.itl.sum == near(0.353));
  CHECK(*m.itl.p50 == near(0.015));
  CHECK(*m.itl.p90 == near(0.08));
  CHECK(*m.itl.p99 == near(0.19));
}

TEST_CASE("serving metrics: newer names win, models need token counters", "[scrape]") {
  const auto models = serving_by_model(
      parse_ok("vllm:generation_tokens_total{model_name=\"a\",engine=\"0\"} 10\n"
               "vllm:inter_token_latency_seconds_bucket{model_name=\"a\",le=\"0.1\"} 1\n"
               "vllm:inter_token_latency_seconds_bucket{model_name=\"a\",le=\"+Inf\"} 2\n"
               "vllm:time_per_output_token_seconds_bucket{model_name=\"a\",le=\"5\"} 2\n"
               "vllm:time_per_output_token_seconds_bucket{model_name=\"a\",le=\"+Inf\"} 2\n"
               "vllm:gpu_cache_usage_perc{model_name=\"a\"} 0.9\n"
               "vllm:gpu_prefix_cache_hits_total{model_name=\"a\"} 7\n"
               "vllm:num_requests_running{model_name=\"gauges-only\"} 3\n"
               "vllm:prompt_tokens_total 99\n"  // no model_name: not attributable
               "other_prompt_tokens_total{model_name=\"x\"} 5\n"));
  REQUIRE(models.size() == 1);
  const ModelServing& a = models[0];
  CHECK_FALSE(a.prompt_tokens_total);
  CHECK(a.generation_tokens_total == 10);
  CHECK(a.kv_cache_usage_ratio == near(0.9));  // the deprecated name, when alone
  CHECK(a.cached_prompt_tokens_total == 7);    // likewise
  CHECK(a.itl.count == 2);                     // from the +Inf bucket: no _count
  CHECK(*a.itl.p50 == near(0.1));              // inter_token_latency, not time_per_output
  CHECK(*a.itl.p99 == near(0.1));              // in +Inf: the highest finite bound
  CHECK_FALSE(a.requests_total);
}

TEST_CASE("bucket_quantile: histogram_quantile's rules", "[scrape]") {
  constexpr double inf = std::numeric_limits<double>::infinity();
  CHECK(bucket_quantile(0.5, {{1, 2}, {2, 4}, {inf, 4}}) == near(1.0));
  CHECK(bucket_quantile(0.75, {{2, 4}, {inf, 4}, {1, 2}}) == near(1.5));  // any order
  CHECK_FALSE(bucket_quantile(0.5, {{1, 2}, {2, 4}}));                    // no +Inf bucket
  CHECK_FALSE(bucket_quantile(0.5, {{inf, 4}}));                          // one bucket
  CHECK_FALSE(bucket_quantile(0.5, {{1, 0}, {inf, 0}}));                  // nothing observed
  CHECK_FALSE(bucket_quantile(1.5, {{1, 1}, {inf, 1}}));
  CHECK(bucket_quantile(0.5, {{1, 0}, {inf, 4}}) == 1.0);    // all above: 1
  CHECK(bucket_quantile(0.5, {{-1, 2}, {inf, 4}}) == -1.0);  // bound <= 0
  // Equal bounds add up; a count below an earlier one is raised to it.
  CHECK(bucket_quantile(0.625, {{1, 1}, {1, 1}, {2, 3}, {inf, 4}}) == near(1.5));
  CHECK(bucket_quantile(0.25, {{1, 1}, {2, 0}, {inf, 4}}) == near(1.0));
}

TEST_CASE("token deltas: baseline, increases, zero, reset", "[scrape]") {
  TokenDeltas deltas;
  std::vector<std::string> problems;
  auto scrape = [&](std::int64_t now, double prompt, double generation,
                    std::optional<double> cached) {
    return deltas.observe("http://gpu-1:8000/metrics", now,
                          {counters("vllm", "llama", prompt, generation, cached)}, problems);
  };
  CHECK(scrape(1000, 100, 50, 10).empty());  // baseline
  const auto& key = state_key("http://gpu-1:8000/metrics", "vllm", "llama");
  CHECK(key == std::string("http://gpu-1:8000/metrics\x1fvllm\x1fllama"));
  REQUIRE(deltas.state().count(key) == 1);

  auto d = scrape(16000, 160, 80, 10.4);  // float noise rounds away
  REQUIRE(d.size() == 1);
  CHECK(d[0].target == "http://gpu-1:8000/metrics");
  CHECK(d[0].server_kind == "vllm");
  CHECK(d[0].model == "llama");
  CHECK(d[0].from_ms == 1000);
  CHECK(d[0].to_ms == 16000);
  CHECK(d[0].prompt_tokens == 60);
  CHECK(d[0].generation_tokens == 30);
  CHECK(d[0].cached_prompt_tokens == 0);
  CHECK_FALSE(d[0].reset);
  CHECK(telemetryd::events::is_uuid_v7(d[0].event_id));
  CHECK(d[0].event_id.substr(0, 13) == "00000000-3e80");  // 16000 ms = 0x3e80

  CHECK(scrape(31000, 160, 80, 10).empty());  // nothing new: no delta, state advanced
  CHECK(deltas.state().at(key).observed_at_ms == 31000);
  CHECK(scrape(31000, 160, 80, 10).empty());  // the same scrape again: counted once

  d = scrape(46000, 20, 5, std::nullopt);  // server restarted: increase since the reset
  REQUIRE(d.size() == 1);
  CHECK(d[0].reset);
  CHECK(d[0].from_ms == 31000);
  CHECK(d[0].prompt_tokens == 20);
  CHECK(d[0].generation_tokens == 5);
  CHECK(d[0].cached_prompt_tokens == 0);
  CHECK(problems.empty());

  d = scrape(61000, 30, 5, 4);  // SGLang-style: the cached counter appears at its first hit
  REQUIRE(d.size() == 1);
  CHECK_FALSE(d[0].reset);
  CHECK(d[0].prompt_tokens == 10);
  CHECK(d[0].cached_prompt_tokens == 4);
}

TEST_CASE("token deltas: values that cannot be counted are reported, state kept", "[scrape]") {
  TokenDeltas deltas;
  std::vector<std::string> problems;
  const std::string target = "t";
  deltas.observe(target, 1000, {counters("sglang", "m", 100, 50, 10)}, problems);
  const CounterState before = deltas.state().begin()->second;
  auto bad = [&](ModelServing m, std::int64_t now = 2000) {
    problems.clear();
    CHECK(deltas.observe(target, now, {m}, problems).empty());
    CHECK(problems.size() == 1);
    const CounterState after = deltas.state().begin()->second;
    CHECK(after.observed_at_ms == before.observed_at_ms);
    CHECK(after.prompt_tokens == before.prompt_tokens);
  };
  bad(counters("sglang", "m", std::numeric_limits<double>::quiet_NaN(), 60));
  bad(counters("sglang", "m", 110, std::numeric_limits<double>::infinity()));
  bad(counters("sglang", "m", -1, 60));
  bad(counters("sglang", "m", 110, 60, 9007199254740993.0 * 2));
  bad(counters("sglang", "m", 110, 60, 10), 999);  // older than the state
  ModelServing none = counters("sglang", "m", 0, 0);
  none.prompt_tokens_total.reset();
  none.generation_tokens_total.reset();
  bad(none);
  bad(counters("sglang", "m\x1fx", 110, 60, 10));
  REQUIRE(deltas.state().size() == 1);

  problems.clear();
  const auto d = deltas.observe(target, 3000, {counters("sglang", "m", 110, 60, 10)}, problems);
  REQUIRE(d.size() == 1);
  CHECK(d[0].from_ms == 1000);  // from the last good scrape: nothing lost
  CHECK(d[0].prompt_tokens == 10);
  CHECK(problems.empty());
}

TEST_CASE("token deltas: state saved and loaded continues exactly", "[scrape]") {
  TokenDeltas first;
  std::vector<std::string> problems;
  const std::vector<ModelServing> scrape1{
      counters("vllm", "a", 100, 50, 0), counters("vllm", "b \"quoted\"\n", 9007199254740992.0, 1)};
  first.observe("target-1", 1000, scrape1, problems);
  first.observe("target-2", 1500, {counters("sglang", "a", 7, 7, 7)}, problems);
  REQUIRE(first.state().size() == 3);

  const std::string saved = first.save_json();
  CHECK(std::count(saved.begin(), saved.end(), '\n') == 5);  // two targets, three models
  auto loaded = TokenDeltas::load_json(saved);
  REQUIRE(loaded);
  TokenDeltas second = std::move(loaded.value());
  CHECK(second.save_json() == saved);

  const std::vector<ModelServing> scrape2{
      counters("vllm", "a", 130, 70, 5), counters("vllm", "b \"quoted\"\n", 9007199254740992.0, 3)};
  const auto from_first = first.observe("target-1", 16000, scrape2, problems);
  const auto from_second = second.observe("target-1", 16000, scrape2, problems);
  REQUIRE(from_first.size() == 2);
  REQUIRE(from_second.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(from_second[i].model == from_first[i].model);
    CHECK(from_second[i].prompt_tokens == from_first[i].prompt_tokens);
    CHECK(from_second[i].generation_tokens == from_first[i].generation_tokens);
    CHECK(from_second[i].cached_prompt_tokens == from_first[i].cached_prompt_tokens);
    CHECK(from_second[i].event_id == from_first[i].event_id);  // a replay has the same id
  }
  CHECK(from_first[0].prompt_tokens == 30);
  CHECK(from_first[1].generation_tokens == 2);
  CHECK(problems.empty());
  CHECK(second.observe("target-1", 16000, scrape2, problems).empty());  // no double count

  TokenDeltas restored;
  restored.restore(first.state());
  CHECK(restored.state().size() == first.state().size());
  CHECK(restored.targets().empty());
}

TEST_CASE("token deltas: a model first seen after the target's baseline counts from zero",
          "[scrape]") {
  TokenDeltas deltas;
  std::vector<std::string> problems;
  // An SGLang server before its first request exposes no labelled series at all.
  CHECK(deltas.observe("t", 1000, {}, problems).empty());
  CHECK(deltas.targets().at("t") == 1000);
  auto d = deltas.observe("t", 2000, {counters("sglang", "m", 300, 40, 100)}, problems);
  REQUIRE(d.size() == 1);
  CHECK(d[0].from_ms == 1000);
  CHECK(d[0].prompt_tokens == 300);
  CHECK(d[0].generation_tokens == 40);
  CHECK(d[0].cached_prompt_tokens == 100);
  CHECK_FALSE(d[0].reset);
  // Saved and loaded, the target stays known: a second new model also counts from zero.
  auto loaded = TokenDeltas::load_json(deltas.save_json());
  REQUIRE(loaded);
  d = loaded.value().observe(
      "t", 3000, {counters("sglang", "m", 300, 40, 100), counters("sglang", "n", 5, 1)}, problems);
  REQUIRE(d.size() == 1);
  CHECK(d[0].model == "n");
  CHECK(d[0].prompt_tokens == 5);
  // Another target's first scrape is still a baseline.
  CHECK(loaded.value().observe("u", 3000, {counters("vllm", "m", 900, 90)}, problems).empty());
  CHECK(problems.empty());
}

TEST_CASE("token deltas: load_json refuses what it cannot trust", "[scrape]") {
  const std::string good =
      R"({"target":"t","server_kind":"vllm","model":"m","prompt_tokens":1,"generation_tokens":2,"cached_prompt_tokens":0,"observed_at_ms":5})";
  auto error_of = [](std::string_view text) {
    const auto result = TokenDeltas::load_json(text);
    return result ? std::string("ok") : result.error().message;
  };
  CHECK(error_of("") == "ok");
  CHECK(error_of("\n" + good + "\n\n") == "ok");
  CHECK(error_of(good + "\n" + good) ==
        "token counter state line 2: a second state for the same target, server kind and model");
  CHECK(error_of("{") == "token counter state line 1: not a JSON object");
  CHECK(error_of("[1]") == "token counter state line 1: not a JSON object");
  CHECK(error_of(R"({"server_kind":"vllm","model":"m"})") ==
        "token counter state line 1: target must be a string");
  std::string negative = good;
  negative.replace(negative.find("\"prompt_tokens\":1"), 17, "\"prompt_tokens\":-1");
  CHECK(error_of(negative) == "token counter state line 1: prompt_tokens must be a number 0..2^53");
  std::string fractional_time = good;
  fractional_time.replace(fractional_time.find(":5}"), 3, ":5.5}");
  CHECK(error_of(fractional_time) ==
        "token counter state line 1: observed_at_ms must be an integer");
  std::string separator = good;
  separator.replace(separator.find("\"m\""), 3, "\"m\\u001f\"");
  CHECK(error_of(separator) == "token counter state line 1: model contains the byte 0x1f");
}

TEST_CASE("deterministic_uuid_v7: valid, deterministic, time in front", "[scrape]") {
  const std::string a = deterministic_uuid_v7(1754550000250, "seed");
  CHECK(a == deterministic_uuid_v7(1754550000250, "seed"));
  CHECK(a != deterministic_uuid_v7(1754550000250, "seed2"));
  CHECK(a != deterministic_uuid_v7(1754550000251, "seed"));
  CHECK(telemetryd::events::is_uuid_v7(a));
  CHECK(a.substr(0, 13) == "01988354-5a7a");  // 1754550000250 = 0x019883545a7a
  CHECK(telemetryd::events::is_uuid_v7(deterministic_uuid_v7(-5, "")));
  CHECK(deterministic_uuid_v7(-5, "").substr(0, 8) == "00000000");
  CHECK(deterministic_uuid_v7(std::numeric_limits<std::int64_t>::max(), "").substr(0, 13) ==
        "ffffffff-ffff");
  for (int i = 0; i < 200; ++i)
    CHECK(telemetryd::events::is_uuid_v7(deterministic_uuid_v7(i * 7919, std::to_string(i))));
}

TEST_CASE("token deltas: a restart seen by _created, a vanished counter starts from zero",
          "[scrape]") {
  TokenDeltas deltas;
  std::vector<std::string> problems;
  auto with_created = [](double prompt, double generation, std::optional<double> cached,
                         double created) {
    ModelServing m = counters("vllm", "m", prompt, generation, cached);
    m.counters_created = created;
    return m;
  };
  CHECK(deltas.observe("t", 1000, {with_created(1000, 100, 10, 1.7e9)}, problems).empty());
  // The server restarted and has already served more than before: only _created tells.
  auto d = deltas.observe("t", 2000, {with_created(1200, 150, 20, 1.7e9 + 60)}, problems);
  REQUIRE(d.size() == 1);
  CHECK(d[0].reset);
  CHECK(d[0].prompt_tokens == 1200);
  CHECK(d[0].generation_tokens == 150);
  // Saved and loaded, _created is kept: the same values again count nothing.
  auto loaded = TokenDeltas::load_json(deltas.save_json());
  REQUIRE(loaded);
  CHECK(loaded.value()
            .observe("t", 3000, {with_created(1200, 150, 20, 1.7e9 + 60)}, problems)
            .empty());
  // The cached counter vanishes while the others grow: it counts nothing and restarts at zero.
  d = loaded.value().observe("t", 4000, {with_created(1300, 160, std::nullopt, 1.7e9 + 60)},
                             problems);
  REQUIRE(d.size() == 1);
  CHECK_FALSE(d[0].reset);
  CHECK(d[0].prompt_tokens == 100);
  CHECK(d[0].cached_prompt_tokens == 0);
  d = loaded.value().observe("t", 5000, {with_created(1300, 160, 7, 1.7e9 + 60)}, problems);
  REQUIRE(d.size() == 1);
  CHECK(d[0].cached_prompt_tokens == 7);
  CHECK(problems.empty());
}

TEST_CASE("serving_by_model reads the oldest _created of the prompt counter", "[scrape]") {
  const auto parsed = parse_exposition(
      "# TYPE vllm:prompt_tokens_total counter\n"
      "vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 10.0\n"
      "vllm:prompt_tokens_total{engine=\"1\",model_name=\"m\"} 5.0\n"
      "# TYPE vllm:prompt_tokens_created gauge\n"
      "vllm:prompt_tokens_created{engine=\"0\",model_name=\"m\"} 1.7000000005e+09\n"
      "vllm:prompt_tokens_created{engine=\"1\",model_name=\"m\"} 1.7000000090e+09\n",
      false);
  REQUIRE(parsed);
  const auto models = serving_by_model(parsed.value());
  REQUIRE(models.size() == 1);
  CHECK(models[0].prompt_tokens_total == 15);
  REQUIRE(models[0].counters_created);
  CHECK(*models[0].counters_created == Approx(1.7000000005e9));
}
