// Fuzzes the scrape source's reading of a model server's /metrics answer
// (src/scrape/exposition.*, serving_metrics.*, token_deltas.*). The first byte's low bit picks
// OpenMetrics; the rest is the exposition. Beyond "does not crash", every input must satisfy
// (docs/fuzzing.md):
//  - a refusal is permanent and names its line ("exposition line N: ...");
//  - an accepted exposition has at most kMaxSamples samples, non-empty names, label values of at
//    most kMaxLabelValueBytes and no label name twice in a sample;
//  - serving_by_model lists each (server kind, model) once, sorted, each with a token counter,
//    and quantiles that are numbers in order (p50 <= p90 <= p99);
//  - TokenDeltas fed that scrape twice counts nothing the second time, and its state survives
//    save_json/load_json unchanged.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "fuzz_invariants.hpp"
#include "scrape/exposition.hpp"
#include "scrape/serving_metrics.hpp"
#include "scrape/token_deltas.hpp"

namespace {

using fuzz::expect;
using fuzz::violated;

using namespace telemetryd::scrape;

void check_exposition(const Exposition& exposition) {
  expect(exposition.samples.size() <= kMaxSamples, "too many samples");
  for (const Sample& sample : exposition.samples) {
    expect(!sample.name.empty(), "a sample without a name");
    std::set<std::string_view> names;
    for (const Label& label : sample.labels) {
      expect(!label.name.empty(), "an empty label name", sample.name);
      expect(label.value.size() <= kMaxLabelValueBytes, "a label value over the limit",
             sample.name);
      expect(names.insert(label.name).second, "a label name twice", label.name);
    }
  }
}

void check_quantiles(const LatencyQuantiles& q, const std::string& model) {
  for (const auto& p : {q.p50, q.p90, q.p99})
    expect(!p || !std::isnan(*p), "a NaN quantile", model);
  if (q.p50 && q.p90) expect(*q.p50 <= *q.p90, "p50 above p90", model);
  if (q.p90 && q.p99) expect(*q.p90 <= *q.p99, "p90 above p99", model);
}

void check_models(const std::vector<ModelServing>& models) {
  for (std::size_t i = 0; i < models.size(); ++i) {
    const ModelServing& m = models[i];
    expect(m.server_kind == "vllm" || m.server_kind == "sglang", "unknown server kind",
           m.server_kind);
    expect(m.prompt_tokens_total || m.generation_tokens_total, "a model without token counters",
           m.model);
    if (i > 0) {
      const ModelServing& p = models[i - 1];
      expect(std::tie(p.server_kind, p.model) < std::tie(m.server_kind, m.model),
             "models not sorted or listed twice", m.model);
    }
    check_quantiles(m.ttft, m.model);
    check_quantiles(m.itl, m.model);
  }
}

void check_deltas(const std::vector<ModelServing>& models) {
  TokenDeltas deltas;
  std::vector<std::string> problems;
  expect(deltas.observe("fuzz", 1000, models, problems).empty(), "a delta from a baseline");
  expect(deltas.observe("fuzz", 2000, models, problems).empty(), "a delta from the same values");
  const std::string saved = deltas.save_json();
  auto loaded = TokenDeltas::load_json(saved);
  if (!loaded) violated("saved state does not load", loaded.error().message);
  expect(loaded.value().save_json() == saved, "state changed through save/load", saved);
  expect(loaded.value().state().size() == deltas.state().size(), "state lost through save/load");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool openmetrics = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto result = parse_exposition(text, openmetrics);
  if (!result) {
    const auto& error = result.error();
    expect(error.kind == telemetryd::Error::Kind::kPermanent, "a retryable parse error");
    expect(error.message.starts_with("exposition line "), "an error without its line",
           error.message);
    return 0;
  }
  check_exposition(result.value());
  const auto models = serving_by_model(result.value());
  check_models(models);
  check_deltas(models);
  return 0;
}
