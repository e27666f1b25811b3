#pragma once
// Parser of what a Prometheus /metrics endpoint returns: the text format 0.0.4 and OpenMetrics 1.0
// text. Model servers (vLLM, SGLang) are scraped with it, so any input is untrusted: a malformed
// exposition is refused as a whole with the line at fault, never half-read.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "telemetryd/result.hpp"

namespace telemetryd::scrape {

struct Label {
  std::string name, value;  // value unescaped (\\, \", \n)
};

struct Sample {
  std::string name;
  std::vector<Label> labels;
  double value = 0;
  std::optional<std::int64_t> timestamp_ms;
};

enum class MetricType : std::uint8_t {
  kUntyped,
  kCounter,
  kGauge,
  kHistogram,
  kSummary,
  kInfo,
  kStateSet,
  kGaugeHistogram,
  kUnknown
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, MetricType, std::less<>> types;  // family name -> TYPE
};

/// Refusals beyond these are errors, not allocations.
inline constexpr std::size_t kMaxSamples = 1'000'000;
inline constexpr std::size_t kMaxLabelValueBytes = 64 * 1024;

/// Permanent error (Error::permanent from include/telemetryd/result.hpp) naming the line number
/// and what is wrong.
Result<Exposition> parse_exposition(std::string_view text, bool openmetrics);

/// Picks openmetrics from a Content-Type header ("application/openmetrics-text; version=1.0.0;
/// charset=utf-8").
bool is_openmetrics(std::string_view content_type);

/// The value of label `name` of `sample`, or nullptr.
const std::string* find_label(const Sample& sample, std::string_view name);

/// The TYPE of the family a sample belongs to: the sample's own name, else the name without one
/// of the suffixes the formats add (_total, _created, _bucket, _count, _sum, _info, _gcount,
/// _gsum). The text format types `foo_total` as a counter, OpenMetrics types `foo`; both are found.
std::optional<MetricType> family_type(const Exposition& exposition, std::string_view sample_name);

}  // namespace telemetryd::scrape
