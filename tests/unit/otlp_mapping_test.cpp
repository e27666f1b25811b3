// GenAI spans -> token.usage.v1 events (src/otlp/genai_mapping.*) on the fixtures the official
// OpenTelemetry Python classes wrote (tests/fixtures/otlp), the gen_ai.client.token.usage
// counters, and the scrape targets' syntax.

#include <simdjson.h>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "events/event_decoder.hpp"
#include "otlp/genai_mapping.hpp"
#include "otlp/genai_metrics.hpp"
#include "otlp/otlp_decode.hpp"
#include "scrape/scrape_targets.hpp"
#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::otlp;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/otlp/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Decoded {
  telemetryd::events::DecodedEvent event;
  std::string payload;
};

std::vector<Decoded> decode_all(const std::vector<Event>& events) {
  simdjson::dom::parser parser;
  std::vector<Decoded> out;
  for (const auto& e : events) {
    auto result = telemetryd::events::decode_event(e.payload, parser);
    if (auto* error = std::get_if<telemetryd::events::DecodeError>(&result)) {
      FAIL("not a valid token.usage.v1 event: " << error->detail << "\n" << e.payload);
    }
    out.push_back({std::get<telemetryd::events::DecodedEvent>(result), e.payload});
  }
  return out;
}

KeyValue attr(std::string_view key, std::int64_t value) {
  return {key, Value{.kind = Value::Kind::kInt, .integer = value}};
}
KeyValue attr(std::string_view key, std::string_view text) {
  return {key, Value{.kind = Value::Kind::kString, .text = text}};
}
KeyValue attr(std::string_view key, double number) {
  return {key, Value{.kind = Value::Kind::kDouble, .number = number}};
}

Span usage_span(std::uint8_t id, std::vector<KeyValue> attributes) {
  Span span;
  span.trace_id.fill(0xab);
  span.has_trace_id = true;
  span.span_id.fill(id);
  span.has_span_id = true;
  span.start_time_unix_nano = 1'764'806'400'000'000'000ULL;
  span.end_time_unix_nano = 1'764'806'401'500'000'000ULL;
  span.attributes = std::move(attributes);
  return span;
}

}  // namespace

TEST_CASE("the SDK's fixture spans become exact, valid usage events", "[otlp]") {
  for (const std::string encoding : {"pb", "json"}) {
    const std::string body = fixture("traces." + encoding);
    simdjson::dom::parser parser;
    Result<TracesRequest> request =
        encoding == "pb" ? decode_traces_protobuf(body) : decode_traces_json(body, parser);
    REQUIRE(request);
    MappingSettings settings;
    settings.source = "//telemetryd/test/otlp";
    const GenAiMapper mapper(settings);
    const TracesMapping mapped = mapper.map(request.value());
    CHECK(mapped.spans == 4);
    CHECK(mapped.without_usage == 1);  // the HTTP span
    // The embeddings span has no span id in the fixture: it cannot be deduplicated.
    CHECK(mapped.rejected == 1);
    CHECK(mapped.rejection_message.find("no trace_id or span_id") != std::string::npos);
    REQUIRE(mapped.events.size() == 2);
    const auto events = decode_all(mapped.events);
    const auto& chat = events[0].event;
    CHECK(chat.model == "gpt-4o-2024-08-06");  // the response model wins
    CHECK(chat.input_tokens == 1200);          // cache reads are inside it, not added
    CHECK(chat.output_tokens == 345);
    CHECK(chat.tenant_id == "unattributed");
    CHECK(chat.deployment == "chat-api");  // service.name
    CHECK(chat.host == "gpu-node-1");
    CHECK(events[0].payload.find("\"cache_read_tokens\":1000") != std::string::npos);
    CHECK(events[0].payload.find("\"provider\":\"openai\"") != std::string::npos);
    CHECK(events[0].payload.find("\"source_kind\":\"otlp\"") != std::string::npos);
    CHECK(events[0].payload.find("\"duration_ms\":1250") != std::string::npos);
    CHECK(events[0].payload.find("\"time\":\"2025-12-04T00:00:01.250Z\"") != std::string::npos);
    CHECK(mapped.events[0].key == "chat-api");
    const auto& old_names = events[1].event;  // gen_ai.system, prompt/completion_tokens
    CHECK(old_names.model == "claude-3-5-sonnet");
    CHECK(old_names.input_tokens == 50);
    CHECK(old_names.output_tokens == 20);
    CHECK(events[1].payload.find("\"provider\":\"anthropic\"") != std::string::npos);
    // The id depends on the span alone: the same request decoded again maps to the same ids.
    const TracesMapping again = mapper.map(request.value());
    CHECK(again.events[0].id == mapped.events[0].id);
    CHECK(again.events[1].id == mapped.events[1].id);
    CHECK(mapped.events[0].id != mapped.events[1].id);
    CHECK(telemetryd::events::is_uuid_v7(mapped.events[0].id));
  }
}

TEST_CASE("span attributes: priorities, tenants, cache buckets and bad counts", "[otlp]") {
  MappingSettings settings;
  settings.tenant_keys = {"litellm.team", "tenant.id"};
  settings.max_tokens = 1000;
  const GenAiMapper mapper(settings);
  TracesRequest request;
  request.resources.push_back({});
  auto& resource = request.resources.back();
  resource.resource = {attr("tenant.id", "from-resource"), attr("k8s.node.name", "node-7"),
                       attr("host.name", "pod-abc"), attr("k8s.pod.name", "pod-abc")};
  // 1: the new names win over the old ones; the span's tenant over the resource's.
  resource.spans.push_back(usage_span(
      1, {attr("gen_ai.usage.prompt_tokens", std::int64_t{1}),
          attr("gen_ai.usage.input_tokens", std::int64_t{100}),
          attr("gen_ai.usage.output_tokens", std::string_view("40")),  // a string count
          attr("gen_ai.usage.reasoning.output_tokens", std::int64_t{10}),
          attr("litellm.team", "team-a"), attr("gen_ai.request.model", "m"),
          attr("gen_ai.cost.total_cost", 0.0125), attr("gen_ai.server.time_to_first_token", 0.2),
          attr("gen_ai.input.messages", "never stored")}));
  // 2: cache buckets larger than input: the emitter left them out of input.
  resource.spans.push_back(
      usage_span(2, {attr("gen_ai.usage.input_tokens", std::int64_t{10}),
                     attr("gen_ai.usage.cache_read.input_tokens", std::int64_t{200}),
                     attr("gen_ai.usage.cache_creation.input_tokens", std::int64_t{50}),
                     attr("gen_ai.usage.output_tokens", std::int64_t{5})}));
  // 3-6: refused, each with its reason.
  resource.spans.push_back(usage_span(3, {attr("gen_ai.usage.input_tokens", std::int64_t{-1})}));
  resource.spans.push_back(usage_span(4, {attr("gen_ai.usage.output_tokens", std::int64_t{1001})}));
  resource.spans.push_back(usage_span(5, {attr("gen_ai.usage.output_tokens", 1.5)}));
  Span late = usage_span(6, {attr("gen_ai.usage.output_tokens", std::int64_t{1})});
  late.end_time_unix_nano = 5'000'000'000'000'000'000ULL;
  resource.spans.push_back(late);
  // 7: tokens only on the resource are no usage of this span.
  resource.resource.push_back(attr("gen_ai.usage.input_tokens", std::int64_t{9}));
  resource.spans.push_back(usage_span(7, {attr("gen_ai.request.model", "m")}));

  const TracesMapping mapped = mapper.map(request);
  CHECK(mapped.rejected == 4);
  CHECK(mapped.without_usage == 1);
  CHECK(mapped.rejection_message.find("input tokens is negative (-1)") != std::string::npos);
  CHECK(mapped.rejection_message.find("output tokens of 1001 is over the limit of 1000") !=
        std::string::npos);
  CHECK(mapped.rejection_message.find("output tokens is not an integer") != std::string::npos);
  REQUIRE(mapped.events.size() == 2);
  const auto events = decode_all(mapped.events);
  CHECK(events[0].event.input_tokens == 100);
  CHECK(events[0].event.output_tokens == 40);
  CHECK(events[0].event.tenant_id == "team-a");
  CHECK(events[0].event.host == "node-7");  // the node, not the pod's host name
  CHECK(events[0].payload.find("\"provider_cost_usd\":0.0125") != std::string::npos);
  CHECK(events[0].payload.find("\"ttft_ms\":200") != std::string::npos);
  CHECK(events[0].payload.find("\"tags\":[\"pod:pod-abc\"]") != std::string::npos);
  CHECK(events[0].payload.find("never stored") == std::string::npos);
  CHECK(events[0].event.model == "m");
  CHECK(events[1].event.input_tokens == 260);
  CHECK(events[1].event.tenant_id == "from-resource");
  CHECK(events[1].event.model == "unknown");
  CHECK(events[1].payload.find("\"cache_creation_tokens\":50") != std::string::npos);
}

TEST_CASE("gen_ai.client.token.usage points: delta sums, cumulative increases", "[otlp]") {
  metrics::Registry registry;
  TokenUsageMetrics counters(registry, 2);
  const auto request = [](int temporality, double sum, std::uint64_t start, const char* model) {
    MetricsRequest r;
    r.resources.push_back({});
    Metric metric;
    metric.name = "gen_ai.client.token.usage";
    metric.kind = Metric::Kind::kHistogram;
    metric.temporality = temporality;
    NumberPoint point;
    point.attributes = {attr("gen_ai.token.type", "input"), attr("gen_ai.request.model", model),
                        attr("gen_ai.provider.name", "openai")};
    point.start_time_unix_nano = start;
    point.value = sum;
    point.has_value = true;
    metric.points.push_back(point);
    r.resources.back().metrics.push_back(metric);
    r.data_point_count = 1;
    return r;
  };
  const auto value = [&](const char* model) {
    return registry
        .counter("otlp_genai_client_tokens_total", "", {"model", "provider", "token_type"})
        .with({model, "openai", "input"})
        .Value();
  };
  counters.observe(request(1, 10, 0, "a"));
  counters.observe(request(1, 5, 0, "a"));
  CHECK(value("a") == 15);
  counters.observe(request(2, 100, 7, "b"));  // first sight: all of it
  counters.observe(request(2, 130, 7, "b"));  // +30
  counters.observe(request(2, 130, 7, "b"));  // the same point again: +0
  counters.observe(request(2, 20, 9, "b"));   // the emitter restarted: +20
  CHECK(value("b") == 150);
  counters.observe(request(1, 4, 0, "c"));  // past max_series (2 models): counted as other
  CHECK(value("other") == 4);
  const MetricsOutcome bad = counters.observe(request(1, -1, 0, "a"));
  CHECK(bad.rejected == 1);
  CHECK(value("a") == 15);
}

TEST_CASE("scrape targets: URL, host and deployment, errors with their line", "[otlp][scrape]") {
  auto target = scrape::parse_target("https://10.0.0.5:8000 host=gpu-1 deployment=llama");
  REQUIRE(target);
  CHECK(target->origin == "https://10.0.0.5:8000");
  CHECK(target->path == "/metrics");
  CHECK(target->host == "gpu-1");
  CHECK(target->deployment == "llama");
  target = scrape::parse_target("  http://vllm:8000/stats/metrics?x=1  ");
  REQUIRE(target);
  CHECK(target->path == "/stats/metrics?x=1");
  CHECK(target->url == "http://vllm:8000/stats/metrics?x=1");
  CHECK_FALSE(scrape::parse_target("ftp://x/metrics"));
  CHECK_FALSE(scrape::parse_target("http://user@x/metrics"));
  CHECK_FALSE(scrape::parse_target("http://x/metrics zone=a"));
  CHECK_FALSE(scrape::parse_target("http://x/metrics host="));
  const auto listed = scrape::parse_targets_file(
      "# servers\n\nhttp://a/metrics  # vLLM\nhttp://b/metrics host=n\n", "targets");
  REQUIRE(listed);
  CHECK(listed.value().size() == 2);
  const auto broken = scrape::parse_targets_file("http://a/metrics\nnot-a-url\n", "targets");
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message.rfind("targets:2: ", 0) == 0);
}

TEST_CASE("check-config: a receiver without its token file, a scrape without targets",
          "[otlp][scrape][cli]") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("otlp-check-" + std::to_string(getpid()) + ".yaml"))
                               .string();
  {
    std::ofstream out(path);
    out << "role: all\notlp:\n  enabled: true\n  auth: bearer\nscrape:\n  enabled: true\n";
  }
  const auto result =
      test_support::run_command({test_support::telemetryd_bin(), "check-config", path});
  INFO(result.output);
  CHECK(result.status == 78);
  // Located at the key that made them necessary: otlp.enabled (line 3), scrape.enabled (line 6).
  CHECK(result.output.find(path + ":3:3: otlp.tokens_file: is required") != std::string::npos);
  CHECK(result.output.find(path + ":6:3: scrape.targets: lists no target") != std::string::npos);
  CHECK(result.output.find("otlp.tokens_file") != std::string::npos);
  CHECK(result.output.find("scrape.targets") != std::string::npos);
  std::filesystem::remove(path);
}
