#pragma once
// gen_ai.client.token.usage metric points -> per-model token counters on /metrics. A histogram
// of tokens per request cannot be billed per request (no identity, no tenant), so these feed
// dashboards and budgets beside the priced usage events that spans become; they are never stored
// as usage. Delta points add their sum; cumulative points add the increase since the series'
// previous point (all of it on first sight or after a restart of the emitter).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "otlp/otlp_model.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::otlp {

struct MetricsOutcome {
  std::size_t points = 0;     // every data point in the request
  std::size_t counted = 0;    // token-usage points that moved a counter
  std::size_t rejected = 0;   // token-usage points with an unusable value
  std::size_t untracked = 0;  // cumulative points of series past max_series: not counted
  std::string rejection_message;
};

class TokenUsageMetrics {
 public:
  /// `max_series` bounds both the cumulative state kept and the models exported: past it, new
  /// models are counted under model="other", and new cumulative series are not counted at all
  /// (without their previous point an increase cannot be told from a running sum).
  TokenUsageMetrics(metrics::Registry& registry, std::size_t max_series = 10000);
  MetricsOutcome observe(const MetricsRequest& request);

 private:
  struct Cumulative {
    std::uint64_t start_time_unix_nano = 0;
    double sum = 0;
  };
  metrics::Family<metrics::Counter>& tokens_;
  std::size_t max_series_;
  std::map<std::string, Cumulative, std::less<>> cumulative_;
  std::map<std::string, bool, std::less<>> models_;
  std::map<std::string, bool, std::less<>> providers_;
};

}  // namespace telemetryd::otlp
