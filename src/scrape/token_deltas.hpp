#pragma once
// Turns a model server's token counters (totals since it started) into usage deltas between two
// scrapes, exact across counter resets (server restarts) and across restarts of telemetryd, whose
// caller persists the state.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "events/event_id.hpp"
#include "scrape/serving_metrics.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::scrape {

struct CounterState {  // per (target, server_kind, model), persisted by the caller
  double prompt_tokens = 0, generation_tokens = 0, cached_prompt_tokens = 0;
  std::int64_t observed_at_ms = 0;  // time of the scrape that read these values
  double counters_created = 0;      // ModelServing::counters_created; 0 when not exposed
};

struct TokenDelta {
  std::string target, server_kind, model;
  std::int64_t from_ms = 0, to_ms = 0;  // the interval between the two scrapes
  std::int64_t prompt_tokens = 0, generation_tokens = 0, cached_prompt_tokens = 0;
  bool reset = false;    // a counter went backwards: the new value is the increase since the reset
  std::string event_id;  // deterministic lowercase UUIDv7 (see below)
};

/// Counter values above this are refused: a double holds every integer only up to 2^53.
inline constexpr double kMaxExactCounter = 9007199254740992.0;  // 2^53

/// Separates the parts of a state key: target + kKeySeparator + server_kind + kKeySeparator +
/// model. A part containing it is refused (observe reports it; load_json fails).
inline constexpr char kKeySeparator = '\x1f';

std::string state_key(std::string_view target, std::string_view server_kind,
                      std::string_view model);

class TokenDeltas {
 public:
  /// Feeds one scrape of `target` at `now_ms`. The target's first scrape is the baseline of
  /// every model in it, no delta; a model first seen at a later scrape counts from zero (its
  /// series appeared with its first increment). A later scrape: delta = current - previous per
  /// counter; if any counter decreased, reset=true and delta = current value (Prometheus' rate()
  /// convention). A delta whose tokens are all zero produces no TokenDelta but still advances the
  /// state. Non-finite or negative counter values are ignored for that model (state unchanged) and
  /// reported in `problems`; so are values above 2^53, a model without a prompt or generation
  /// counter, and a scrape older than the state (now_ms before observed_at_ms). A counter a server
  /// does not (yet) expose counts as 0: SGLang creates cached_tokens only at the first cache hit.
  /// Models absent from a scrape keep their state.
  std::vector<TokenDelta> observe(const std::string& target, std::int64_t now_ms,
                                  const std::vector<ModelServing>& models,
                                  std::vector<std::string>& problems);

  /// State for persistence (a restart continues from it, so nothing counted twice or lost).
  /// Key: state_key(target, server_kind, model), i.e. the three joined by '\x1f'.
  const std::map<std::string, CounterState, std::less<>>& state() const { return state_; }
  void restore(std::map<std::string, CounterState, std::less<>> state) {
    state_ = std::move(state);
  }
  /// When each target was last scraped (its baseline taken), also persisted.
  const std::map<std::string, std::int64_t, std::less<>>& targets() const { return targets_; }

  /// Serialise/parse the state as JSON lines: {"target":..,"scraped_at_ms":..} per target, then
  /// one object per key:
  /// {"target":..,"server_kind":..,"model":..,"prompt_tokens":..,"generation_tokens":..,
  ///  "cached_prompt_tokens":..,"observed_at_ms":..}. Blank lines are skipped; anything else
  /// that is not such an object (or a key seen twice) is a permanent error naming the line.
  std::string save_json() const;
  static Result<TokenDeltas> load_json(std::string_view text);

 private:
  std::map<std::string, CounterState, std::less<>> state_;
  std::map<std::string, std::int64_t, std::less<>> targets_;
};

/// The delta's event id (src/events/event_id.hpp): the same interval is always the same event.
using events::deterministic_uuid_v7;

}  // namespace telemetryd::scrape
