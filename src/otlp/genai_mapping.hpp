#pragma once
// OpenTelemetry GenAI spans -> token.usage.v1 events. One span with usage attributes is one
// completed request: both the current names (gen_ai.usage.input_tokens, ...) and the older ones
// (gen_ai.usage.prompt_tokens, ...) and OpenInference's (llm.token_count.*) are read, so every
// emitter in use today maps without configuration. Only allow-listed attributes are read, and
// the decoders already dropped prompt and completion content: nothing of it can reach an event.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "otlp/otlp_model.hpp"
#include "telemetryd/event.hpp"

namespace telemetryd::otlp {

struct MappingSettings {
  /// Attribute keys naming the tenant, tried in order (span attributes, then resource ones).
  std::vector<std::string> tenant_keys{"tenant.id", "user.id"};
  /// tenant_id of a span that names none (token.usage.v1 requires one).
  std::string default_tenant = "unattributed";
  std::vector<std::string> deployment_keys{"k8s.deployment.name", "service.name"};
  /// The node a Kubernetes pod runs on names the GPUs' host; host.name in a pod is the pod.
  std::vector<std::string> host_keys{"k8s.node.name", "host.name"};
  /// A span reporting more tokens than this in one bucket is refused as absurd.
  std::int64_t max_tokens = 10'000'000;
  std::string source = "//telemetryd/otlp";
  std::string topic = kTokenUsageTopic;
};

struct TracesMapping {
  std::vector<Event> events;
  std::size_t spans = 0;
  std::size_t without_usage = 0;  // ignored: not an LLM request, or no usage reported
  std::size_t rejected = 0;
  /// The first rejections' reasons, for partial_success.error_message and the log.
  std::string rejection_message;
};

class GenAiMapper {
 public:
  explicit GenAiMapper(MappingSettings settings);
  TracesMapping map(const TracesRequest& request) const;
  const MappingSettings& settings() const { return settings_; }

  /// Which field an attribute key feeds, and how strongly (lower wins: the current name before
  /// the older one). Public for the tests.
  enum class Slot : std::uint8_t {
    kInput,
    kOutput,
    kCacheRead,
    kCacheCreation,
    kReasoning,
    kRequestModel,
    kResponseModel,
    kProvider,
    kRequestId,
    kTtftSeconds,
    kCost,
    kTenant,
    kDeployment,
    kHost,
    kUser,
    kPod,
    kCount,
  };
  struct Use {
    Slot slot;
    std::uint8_t priority;
  };

 private:
  MappingSettings settings_;
  // Sorted by key, searched with string_view keys: a binary search per attribute, no allocation.
  std::vector<std::pair<std::string, Use>> keys_;
};

}  // namespace telemetryd::otlp
