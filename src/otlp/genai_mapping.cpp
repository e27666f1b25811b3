#include "otlp/genai_mapping.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <optional>

#include "events/cloudevent.hpp"
#include "events/event_id.hpp"
#include "events/token_usage.hpp"

namespace telemetryd::otlp {
namespace {

using Slot = GenAiMapper::Slot;

// Attribute names per field, the current semantic-convention name first. Sources: the GenAI
// registry (gen_ai.usage.*, gen_ai.request/response.*, gen_ai.provider.name), its v1.36 names
// still emitted by default (gen_ai.system, gen_ai.usage.prompt_tokens/completion_tokens, which
// vLLM's tracing uses), OpenInference (llm.token_count.*, llm.model_name, llm.provider,
// llm.cost.total) and vendors' cost attributes (LiteLLM gen_ai.usage.cost and
// gen_ai.cost.total_cost). docs/otlp.md lists them.
struct Name {
  const char* key;
  Slot slot;
};
constexpr std::array kNames{
    Name{"gen_ai.usage.input_tokens", Slot::kInput},
    Name{"gen_ai.usage.prompt_tokens", Slot::kInput},
    Name{"llm.token_count.prompt", Slot::kInput},
    Name{"gen_ai.usage.output_tokens", Slot::kOutput},
    Name{"gen_ai.usage.completion_tokens", Slot::kOutput},
    Name{"llm.token_count.completion", Slot::kOutput},
    Name{"gen_ai.usage.cache_read.input_tokens", Slot::kCacheRead},
    Name{"gen_ai.usage.cache_read_input_tokens", Slot::kCacheRead},
    Name{"llm.token_count.prompt_details.cache_read", Slot::kCacheRead},
    Name{"gen_ai.usage.cache_creation.input_tokens", Slot::kCacheCreation},
    Name{"gen_ai.usage.cache_creation_input_tokens", Slot::kCacheCreation},
    Name{"llm.token_count.prompt_details.cache_write", Slot::kCacheCreation},
    Name{"gen_ai.usage.reasoning.output_tokens", Slot::kReasoning},
    Name{"gen_ai.usage.reasoning_tokens", Slot::kReasoning},
    Name{"llm.token_count.completion_details.reasoning", Slot::kReasoning},
    Name{"gen_ai.request.model", Slot::kRequestModel},
    Name{"gen_ai.response.model", Slot::kResponseModel},
    Name{"llm.model_name", Slot::kResponseModel},
    Name{"gen_ai.provider.name", Slot::kProvider},
    Name{"gen_ai.system", Slot::kProvider},
    Name{"llm.provider", Slot::kProvider},
    Name{"gen_ai.response.id", Slot::kRequestId},
    Name{"gen_ai.request.id", Slot::kRequestId},
    Name{"gen_ai.server.time_to_first_token", Slot::kTtftSeconds},
    Name{"gen_ai.latency.time_to_first_token", Slot::kTtftSeconds},
    Name{"gen_ai.usage.cost", Slot::kCost},
    Name{"gen_ai.usage.cost.amount", Slot::kCost},
    Name{"gen_ai.cost.total_cost", Slot::kCost},
    Name{"llm.cost.total", Slot::kCost},
    Name{"user.id", Slot::kUser},
    Name{"k8s.pod.name", Slot::kPod},
};

constexpr std::size_t kSlots = static_cast<std::size_t>(Slot::kCount);
constexpr std::size_t kMaxTextBytes = 512;

struct Found {
  const Value* value = nullptr;
  std::uint8_t priority = 255;
  bool from_span = false;
};

// A token count as emitters send it: an int, an integral double, or (some JSON emitters) a
// decimal string. nullopt when the value is none of these.
std::optional<std::int64_t> token_count(const Value& value) {
  switch (value.kind) {
    case Value::Kind::kInt:
      return value.integer;
    case Value::Kind::kDouble:
      if (std::isfinite(value.number) && value.number == std::floor(value.number) &&
          std::fabs(value.number) < 9.0e15) {
        return static_cast<std::int64_t>(value.number);
      }
      return std::nullopt;
    case Value::Kind::kString: {
      std::string_view text = value.text;
      if (text.empty() || text.size() > 18) return std::nullopt;
      bool negative = false;
      if (text.front() == '-') {
        negative = true;
        text.remove_prefix(1);
        if (text.empty()) return std::nullopt;
      }
      std::int64_t n = 0;
      for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
      }
      return negative ? -n : n;
    }
    default:
      return std::nullopt;
  }
}

std::optional<double> number(const Value& value) {
  switch (value.kind) {
    case Value::Kind::kInt:
      return static_cast<double>(value.integer);
    case Value::Kind::kDouble:
      if (std::isfinite(value.number)) return value.number;
      return std::nullopt;
    case Value::Kind::kString: {
      if (auto n = token_count(value)) return static_cast<double>(*n);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

std::optional<std::string> text(const Found& found) {
  if (found.value == nullptr) return std::nullopt;
  const Value& v = *found.value;
  if (v.kind == Value::Kind::kString && !v.text.empty()) return std::string(v.text);
  if (v.kind == Value::Kind::kInt) return std::to_string(v.integer);
  return std::nullopt;
}

std::string hex(const std::uint8_t* bytes, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0x0f]);
  }
  return out;
}

void note_rejection(TracesMapping& out, const Span& span, const std::string& why) {
  ++out.rejected;
  // A few reasons are enough for a client to fix its emitter; the count says the rest.
  if (out.rejected > 3) return;
  if (!out.rejection_message.empty()) out.rejection_message += "; ";
  out.rejection_message += "span ";
  out.rejection_message +=
      span.has_span_id ? hex(span.span_id.data(), span.span_id.size()) : std::string("(no id)");
  out.rejection_message += ": " + why;
}

}  // namespace

GenAiMapper::GenAiMapper(MappingSettings settings) : settings_(std::move(settings)) {
  std::array<std::uint8_t, kSlots> next_priority{};
  const auto add = [&](const std::string& key, Slot slot) {
    const auto s = static_cast<std::size_t>(slot);
    keys_.push_back({key, Use{slot, next_priority[s]++}});
  };
  for (const auto& name : kNames) add(name.key, name.slot);
  for (const auto& key : settings_.tenant_keys) add(key, Slot::kTenant);
  for (const auto& key : settings_.deployment_keys) add(key, Slot::kDeployment);
  for (const auto& key : settings_.host_keys) add(key, Slot::kHost);
  std::stable_sort(keys_.begin(), keys_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
}

TracesMapping GenAiMapper::map(const TracesRequest& request) const {
  TracesMapping out;
  const auto lookup = [this](std::array<Found, kSlots>& found, const std::vector<KeyValue>& attrs,
                             bool from_span) {
    for (const KeyValue& kv : attrs) {
      auto it =
          std::lower_bound(keys_.begin(), keys_.end(), kv.key,
                           [](const std::pair<std::string, Use>& entry, std::string_view key) {
                             return std::string_view(entry.first) < key;
                           });
      for (; it != keys_.end() && it->first == kv.key; ++it) {
        Found& f = found[static_cast<std::size_t>(it->second.slot)];
        // Lower priority wins; on a tie the span's own attribute beats its resource's.
        if (it->second.priority < f.priority ||
            (it->second.priority == f.priority && from_span && !f.from_span)) {
          f = Found{&kv.value, it->second.priority, from_span};
        }
      }
    }
  };

  for (const ResourceSpans& resource : request.resources) {
    std::array<Found, kSlots> resource_found{};
    lookup(resource_found, resource.resource, false);
    for (const Span& span : resource.spans) {
      ++out.spans;
      std::array<Found, kSlots> found = resource_found;
      lookup(found, span.attributes, true);
      const auto at = [&found](Slot slot) -> const Found& {
        return found[static_cast<std::size_t>(slot)];
      };
      // Usage is a span attribute; a resource attribute naming tokens would bill every span.
      const bool has_usage = (at(Slot::kInput).value != nullptr && at(Slot::kInput).from_span) ||
                             (at(Slot::kOutput).value != nullptr && at(Slot::kOutput).from_span);
      if (!has_usage) {
        ++out.without_usage;
        continue;
      }
      if (!span.has_trace_id || !span.has_span_id) {
        note_rejection(out, span,
                       "no trace_id or span_id, so a retried export could not be "
                       "recognised as a duplicate");
        continue;
      }
      const std::uint64_t end_ns =
          span.end_time_unix_nano != 0 ? span.end_time_unix_nano : span.start_time_unix_nano;
      if (end_ns == 0) {
        note_rejection(out, span, "no end_time_unix_nano (nor start time)");
        continue;
      }
      // 2100-01-01: a time past it is a unit mistake (microseconds sent as seconds, say), and
      // nanoseconds past 2262 would not fit the clock.
      if (end_ns >= 4'102'444'800'000'000'000ULL) {
        note_rejection(out, span,
                       "end time " + std::to_string(end_ns) +
                           " ns is after the year 2100 (not Unix nanoseconds?)");
        continue;
      }

      events::TokenUsage usage;
      std::string problem;
      const auto tokens = [&](Slot slot, const char* what) -> std::optional<std::int64_t> {
        const Found& f = at(slot);
        if (f.value == nullptr || !f.from_span || !problem.empty()) return std::nullopt;
        std::optional<std::int64_t> n = token_count(*f.value);
        if (!n) {
          problem = std::string(what) + " is not an integer";
        } else if (*n < 0) {
          problem = std::string(what) + " is negative (" + std::to_string(*n) + ")";
        } else if (*n > settings_.max_tokens) {
          problem = std::string(what) + " of " + std::to_string(*n) + " is over the limit of " +
                    std::to_string(settings_.max_tokens) + " (otlp.max_tokens_per_span)";
        }
        return problem.empty() ? n : std::nullopt;
      };
      usage.input_tokens = tokens(Slot::kInput, "input tokens").value_or(0);
      usage.output_tokens = tokens(Slot::kOutput, "output tokens").value_or(0);
      usage.cache_read_tokens = tokens(Slot::kCacheRead, "cache-read tokens");
      usage.cache_creation_tokens = tokens(Slot::kCacheCreation, "cache-creation tokens");
      usage.reasoning_tokens = tokens(Slot::kReasoning, "reasoning tokens");
      if (!problem.empty()) {
        note_rejection(out, span, problem);
        continue;
      }
      // The conventions count cache reads and writes inside input (and reasoning inside
      // output). An emitter whose buckets exceed the total reported input without them
      // (Anthropic's API does): the request still read them, so input becomes the sum.
      const std::int64_t cached =
          usage.cache_read_tokens.value_or(0) + usage.cache_creation_tokens.value_or(0);
      if (cached > usage.input_tokens) usage.input_tokens += cached;
      if (usage.reasoning_tokens.value_or(0) > usage.output_tokens) {
        usage.output_tokens += *usage.reasoning_tokens;
      }

      std::optional<std::string> model = text(at(Slot::kResponseModel));
      if (!model) model = text(at(Slot::kRequestModel));
      usage.model = model.value_or("unknown");
      usage.provider = text(at(Slot::kProvider));
      usage.request_id = text(at(Slot::kRequestId));
      usage.deployment = text(at(Slot::kDeployment));
      usage.host = text(at(Slot::kHost));
      usage.user_id = text(at(Slot::kUser));
      usage.tenant_id = text(at(Slot::kTenant)).value_or(settings_.default_tenant);
      if (std::optional<std::string> pod = text(at(Slot::kPod)))
        usage.tags.push_back("pod:" + *pod);
      if (const Found& f = at(Slot::kTtftSeconds); f.value != nullptr) {
        if (auto seconds = number(*f.value); seconds && *seconds >= 0)
          usage.ttft_ms = *seconds * 1e3;
      }
      if (const Found& f = at(Slot::kCost); f.value != nullptr) {
        if (auto cost = number(*f.value); cost && *cost >= 0) usage.provider_cost_usd = *cost;
      }
      if (span.start_time_unix_nano != 0 && span.end_time_unix_nano >= span.start_time_unix_nano) {
        usage.duration_ms =
            static_cast<double>(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6;
      }
      // Names become store keys, label values and parts of a Kafka message: one with a 2 MB
      // model name would make every retry of the whole export fail, so the span is refused.
      std::string too_long;
      for (const auto& [what, value] :
           {std::pair<const char*, const std::optional<std::string>*>{"model", &model},
            {"provider", &usage.provider},
            {"request id", &usage.request_id},
            {"deployment", &usage.deployment},
            {"host", &usage.host},
            {"user id", &usage.user_id}}) {
        if (*value && (*value)->size() > kMaxTextBytes && too_long.empty()) too_long = what;
      }
      if (usage.tenant_id.size() > kMaxTextBytes) too_long = "tenant";
      if (!usage.tags.empty() && usage.tags.front().size() > kMaxTextBytes + 4) too_long = "pod";
      if (!too_long.empty()) {
        note_rejection(out, span,
                       too_long + " is longer than " + std::to_string(kMaxTextBytes) + " bytes");
        continue;
      }
      usage.status = span.status_code == 2 ? "error" : "success";
      usage.source_kind = "otlp";

      const auto end_ms = static_cast<std::int64_t>(end_ns / 1'000'000);
      std::string seed = "otlp-span:";
      seed += hex(span.trace_id.data(), span.trace_id.size());
      seed += ':';
      seed += hex(span.span_id.data(), span.span_id.size());
      Event event;
      event.topic = settings_.topic;
      event.key = usage.deployment.value_or(usage.model);
      event.id = events::deterministic_uuid_v7(end_ms, seed);
      event.time = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::nanoseconds(end_ns)));
      event.payload =
          events::encode_cloudevent(event.id, settings_.source, kTokenUsageType, event.time,
                                    usage.tenant_id, events::encode_token_usage_data(usage));
      out.events.push_back(std::move(event));
    }
  }
  return out;
}

}  // namespace telemetryd::otlp
