#pragma once
// The unit that flows between stages: one CloudEvent, already encoded as the Kafka value, with
// its topic and partition key. Encoding once at the source keeps the sink a byte pipe.

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace telemetryd {

struct Event {
  std::string topic;
  std::string key;      // Kafka key: GPU UUID for metrics, deployment/model for usage
  std::string id;       // CloudEvents id (UUIDv7); the idempotency key downstream
  std::string payload;  // CloudEvents 1.0 structured JSON
  std::chrono::system_clock::time_point time;  // observation time
  /// Extra Kafka headers (the dead-letter topic's reason and origin).
  std::vector<std::pair<std::string, std::string>> headers;
  /// Adds `content-type: application/cloudevents+json`; off for dead letters, whose bytes are
  /// forwarded as received.
  bool cloudevent = true;
};

/// CloudEvents type names and their default topics.
inline constexpr const char* kGpuMetricsType = "io.telemetryd.gpu.metrics.v1";
inline constexpr const char* kTokenUsageType = "io.telemetryd.token.usage.v1";
inline constexpr const char* kGpuMetadataType = "io.telemetryd.gpu.metadata.v1";
inline constexpr const char* kGpuMetricsTopic = "gpu.metrics.v1";
inline constexpr const char* kTokenUsageTopic = "token.usage.v1";
inline constexpr const char* kGpuMetadataTopic = "gpu-metadata";

}  // namespace telemetryd
