#include "scrape/token_deltas.hpp"

#include <openssl/sha.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include "telemetryd/json_writer.hpp"

namespace telemetryd::scrape {

namespace {

struct Reading {
  std::int64_t value = 0;
  bool present = false;
};

// A counter as read from one scrape; false (with a problem) when it cannot be counted exactly.
bool read_counter(const std::optional<double>& counter, const char* what, const std::string& who,
                  Reading& out, std::vector<std::string>& problems) {
  out = {};
  if (!counter) return true;
  const double v = *counter;
  if (!std::isfinite(v) || v < 0 || v > kMaxExactCounter) {
    problems.push_back(who + ": " + what + " is " + (std::isnan(v) ? "NaN" : std::to_string(v)) +
                       ", not a count; model skipped");
    return false;
  }
  // Token counters are integral floats; rounding absorbs any float noise.
  out.value = static_cast<std::int64_t>(std::llround(v));
  out.present = true;
  return true;
}

// State written by restore() is not checked there; clamp it into what a counter can be.
std::int64_t state_count(double v) {
  if (!(v > 0)) return 0;
  if (v > kMaxExactCounter) return static_cast<std::int64_t>(kMaxExactCounter);
  return static_cast<std::int64_t>(std::llround(v));
}

bool has_separator(std::string_view text) {
  return text.find(kKeySeparator) != std::string_view::npos;
}

// The three parts of a key, or nothing when it is not of that form.
std::optional<std::array<std::string_view, 3>> split_key(std::string_view key) {
  const std::size_t first = key.find(kKeySeparator);
  if (first == std::string_view::npos) return std::nullopt;
  const std::size_t second = key.find(kKeySeparator, first + 1);
  if (second == std::string_view::npos || has_separator(key.substr(second + 1)))
    return std::nullopt;
  return std::array<std::string_view, 3>{
      key.substr(0, first), key.substr(first + 1, second - first - 1), key.substr(second + 1)};
}

Error load_error(std::size_t line, const std::string& what) {
  return Error::permanent("token counter state line " + std::to_string(line) + ": " + what);
}

}  // namespace

std::string state_key(std::string_view target, std::string_view server_kind,
                      std::string_view model) {
  std::string key;
  key.reserve(target.size() + server_kind.size() + model.size() + 2);
  key.append(target).append(1, kKeySeparator).append(server_kind);
  key.append(1, kKeySeparator).append(model);
  return key;
}

std::vector<TokenDelta> TokenDeltas::observe(const std::string& target, std::int64_t now_ms,
                                             const std::vector<ModelServing>& models,
                                             std::vector<std::string>& problems) {
  std::vector<TokenDelta> out;
  for (const ModelServing& model : models) {
    const std::string who = target + " " + model.server_kind + " model " + model.model;
    if (has_separator(target) || has_separator(model.server_kind) || has_separator(model.model)) {
      problems.push_back(who + ": a name contains the byte 0x1f; model skipped");
      continue;
    }
    if (!model.prompt_tokens_total && !model.generation_tokens_total) {
      problems.push_back(who + ": no prompt or generation token counter; model skipped");
      continue;
    }
    std::array<Reading, 3> now{};
    if (!read_counter(model.prompt_tokens_total, "the prompt token counter", who, now[0],
                      problems) ||
        !read_counter(model.generation_tokens_total, "the generation token counter", who, now[1],
                      problems) ||
        !read_counter(model.cached_prompt_tokens_total, "the cached prompt token counter", who,
                      now[2], problems))
      continue;
    const double created = model.counters_created && std::isfinite(*model.counters_created)
                               ? *model.counters_created
                               : 0;
    const CounterState current{static_cast<double>(now[0].value), static_cast<double>(now[1].value),
                               static_cast<double>(now[2].value), now_ms, created};
    const std::string key = state_key(target, model.server_kind, model.model);
    auto it = state_.find(key);
    if (it == state_.end()) {
      const auto scraped = targets_.find(target);
      if (scraped == targets_.end()) {
        // The target's first scrape is the baseline: what came before was counted by nobody here.
        state_.emplace(key, current);
        continue;
      }
      // A model that appears at a later scrape started from zero since then (prometheus_client
      // creates a labelled series at its first increment, as SGLang's collector does).
      it = state_.emplace(key, CounterState{0, 0, 0, scraped->second}).first;
    }
    CounterState& previous = it->second;
    if (now_ms < previous.observed_at_ms) {
      problems.push_back(who + ": scrape at " + std::to_string(now_ms) +
                         " ms is older than the last one counted (" +
                         std::to_string(previous.observed_at_ms) + " ms); model skipped");
      continue;
    }
    const std::array<std::int64_t, 3> before{state_count(previous.prompt_tokens),
                                             state_count(previous.generation_tokens),
                                             state_count(previous.cached_prompt_tokens)};
    // A restart shows as a counter going back, or, when the counters have already grown past
    // their old values again, as new `_created` times. A counter that vanished (SGLang started
    // without its prefix cache) is no restart: it counts nothing and starts again from zero.
    bool reset =
        previous.counters_created != 0 && created != 0 && previous.counters_created != created;
    for (std::size_t i = 0; i < now.size(); ++i) {
      if (now[i].present && now[i].value < before[i]) reset = true;
    }
    std::array<std::int64_t, 3> delta{};
    for (std::size_t i = 0; i < now.size(); ++i) {
      if (!now[i].present) continue;
      delta[i] = reset ? now[i].value : now[i].value - before[i];
    }
    const std::int64_t from_ms = previous.observed_at_ms;
    previous = current;
    if (delta[0] == 0 && delta[1] == 0 && delta[2] == 0) continue;

    TokenDelta d;
    d.target = target;
    d.server_kind = model.server_kind;
    d.model = model.model;
    d.from_ms = from_ms;
    d.to_ms = now_ms;
    d.prompt_tokens = delta[0];
    d.generation_tokens = delta[1];
    d.cached_prompt_tokens = delta[2];
    d.reset = reset;
    // The interval identifies the delta: replaying it (after a crash) gives the same id.
    const std::string seed =
        key + kKeySeparator + std::to_string(from_ms) + kKeySeparator + std::to_string(now_ms);
    d.event_id = deterministic_uuid_v7(now_ms, seed);
    out.push_back(std::move(d));
  }
  if (auto& last = targets_[target]; now_ms > last) last = now_ms;
  return out;
}

std::string TokenDeltas::save_json() const {
  std::string out;
  for (const auto& [target, scraped_at] : targets_) {
    JsonWriter json;
    json.begin_object()
        .key("target")
        .value(target)
        .key("scraped_at_ms")
        .value(scraped_at)
        .end_object();
    out += json.str();
    out += '\n';
  }
  for (const auto& [key, counters] : state_) {
    const auto parts = split_key(key);
    if (!parts) continue;  // only restore() can put such a key here; it names nothing
    JsonWriter json;
    json.begin_object()
        .key("target")
        .value((*parts)[0])
        .key("server_kind")
        .value((*parts)[1])
        .key("model")
        .value((*parts)[2])
        .key("prompt_tokens")
        .value(counters.prompt_tokens)
        .key("generation_tokens")
        .value(counters.generation_tokens)
        .key("cached_prompt_tokens")
        .value(counters.cached_prompt_tokens)
        .key("observed_at_ms")
        .value(counters.observed_at_ms)
        .key("counters_created")
        .value(counters.counters_created)
        .end_object();
    out += json.str();
    out += '\n';
  }
  return out;
}

Result<TokenDeltas> TokenDeltas::load_json(std::string_view text) {
  TokenDeltas deltas;
  simdjson::dom::parser parser;
  std::size_t number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string line(text.substr(start, end - start));
    start = end + 1;
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    simdjson::dom::object object;
    if (parser.parse(line).get_object().get(object) != simdjson::SUCCESS)
      return load_error(number, "not a JSON object");
    std::int64_t scraped_at = 0;
    if (object["scraped_at_ms"].get_int64().get(scraped_at) == simdjson::SUCCESS) {
      std::string_view target;
      if (object["target"].get_string().get(target) != simdjson::SUCCESS)
        return load_error(number, "target must be a string");
      if (!deltas.targets_.emplace(std::string(target), scraped_at).second)
        return load_error(number, "a second scrape time for the same target");
      continue;
    }
    std::array<std::string_view, 3> parts{};
    constexpr std::array<const char*, 3> kParts{"target", "server_kind", "model"};
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (object[kParts[i]].get_string().get(parts[i]) != simdjson::SUCCESS)
        return load_error(number, std::string(kParts[i]) + " must be a string");
      if (has_separator(parts[i]))
        return load_error(number, std::string(kParts[i]) + " contains the byte 0x1f");
    }
    CounterState state;
    constexpr std::array<const char*, 3> kCounters{"prompt_tokens", "generation_tokens",
                                                   "cached_prompt_tokens"};
    std::array<double*, 3> counters{&state.prompt_tokens, &state.generation_tokens,
                                    &state.cached_prompt_tokens};
    for (std::size_t i = 0; i < counters.size(); ++i) {
      if (object[kCounters[i]].get_double().get(*counters[i]) != simdjson::SUCCESS ||
          !(*counters[i] >= 0 && *counters[i] <= kMaxExactCounter))
        return load_error(number, std::string(kCounters[i]) + " must be a number 0..2^53");
    }
    if (object["observed_at_ms"].get_int64().get(state.observed_at_ms) != simdjson::SUCCESS)
      return load_error(number, "observed_at_ms must be an integer");
    // Optional: state files written before it was kept have none (0: unknown).
    if (object["counters_created"].get_double().get(state.counters_created) != simdjson::SUCCESS)
      state.counters_created = 0;
    if (!deltas.state_.emplace(state_key(parts[0], parts[1], parts[2]), state).second)
      return load_error(number, "a second state for the same target, server kind and model");
  }
  return deltas;
}

}  // namespace telemetryd::scrape
