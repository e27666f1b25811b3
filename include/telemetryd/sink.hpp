#pragma once
// The sink seam: where the processor keeps events (a `Store`: MongoDB, InfluxDB, PostgreSQL for
// the processor role, chosen by `processor.sinks`; SQLite for the embedded `all` role), where
// events it cannot store go (a `DeadLetterSink`), and the registry that names the processor's
// stores. Writes are idempotent by event id, so a redelivered event is stored once. Each store
// registers itself from one file in src/sinks/ (docs/architecture.md, "How to add a sink").

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cost/cost_model.hpp"
#include "events/event_decoder.hpp"
#include "events/gpu_catalog.hpp"
#include "query/gpu_series.hpp"
#include "query/latest_samples.hpp"
#include "query/usage_rollup.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/readiness.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd {

struct StoredEvent {
  const events::DecodedEvent* event = nullptr;
};

struct WriteOutcome {
  std::size_t gpu_metrics_inserted = 0;
  std::size_t token_usage_inserted = 0;
  std::size_t duplicates = 0;
  /// Batch indexes of the duplicates (already stored): they count nowhere a second time.
  std::vector<std::size_t> duplicate_indexes;
  /// Batch index and reason of documents the store refused for good (they go to the DLQ).
  std::vector<std::pair<std::size_t, std::string>> rejected;
};

struct GpuQuery {
  std::string gpu_uuid;  // empty: any
  std::string host;      // empty: any
};

/// A cost window with events stored since it was last priced (docs/cost.md). `nonce` tells one
/// mark from the next: a pricer clears the mark only when it is still the one it read, so an
/// event stored while it priced leaves the window marked. A pricer claims a mark (claim token,
/// lease until claimed_until) before pricing it, so two processors never price one window at
/// once, and a pricer whose lease was taken over writes nothing.
struct CostWindowMark {
  std::int64_t start_ms = 0;
  std::int64_t marked_at_ms = 0;
  std::int64_t nonce = 0;
  std::int64_t claim_token = 0;  // set by claim_cost_window
};

struct UsageQuery {
  std::string group_by = "model";  // "model", "tenant" or "deployment"
  std::optional<std::chrono::system_clock::time_point> from;
  std::optional<std::chrono::system_clock::time_point> to;
  /// Only these tenants' usage (a scoped query token, or ?tenant=); nullopt: every tenant.
  std::optional<std::vector<std::string>> tenants;
};

class Store {
 public:
  virtual ~Store() = default;
  /// Ensures indexes and upserts the GPU catalog. Retryable errors mean the server is away.
  virtual Result<bool> prepare(const events::GpuCatalog& catalog) = 0;
  virtual Result<WriteOutcome> write(const std::vector<StoredEvent>& batch) = 0;
  /// The latest gpu_metrics document as JSON, or "null" when none matches.
  virtual Result<std::string> latest_gpu_json(const GpuQuery& query) = 0;
  /// The gpus catalog as a JSON array.
  virtual Result<std::string> gpus_json() = 0;
  /// Token and cost totals grouped by model or tenant, as a JSON array.
  virtual Result<std::string> usage_json(const UsageQuery& query) = 0;
  /// One GPU's samples in [from, to) bucketed by step, as series_points_json's array (empty
  /// when the range has none), or "null" when the store holds no sample of that GPU at all.
  virtual Result<std::string> gpu_series_json(const query::SeriesQuery& query) = 0;
  /// The latest sample of every GPU (kDeviceFields), one object per gpu_uuid in gpu_uuid order,
  /// as a JSON array.
  virtual Result<std::string> devices_json() = 0;
  /// False for a write-only store (InfluxDB): the query routes then answer 501.
  virtual bool supports_queries() const { return true; }

  // ---- The latest view (query/latest_samples.hpp): one newest-wins sample per GPU ----
  /// True for a store that keeps it on write: the query routes then answer /gpu/info and
  /// /v1/devices from an in-memory copy (processor::LatestViewCache) instead of asking the two
  /// above.
  virtual bool keeps_latest_view() const { return false; }
  /// Every GPU's latest sample in gpu_uuid order (only where keeps_latest_view()).
  virtual Result<std::vector<query::LatestSample>> latest_samples() {
    return Error::permanent("this store keeps no latest view");
  }
  /// Grows each time this process stored GPU samples: a copy of the view older than that is
  /// stale.
  std::uint64_t latest_generation() const { return latest_generation_.load(); }

  // ---- Usage rollups (query/usage_rollup.hpp): per-minute and per-hour sums for /v1/usage ----
  /// True for a store that keeps them: write() marks the minutes of the requests of a batch
  /// (duplicates too, so a crash between the two is healed by the redelivery) and write_costs()
  /// the minutes of the requests it prices, in the same transaction as the change (before it,
  /// where the store has none); usage_json() then reads rollups where they are current
  /// (query::plan_usage_reads) instead of requests.
  virtual bool keeps_usage_rollups() const { return false; }
  /// Recomputes the rows of up to `limit` marked minutes, oldest first, whose latest mark is at
  /// or before `marked_before_ms`, from the stored requests, and then the rows of their hours
  /// from their minutes; clears each mark unless it was marked again meanwhile. How many
  /// minutes it rolled up.
  virtual Result<std::size_t> roll_up_usage(std::int64_t /*marked_before_ms*/,
                                            std::size_t /*limit*/) {
    return no_rollups();
  }
  /// The minute (or hour) rows starting in [from, to), by start, model, tenant_id, deployment.
  virtual Result<std::vector<query::UsageRollupRow>> usage_minutes(std::int64_t /*from_ms*/,
                                                                   std::int64_t /*to_ms*/) {
    return no_rollups();
  }
  virtual Result<std::vector<query::UsageRollupRow>> usage_hours(std::int64_t /*from_ms*/,
                                                                 std::int64_t /*to_ms*/) {
    return no_rollups();
  }
  /// The marked minutes (changed since they were last rolled up), ascending.
  virtual Result<std::vector<std::int64_t>> marked_usage_minutes() { return no_rollups(); }

  // ---- Cost (src/cost/, docs/cost.md): windows priced from what is stored ----
  /// False for a write-only store: nothing is priced, and the methods below answer a permanent
  /// error.
  virtual bool supports_costs() const { return supports_queries(); }
  /// Marks windows (by start) as holding newly stored events; sets marked_at and nonce even
  /// when a window is already marked.
  virtual Result<bool> mark_cost_windows(const std::vector<std::int64_t>& /*starts_ms*/,
                                         std::int64_t /*marked_at_ms*/, std::int64_t /*nonce*/) {
    return no_costs();
  }
  /// Up to `limit` marks with marked_at <= marked_before_ms and no claim whose lease runs past
  /// now_ms, oldest window first.
  virtual Result<std::vector<CostWindowMark>> settled_cost_windows(
      std::int64_t /*marked_before_ms*/, std::int64_t /*now_ms*/, std::size_t /*limit*/) {
    return no_costs();
  }
  /// Claims a mark for pricing: true when the stored mark still has this nonce and no claim
  /// with a lease past now_ms; it then holds `token` until `until_ms`. Sets mark.claim_token.
  virtual Result<bool> claim_cost_window(CostWindowMark& /*mark*/, std::int64_t /*token*/,
                                         std::int64_t /*now_ms*/, std::int64_t /*until_ms*/) {
    return no_costs();
  }
  /// Usage documents with ts in [start, end), GPU samples with ts in [start - lookback, end),
  /// and every placement first seen before `end`.
  virtual Result<cost::WindowInputs> cost_window_inputs(std::int64_t /*start_ms*/,
                                                        std::int64_t /*end_ms*/,
                                                        std::int64_t /*lookback_ms*/) {
    return no_costs();
  }
  /// Sets the `cost` block of each usage document (and its summed columns). With `clear` (a
  /// claimed mark): writes only while the claim is still clear->claim_token's (false, nothing
  /// written, when it is not), then deletes the mark when its nonce is still clear->nonce, else
  /// releases the claim so the newer mark is priced again. Without: writes unconditionally.
  virtual Result<bool> write_costs(const std::vector<cost::UsageCost>& /*costs*/,
                                   const std::optional<CostWindowMark>& /*clear*/) {
    return no_costs();
  }
  /// Upserts learned placements: first_seen keeps the minimum, last_seen the maximum.
  virtual Result<bool> upsert_placements(const std::vector<cost::PlacementRow>& /*placements*/) {
    return no_costs();
  }
  /// Starts of the windows in [from, to) that hold usage documents, ascending (re-pricing).
  virtual Result<std::vector<std::int64_t>> usage_window_starts(std::int64_t /*from_ms*/,
                                                                std::int64_t /*to_ms*/,
                                                                std::int64_t /*window_ms*/) {
    return no_costs();
  }

 protected:
  /// Called by write() after it stored GPU samples (committed).
  void latest_changed() { latest_generation_.fetch_add(1); }

 private:
  static Error no_costs() { return Error::permanent("this store keeps no cost windows"); }
  static Error no_rollups() { return Error::permanent("this store keeps no usage rollups"); }
  std::atomic<std::uint64_t> latest_generation_{0};
};

// ---- Dead letters ----

/// Where events the processor cannot store go, with the reason, intact. The processor role sends
/// them to `<topic>.dlq` in Kafka (sinks::KafkaDeadLetters); the embedded `all` role keeps them in
/// its SQLite file.
struct DeadLetter {
  std::string_view topic;  // where the event came from
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string_view key;
  std::string_view value;   // the original bytes
  std::string_view reason;  // bounded label, e.g. missing_field
  std::string_view detail;
  std::string_view stage;  // "validate" or "store"
};

class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  /// Queues one dead letter; false when it cannot even be queued (then the batch is retried).
  virtual bool send(const DeadLetter& letter) = 0;
  /// Waits until every queued dead letter is acknowledged; false on timeout or failure.
  virtual bool flush(std::chrono::milliseconds timeout) = 0;
};

// ---- The registry of the processor's stores ----

/// A blocking reachability check of one sink's server for /ready (run on the blocking pool,
/// never on the io thread, at interval()).
class SinkProbe {
 public:
  virtual ~SinkProbe() = default;
  virtual ProbeResult check() = 0;
  virtual std::chrono::milliseconds interval() const = 0;
};

struct SinkInfo {
  /// The value in processor.sinks, and the readiness check's name.
  std::string name;
  /// Its config section (validated in the processor role, documented by config-reference);
  /// shared with the component of the same connection where another role uses it too.
  const SectionSpec* section = nullptr;
  /// One line for processor.sinks' description.
  std::string summary;
  /// Builds the store; throws StartupError (or ConfigError) for unusable settings.
  std::function<std::unique_ptr<Store>(const Config&)> create;
  /// Builds its readiness probe; nullptr for a sink with no server.
  std::function<std::unique_ptr<SinkProbe>(const Config&)> probe;
  /// Checks across keys, run only when the sink is in use (e.g. a URL it requires); each
  /// problem names the key path to fix.
  std::function<std::vector<ConfigProblem>(const Config&)> check;
};

/// Every sink registered by a SinkRegistration (src/sinks/), and the one place that reads
/// processor.sinks (and its deprecated predecessor processor.store).
class SinkRegistry {
 public:
  static SinkRegistry& instance();
  void add(SinkInfo info);
  const SinkInfo* find(std::string_view name) const;
  std::vector<std::string> names() const;
  /// Every sink's config section, for the processor role's validation.
  std::vector<const SectionSpec*> sections() const;

  /// The processor section's keys that choose sinks (sinks, and the deprecated store).
  static std::vector<KeySpec> keys();
  /// The sinks the processor writes to, in order (processor.sinks, or what processor.store
  /// meant). A config without a processor section (another role) uses none.
  static std::vector<std::string> in_use(const Config& config);
  static bool uses(const Config& config, std::string_view name);
  /// The key that chose them, for problems about a sink's settings: "processor.sinks", or
  /// "processor.store" where only the deprecated key is set.
  static std::string chosen_by(const Config& config);
  /// Problems of the choice (no sink, a name twice, both keys set; an unknown name is the
  /// key's own check, with a guess) and the cross-key checks of the sinks in use.
  static std::vector<ConfigProblem> check(const Config& config);
  /// The store the processor writes to: the one sink, or every sink in use behind a TeeStore
  /// (queries and costs from the first that serves queries). Throws StartupError.
  static std::unique_ptr<Store> build(const Config& config);

 private:
  std::vector<SinkInfo> sinks_;
};

/// Declared at namespace scope in a sink's .cpp file (src/sinks/) to register it at start-up.
struct SinkRegistration {
  explicit SinkRegistration(SinkInfo info) { SinkRegistry::instance().add(std::move(info)); }
};

}  // namespace telemetryd
