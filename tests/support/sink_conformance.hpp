#pragma once
// The sink conformance suite (docs/sink-conformance.md): one body of checks that every Store runs
// against its real server (SQLite on a file), each check its own Catch2 test case named
// "sink conformance: <sink>: <check>", so a failure names both and the closing line counts them.
// A sink takes part with one harness class (a fresh store on a fresh database, and how to count
// what it holds) and one line:
//
//   TELEMETRYD_SINK_CONFORMANCE(MongoHarness, "[conformance][itest]")
//
// A check a sink cannot take (no latest view, no queries, no per-event refusal, no readiness
// probe) runs as its own case under a name that says so, and checks that the sink really has
// not got it: never a silent pass.

#include <simdjson.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "cost/cost_model.hpp"
#include "events/cloudevent.hpp"
#include "events/event_decoder.hpp"
#include "events/event_id.hpp"
#include "events/gpu_catalog.hpp"
#include "events/gpu_metrics.hpp"
#include "events/token_usage.hpp"
#include "query/usage_rollup.hpp"
#include "support/gpu_history_samples.hpp"
#include "support/latest_view_checks.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/sink.hpp"
#include "telemetryd/time_format.hpp"

namespace test_support::conformance {

using telemetryd::Store;
using telemetryd::events::DecodedEvent;
using telemetryd::events::EventKind;

/// What a sink declares it does; the checks hold it to each claim, both ways.
struct SinkTraits {
  const char* name;                 // as in processor.sinks (registered) or the store's own name
  bool registered = true;           // in SinkRegistry, with a readiness probe
  bool reports_duplicates = true;   // false: a rewrite counts as a write (InfluxDB)
  bool refuses_per_event = true;    // some decoded event is refused for good, alone
  bool keeps_latest_view = true;    // Store::keeps_latest_view()
  bool serves_queries = true;       // Store::supports_queries()
  bool keeps_usage_rollups = true;  // Store::keeps_usage_rollups()
};

/// One sink under test: a fresh store on a fresh database (or file), dropped by the destructor.
class SinkHarness {
 public:
  virtual ~SinkHarness() = default;
  /// The store under test, not yet prepared.
  virtual Store& store() = 0;
  /// What the server holds of one kind (rows, documents, points), read the sink's own way, not
  /// through the Store.
  virtual std::int64_t stored(EventKind kind) = 0;
  /// One entry per GPU in the latest view as the server holds it; nullopt for a sink without
  /// one (a harness that has one returns its count, and a failed count fails the check).
  virtual std::optional<std::int64_t> latest_rows() { return std::nullopt; }
  /// A store of this sink whose server does not answer (or, for a file, cannot be written).
  virtual std::unique_ptr<Store> unreachable() = 0;
  /// Ends the outage of unreachable()'s store where the harness can (true); a server sink's
  /// stays away (false).
  virtual bool end_outage() { return false; }
  /// A GPU sample (a valid event, as the decoder accepts it) that the sink refuses for good,
  /// after arranging the server for it where that takes a step. Called after prepare(); only
  /// where refuses_per_event.
  virtual DecodedEvent refusable() { return {}; }
  /// The registered sink's config (processor role) against the live server, or a dead one.
  virtual telemetryd::Config config(bool /*live*/) { return {}; }
};

// ---- Events: real CloudEvents through the real decoder ----

inline DecodedEvent decode(const std::string& cloudevent) {
  simdjson::dom::parser parser;
  telemetryd::events::DecodeResult result = telemetryd::events::decode_event(cloudevent, parser);
  INFO(cloudevent);
  REQUIRE(std::holds_alternative<DecodedEvent>(result));
  return std::get<DecodedEvent>(std::move(result));
}

// Recent, whole seconds: inside any retention a store keeps by default.
inline std::int64_t base_ms() {
  static const std::int64_t base =
      std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::system_clock::now().time_since_epoch() - std::chrono::hours(1))
          .count() *
      1000;
  return base;
}

// A GPU sample of GPU-conf-<gpu> at base + `second` s; `extra` is appended to its data object.
inline DecodedEvent gpu_event(const std::string& seed, int gpu, int second,
                              const std::string& extra = {}) {
  namespace events = telemetryd::events;
  events::GpuSample s;
  s.gpu_uuid = "GPU-conf-" + std::to_string(gpu);
  s.host = "conf-node-" + std::to_string(gpu % 2);
  s.model_name = "NVIDIA H100 80GB HBM3";
  s.collector = "synthetic";
  s.utilization_gpu_percent = 10.5 + second;
  s.memory_total_bytes = 80000000000;
  s.memory_used_bytes = 1000 + second;
  s.power_draw_watts = 100 + gpu;
  std::string data = events::encode_gpu_metrics_data(s);
  if (!extra.empty()) data.insert(data.size() - 1, "," + extra);
  const std::int64_t ms = base_ms() + second * 1000;
  return decode(events::encode_cloudevent(
      events::deterministic_uuid_v7(ms, seed + s.gpu_uuid), "conformance",
      "io.telemetryd.gpu.metrics.v1",
      std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)), s.gpu_uuid, data));
}

// One request at `ms` (any time, not only whole seconds after base_ms()).
inline DecodedEvent usage_at(const std::string& seed, std::int64_t ms, const std::string& model,
                             const std::string& tenant, const std::string& deployment,
                             std::int64_t input, std::int64_t output) {
  namespace events = telemetryd::events;
  events::TokenUsage u;
  u.model = model;
  u.tenant_id = tenant;
  u.input_tokens = input;
  u.output_tokens = output;
  if (!deployment.empty()) u.deployment = deployment;
  return decode(events::encode_cloudevent(
      events::deterministic_uuid_v7(ms, seed), "conformance", "io.telemetryd.token.usage.v1",
      std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)), u.tenant_id,
      events::encode_token_usage_data(u)));
}

// One request of `model` by `tenant` at base + `second` s.
inline DecodedEvent usage_event(const std::string& seed, int second, const std::string& model,
                                const std::string& tenant, std::int64_t input,
                                std::int64_t output) {
  return usage_at(seed, base_ms() + second * 1000, model, tenant, "", input, output);
}

// `gpu` samples (over three GPUs) then `usage` requests (two models, two tenants), all distinct;
// `seed` tells one set from another.
inline std::vector<DecodedEvent> mixed_events(const std::string& seed, int gpu, int usage) {
  std::vector<DecodedEvent> out;
  for (int i = 0; i < gpu; ++i) out.push_back(gpu_event(seed + std::to_string(i), i % 3, i));
  for (int i = 0; i < usage; ++i) {
    out.push_back(
        usage_event(seed + "u" + std::to_string(i), i, i % 2 == 0 ? "conf-model-a" : "conf-model-b",
                    i % 3 == 0 ? "conf-tenant-1" : "conf-tenant-2", 100 + 7 * i, 20 + 3 * i));
  }
  return out;
}

// Where every store keeps a kind: its table, collection or measurement.
inline std::string kind_name(EventKind kind) {
  return kind == EventKind::kGpuMetrics ? "gpu_metrics" : "token_usage";
}

inline std::size_t count_of(const std::vector<DecodedEvent>& events, EventKind kind) {
  return static_cast<std::size_t>(std::count_if(
      events.begin(), events.end(), [&](const DecodedEvent& e) { return e.kind == kind; }));
}

inline telemetryd::events::GpuCatalog conformance_catalog() {
  telemetryd::events::GpuCatalog catalog;
  catalog.add({"Conformance H100", "NVIDIA H100 80GB HBM3", 2.5});
  catalog.add({"Conformance A100", "NVIDIA A100-SXM4-40GB", 1.25});
  return catalog;
}

// ---- Assertions shared by the checks ----

// Every write of the suite: each event of the batch is accounted for exactly once (inserted, a
// duplicate at its index, or refused at its index), whatever else the check looks at.
inline telemetryd::WriteOutcome written(Store& store, const std::vector<DecodedEvent>& events) {
  const auto result = store.write(stored(events));
  INFO((result ? std::string() : result.error().message));
  REQUIRE(result);
  const telemetryd::WriteOutcome& outcome = result.value();
  CHECK(outcome.gpu_metrics_inserted + outcome.token_usage_inserted + outcome.duplicates +
            outcome.rejected.size() ==
        events.size());
  CHECK(outcome.duplicate_indexes.size() == outcome.duplicates);
  std::vector<int> seen(events.size(), 0);
  for (const std::size_t i : outcome.duplicate_indexes) {
    REQUIRE(i < events.size());
    ++seen[i];
  }
  for (const auto& [i, reason] : outcome.rejected) {
    REQUIRE(i < events.size());
    ++seen[i];
  }
  CHECK(std::count_if(seen.begin(), seen.end(), [](int n) { return n > 1; }) == 0);
  return outcome;
}

inline void prepared(Store& store) {
  const auto r = store.prepare(conformance_catalog());
  INFO((r ? std::string() : r.error().message));
  REQUIRE(r);
}

inline void check_stored(SinkHarness& sink, std::int64_t gpu, std::int64_t usage) {
  CHECK(sink.stored(EventKind::kGpuMetrics) == gpu);
  CHECK(sink.stored(EventKind::kTokenUsage) == usage);
}

inline std::vector<std::size_t> sorted(std::vector<std::size_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

inline std::vector<std::size_t> indexes(std::size_t from, std::size_t to) {
  std::vector<std::size_t> out;
  for (std::size_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

// A batch whose events at `old_indexes` were stored before: exact counts either way a sink
// reports them (InfluxDB cannot tell a rewrite from a write, so it counts every one written).
inline void check_rewrite(const SinkTraits& traits, const telemetryd::WriteOutcome& outcome,
                          const std::vector<DecodedEvent>& batch,
                          const std::vector<std::size_t>& old_indexes) {
  std::size_t gpu_new = 0, usage_new = 0, gpu_all = 0, usage_all = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const bool is_gpu = batch[i].kind == EventKind::kGpuMetrics;
    (is_gpu ? gpu_all : usage_all) += 1;
    if (std::find(old_indexes.begin(), old_indexes.end(), i) == old_indexes.end())
      (is_gpu ? gpu_new : usage_new) += 1;
  }
  CHECK(outcome.rejected.empty());
  if (traits.reports_duplicates) {
    CHECK(outcome.gpu_metrics_inserted == gpu_new);
    CHECK(outcome.token_usage_inserted == usage_new);
    CHECK(outcome.duplicates == old_indexes.size());
    CHECK(sorted(outcome.duplicate_indexes) == old_indexes);
  } else {
    CHECK(outcome.gpu_metrics_inserted == gpu_all);
    CHECK(outcome.token_usage_inserted == usage_all);
    CHECK(outcome.duplicates == 0);
    CHECK(outcome.duplicate_indexes.empty());
  }
}

// ---- The checks ----

inline void prepare_is_idempotent(const SinkTraits& traits, SinkHarness& sink) {
  Store& store = sink.store();
  prepared(store);
  prepared(store);
  check_stored(sink, 0, 0);
  if (!traits.serves_queries) return;
  // The catalog once, whatever the number of prepares.
  const auto gpus = store.gpus_json();
  REQUIRE(gpus);
  simdjson::dom::parser parser;
  simdjson::dom::array entries = parser.parse(gpus.value());
  std::map<std::string, double> prices;
  for (simdjson::dom::element entry : entries)
    prices[std::string(std::string_view(entry["name"]))] = double(entry["price_per_hour_usd"]);
  CHECK(entries.size() == 2);
  CHECK(prices ==
        std::map<std::string, double>{{"Conformance A100", 1.25}, {"Conformance H100", 2.5}});
}

inline void distinct_events_stored_once(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  prepared(store);
  const auto empty = written(store, {});
  CHECK(empty.gpu_metrics_inserted + empty.token_usage_inserted + empty.duplicates == 0);
  CHECK(empty.rejected.empty());
  const auto events = mixed_events("distinct", 7, 5);
  const auto outcome = written(store, events);
  CHECK(outcome.gpu_metrics_inserted == 7);
  CHECK(outcome.token_usage_inserted == 5);
  CHECK(outcome.duplicates == 0);
  CHECK(outcome.duplicate_indexes.empty());
  CHECK(outcome.rejected.empty());
  check_stored(sink, 7, 5);
}

inline void redelivery_is_idempotent(const SinkTraits& traits, SinkHarness& sink) {
  Store& store = sink.store();
  prepared(store);
  const auto events = mixed_events("redeliver", 6, 4);
  written(store, events);
  check_stored(sink, 6, 4);

  // The same batch again: every event is already stored.
  check_rewrite(traits, written(store, events), events, indexes(0, events.size()));
  check_stored(sink, 6, 4);

  // New and old interleaved: old at 0, 2, 4 (GPU samples) and 7 (a request).
  const auto fresh = mixed_events("redeliver-new", 3, 3);
  const std::vector<DecodedEvent> mixed{events[0], fresh[0], events[1], fresh[1], events[2],
                                        fresh[2],  fresh[3], events[6], fresh[4], fresh[5]};
  check_rewrite(traits, written(store, mixed), mixed, {0, 2, 4, 7});
  check_stored(sink, 9, 7);
}

inline void duplicate_within_a_batch(const SinkTraits& traits, SinkHarness& sink) {
  Store& store = sink.store();
  prepared(store);
  const auto events = mixed_events("twice", 2, 2);  // gpu, gpu, usage, usage
  const std::vector<DecodedEvent> batch{events[0], events[2], events[0], events[1],
                                        events[2], events[3], events[3]};
  check_rewrite(traits, written(store, batch), batch, {2, 4, 6});
  check_stored(sink, 2, 2);
}

// What a sink may refuse of a decoded event: a `$`-prefixed key in data (MongoDB), a \u0000
// escape in a string of data (PostgreSQL's jsonb), an integer field that the server holds with
// another type (InfluxDB: see clock_mem_mhz_event). The decoder accepts all three.
inline DecodedEvent dollar_key_event() {
  return gpu_event("dollar", 2, 30, "\"$where\":\"1\"");
}
inline DecodedEvent nul_escape_event() {
  return gpu_event("nul", 2, 32, "\"note\":\"a\\u0000b\"");
}
inline DecodedEvent clock_mem_mhz_event() {
  return gpu_event("clock-mem", 2, 31, "\"clock_mem_mhz\":1593");
}

inline void refused_event_rejected_at_its_index(const SinkTraits& traits, SinkHarness& sink) {
  Store& store = sink.store();
  prepared(store);
  auto events = mixed_events("refuse", 4, 2);  // gpu x4, usage x2
  events[2] = sink.refusable();
  REQUIRE(events[2].kind == EventKind::kGpuMetrics);
  for (int round = 0; round < 2; ++round) {  // and once more, redelivered
    INFO("round " << round);
    const auto outcome = written(store, events);
    REQUIRE(outcome.rejected.size() == 1);
    CHECK(outcome.rejected[0].first == 2);
    INFO("reason: " << outcome.rejected[0].second);
    CHECK_FALSE(outcome.rejected[0].second.empty());
    if (round == 0 || !traits.reports_duplicates) {
      CHECK(outcome.gpu_metrics_inserted == 3);
      CHECK(outcome.token_usage_inserted == 2);
      CHECK(outcome.duplicates == 0);
    } else {
      CHECK(outcome.gpu_metrics_inserted + outcome.token_usage_inserted == 0);
      CHECK(sorted(outcome.duplicate_indexes) == std::vector<std::size_t>{0, 1, 3, 4, 5});
    }
    check_stored(sink, 3, 2);
  }
}

// A sink that refuses no decoded event stores what the others refuse, whole.
inline void refuses_nothing(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  prepared(store);
  auto events = mixed_events("keep", 4, 1);
  events[1] = dollar_key_event();
  events[2] = clock_mem_mhz_event();
  events[3] = nul_escape_event();
  const auto outcome = written(store, events);
  CHECK(outcome.rejected.empty());
  CHECK(outcome.gpu_metrics_inserted == 4);
  CHECK(outcome.token_usage_inserted == 1);
  check_stored(sink, 4, 1);
}

inline void check_retryable(const char* what, const telemetryd::Error& error) {
  INFO(what << ": " << error.message);
  CHECK(error.kind == telemetryd::Error::Kind::kRetryable);
  CHECK_FALSE(error.message.empty());
}

inline void unreachable_is_retryable(const SinkTraits&, SinkHarness& sink) {
  const std::unique_ptr<Store> away = sink.unreachable();
  REQUIRE(away);
  const auto prepare = away->prepare(conformance_catalog());
  REQUIRE_FALSE(prepare);
  check_retryable("prepare", prepare.error());
  const auto events = mixed_events("away", 2, 2);
  const auto write = away->write(stored(events));
  REQUIRE_FALSE(write);
  check_retryable("write", write.error());
  if (!sink.end_outage()) return;
  // Retryable means what it says: the same store, retried once the outage ends, stores the batch.
  prepared(*away);
  const auto retried = written(*away, events);
  CHECK(retried.gpu_metrics_inserted == 2);
  CHECK(retried.token_usage_inserted == 2);
}

inline void readiness_probe(const SinkTraits& traits, SinkHarness& sink) {
  const telemetryd::SinkInfo* info = telemetryd::SinkRegistry::instance().find(traits.name);
  REQUIRE(info != nullptr);
  REQUIRE(info->probe);
  const auto live = info->probe(sink.config(true));
  REQUIRE(live);
  const telemetryd::ProbeResult up = live->check();
  INFO(up.detail);
  CHECK(up.ok);
  CHECK(live->interval().count() > 0);
  const auto dead = info->probe(sink.config(false));
  REQUIRE(dead);
  const telemetryd::ProbeResult down = dead->check();
  CHECK_FALSE(down.ok);
  CHECK_FALSE(down.detail.empty());
}

inline void no_readiness_probe(const SinkTraits& traits, SinkHarness&) {
  CHECK(telemetryd::SinkRegistry::instance().find(traits.name) == nullptr);
}

inline void latest_view_newest_wins(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  REQUIRE(store.keeps_latest_view());
  prepared(store);
  const std::uint64_t before = store.latest_generation();
  // A write without GPU samples leaves every copy of the view current.
  written(store, {usage_event("lv-usage", 1, "conf-model-a", "conf-tenant-1", 1, 1)});
  CHECK(store.latest_generation() == before);
  check_latest_view_is_newest_wins(store);
  CHECK(store.latest_generation() > before);
  // One entry per GPU, whatever the history holds (7 samples: the redelivery is not one).
  CHECK(sink.stored(EventKind::kGpuMetrics) == 7);
  if (const auto rows = sink.latest_rows()) CHECK(*rows == 2);

  // A redelivery of a whole older batch after the newest changes nothing.
  const auto view = store.latest_samples();
  REQUIRE(view);
  written(store, {latest_view_event("lv-10", "GPU-lv-1", 10, 10),
                  latest_view_event("lv-5", "GPU-lv-1", 5, 5)});
  const auto again = store.latest_samples();
  REQUIRE(again);
  REQUIRE(again.value().size() == view.value().size());
  for (std::size_t i = 0; i < view.value().size(); ++i) {
    CHECK(again.value()[i].gpu_uuid == view.value()[i].gpu_uuid);
    CHECK(again.value()[i].ts_ms == view.value()[i].ts_ms);
    CHECK(again.value()[i].document_json == view.value()[i].document_json);
  }
  CHECK(latest_id(store, "GPU-lv-1") == "lv-40");
}

inline void no_latest_view(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  CHECK_FALSE(store.keeps_latest_view());
  const auto samples = store.latest_samples();
  REQUIRE_FALSE(samples);
  CHECK(samples.error().kind == telemetryd::Error::Kind::kPermanent);
}

// Requests and tokens per group, from the usage answer.
inline std::map<std::string, std::tuple<std::int64_t, std::int64_t, std::int64_t>> usage_totals(
    Store& store, const std::string& group_by) {
  telemetryd::UsageQuery query;
  query.group_by = group_by;
  const auto usage = store.usage_json(query);
  INFO((usage ? usage.value() : usage.error().message));
  REQUIRE(usage);
  simdjson::dom::parser parser;
  simdjson::dom::array groups = parser.parse(usage.value());
  std::map<std::string, std::tuple<std::int64_t, std::int64_t, std::int64_t>> out;
  for (simdjson::dom::element g : groups) {
    out[std::string(std::string_view(g["_id"]))] = {std::int64_t(g["requests"]),
                                                    std::int64_t(g["input_tokens"]),
                                                    std::int64_t(g["output_tokens"])};
  }
  return out;
}

inline void queries_agree_with_events(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  REQUIRE(store.supports_queries());
  prepared(store);
  const auto events = mixed_events("query", 6, 9);
  written(store, events);
  std::map<std::string, std::map<std::string, std::tuple<std::int64_t, std::int64_t, std::int64_t>>>
      want;
  for (const auto& e : events) {
    if (e.kind != EventKind::kTokenUsage) continue;
    for (const auto& [group, key] : {std::pair{"model", e.model}, {"tenant", e.tenant_id}}) {
      auto& [requests, input, output] = want[group][key];
      ++requests;
      input += e.input_tokens;
      output += e.output_tokens;
    }
  }
  REQUIRE(want["model"].size() == 2);
  REQUIRE(want["tenant"].size() == 2);
  for (const char* group : {"model", "tenant"}) {
    INFO("group_by " << group);
    CHECK(usage_totals(store, group) == want[group]);
  }

  // The newest sample of each of the three GPUs, in gpu_uuid order.
  const auto devices = store.devices_json();
  REQUIRE(devices);
  simdjson::dom::parser parser;
  simdjson::dom::array list = parser.parse(devices.value());
  std::vector<std::pair<std::string, double>> seen;
  for (simdjson::dom::element d : list)
    seen.emplace_back(std::string(std::string_view(d["gpu_uuid"])),
                      double(d["utilization_gpu_percent"]));
  CHECK(seen == std::vector<std::pair<std::string, double>>{
                    {"GPU-conf-0", 13.5}, {"GPU-conf-1", 14.5}, {"GPU-conf-2", 15.5}});

  // A redelivery changes no answer.
  const std::string before = store.devices_json().value();
  written(store, events);
  CHECK(usage_totals(store, "model") == want["model"]);
  CHECK(usage_totals(store, "tenant") == want["tenant"]);
  CHECK(store.devices_json().value() == before);
}

inline void no_queries(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  CHECK_FALSE(store.supports_queries());
  CHECK_FALSE(store.supports_costs());
  const auto permanent = [](const auto& result) {
    REQUIRE_FALSE(result);
    CHECK(result.error().kind == telemetryd::Error::Kind::kPermanent);
  };
  permanent(store.gpus_json());
  permanent(store.usage_json({}));
  permanent(store.devices_json());
  permanent(store.latest_gpu_json({}));
}

// ---- Usage rollups: per-minute sums, recomputed from the stored requests ----

// A cost block for one request; sums of these stay exact in binary floating point.
inline telemetryd::cost::UsageCost rollup_cost(const DecodedEvent& e, bool priced) {
  telemetryd::cost::UsageCost c;
  c.id = e.id;
  c.time_ms = telemetryd::unix_ms(e.time);
  c.model = e.model;
  c.tenant_id = e.tenant_id;
  c.deployment = e.deployment;
  c.window_start_ms = telemetryd::cost::window_start(c.time_ms, 60000);
  c.basis = "output";
  c.tokens = e.output_tokens;
  c.tokens_in_window = e.output_tokens;
  c.placement = priced ? "configured" : "none";
  if (priced) {
    c.amortized_usd = 0.25;
    c.utilization_usd = 0.125;
    c.energy_usd = 0.5;
    c.gpu_seconds = 2;
    c.energy_j = 8;
  } else {
    c.amortized_reason = c.utilization_reason = c.energy_reason = "no_placement";
  }
  return c;
}

using RollupCosts = std::map<std::string, telemetryd::cost::UsageCost>;  // by request id

// The rows a rollup of these requests must hold for the minutes (or hours: `unit`) starting
// in [from, to), in usage_minutes() order.
inline std::vector<telemetryd::query::UsageRollupRow> expected_rows(
    const std::vector<DecodedEvent>& events, const RollupCosts& costs, std::int64_t from,
    std::int64_t to, std::int64_t unit = telemetryd::query::kRollupMinuteMs) {
  using telemetryd::query::UsageRollupRow;
  std::map<std::tuple<std::int64_t, std::string, std::string, std::string>, UsageRollupRow> rows;
  for (const DecodedEvent& e : events) {
    if (e.kind != EventKind::kTokenUsage) continue;
    const std::int64_t ms = telemetryd::unix_ms(e.time);
    const std::int64_t start = unit == telemetryd::query::kRollupHourMs
                                   ? telemetryd::query::hour_of(ms)
                                   : telemetryd::query::minute_of(ms);
    if (start < from || start >= to) continue;
    UsageRollupRow& row = rows[{start, e.model, e.tenant_id, e.deployment}];
    row.start_ms = start;
    row.model = e.model;
    row.tenant_id = e.tenant_id;
    row.deployment = e.deployment;
    ++row.requests;
    row.input_tokens += e.input_tokens;
    row.output_tokens += e.output_tokens;
    const auto cost = costs.find(e.id);
    if (cost == costs.end()) continue;
    row.cost_usd += cost->second.amortized_usd.value_or(0);
    row.cost_utilization_usd += cost->second.utilization_usd.value_or(0);
    row.cost_energy_usd += cost->second.energy_usd.value_or(0);
    row.gpu_seconds += cost->second.gpu_seconds.value_or(0);
    row.energy_j += cost->second.energy_j.value_or(0);
    if (cost->second.amortized_usd) ++row.priced_requests;
  }
  std::vector<UsageRollupRow> out;
  for (auto& [key, row] : rows) out.push_back(std::move(row));
  return out;
}

inline std::vector<telemetryd::query::UsageRollupRow> stored_minutes(Store& store,
                                                                     std::int64_t from,
                                                                     std::int64_t to) {
  const auto rows = store.usage_minutes(from, to);
  INFO((rows ? std::string() : rows.error().message));
  REQUIRE(rows);
  return rows.value();
}

inline std::vector<telemetryd::query::UsageRollupRow> stored_hours(Store& store, std::int64_t from,
                                                                   std::int64_t to) {
  const auto rows = store.usage_hours(from, to);
  INFO((rows ? std::string() : rows.error().message));
  REQUIRE(rows);
  return rows.value();
}

// Both rollups hold exactly what these requests make of them around m0 (two hours each side).
inline void check_rollups(Store& store, const std::vector<DecodedEvent>& events,
                          const RollupCosts& costs, std::int64_t m0) {
  using telemetryd::query::kRollupHourMs;
  const std::int64_t from = telemetryd::query::hour_of(m0) - 2 * kRollupHourMs;
  const std::int64_t to = from + 5 * kRollupHourMs;
  CHECK(stored_minutes(store, from, to) == expected_rows(events, costs, from, to));
  CHECK(stored_hours(store, from, to) == expected_rows(events, costs, from, to, kRollupHourMs));
}

inline std::size_t rolled_up(Store& store) {
  const std::int64_t later = telemetryd::unix_ms(std::chrono::system_clock::now()) + 3600000;
  const auto rolled = store.roll_up_usage(later, 1000);
  INFO((rolled ? std::string() : rolled.error().message));
  REQUIRE(rolled);
  const auto marked = store.marked_usage_minutes();
  REQUIRE(marked);
  CHECK(marked.value().empty());
  return rolled.value();
}

// Per group: requests, input, output, priced requests, and the five cost sums.
using UsageGroup = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, double,
                              double, double, double, double>;

inline std::map<std::string, UsageGroup> usage_groups(Store& store,
                                                      const telemetryd::UsageQuery& query) {
  const auto usage = store.usage_json(query);
  INFO((usage ? usage.value() : usage.error().message));
  REQUIRE(usage);
  simdjson::dom::parser parser;
  simdjson::dom::array groups = parser.parse(usage.value());
  std::map<std::string, UsageGroup> out;
  for (simdjson::dom::element g : groups) {
    // A request without a deployment is its own group, "" (null where the store says so).
    const std::string key = g["_id"].is_null() ? "" : std::string(std::string_view(g["_id"]));
    out[key] = {std::int64_t(g["requests"]),
                std::int64_t(g["input_tokens"]),
                std::int64_t(g["output_tokens"]),
                std::int64_t(g["priced_requests"]),
                double(g["cost_usd"]),
                double(g["cost_utilization_usd"]),
                double(g["cost_energy_usd"]),
                double(g["gpu_seconds"]),
                double(g["energy_j"])};
  }
  return out;
}

// Every answer of /v1/usage over ranges that cut minutes, whole minutes, one minute's inside
// and no range at all, by each grouping, with and without a tenant filter, against the sums of
// the requests themselves.
inline void check_usage_answers(Store& store, const std::vector<DecodedEvent>& events,
                                const RollupCosts& costs, std::int64_t m0) {
  using std::chrono::milliseconds;
  using time_point = std::chrono::system_clock::time_point;
  const std::int64_t hour = telemetryd::query::hour_of(m0);
  const std::vector<std::pair<std::optional<std::int64_t>, std::optional<std::int64_t>>> ranges{
      {std::nullopt, std::nullopt},
      {m0, m0 + 180000},
      {m0 + 20000, m0 + 130000},
      {m0 + 60000, m0 + 120000},
      {m0 + 61000, m0 + 100000},
      {std::nullopt, m0 + 75000},
      {m0 + 45000, std::nullopt},
      // Whole hours (m0's and the next), and whole hours with cut minutes and edges round them.
      {hour, hour + 2 * telemetryd::query::kRollupHourMs},
      {hour - 90500, hour + 2 * telemetryd::query::kRollupHourMs + 30500},
      {m0 + 30000, hour + 2 * telemetryd::query::kRollupHourMs},
  };
  for (const auto& [from, to] : ranges) {
    for (const char* group : {"model", "tenant", "deployment"}) {
      for (const bool scoped : {false, true}) {
        telemetryd::UsageQuery query;
        query.group_by = group;
        if (from) query.from = time_point(milliseconds(*from));
        if (to) query.to = time_point(milliseconds(*to));
        if (scoped) query.tenants = std::vector<std::string>{"conf-tenant-1"};
        std::map<std::string, UsageGroup> want;
        for (const DecodedEvent& e : events) {
          const std::int64_t ms = telemetryd::unix_ms(e.time);
          if (e.kind != EventKind::kTokenUsage || (from && ms < *from) || (to && ms >= *to) ||
              (scoped && e.tenant_id != "conf-tenant-1")) {
            continue;
          }
          const std::string& key = std::string(group) == "model"    ? e.model
                                   : std::string(group) == "tenant" ? e.tenant_id
                                                                    : e.deployment;
          auto& [requests, input, output, priced, usd, utilization, energy, seconds, joules] =
              want[key];
          ++requests;
          input += e.input_tokens;
          output += e.output_tokens;
          const auto cost = costs.find(e.id);
          if (cost == costs.end()) continue;
          if (cost->second.amortized_usd) ++priced;
          usd += cost->second.amortized_usd.value_or(0);
          utilization += cost->second.utilization_usd.value_or(0);
          energy += cost->second.energy_usd.value_or(0);
          seconds += cost->second.gpu_seconds.value_or(0);
          joules += cost->second.energy_j.value_or(0);
        }
        INFO("group_by " << group << (scoped ? ", tenant conf-tenant-1" : "") << ", from "
                         << (from ? std::to_string(*from - m0) : "-") << " to "
                         << (to ? std::to_string(*to - m0) : "-") << " ms after m0");
        CHECK(usage_groups(store, query) == want);
      }
    }
  }
}

inline void usage_rollups_recomputed(const SinkTraits&, SinkHarness& sink) {
  using telemetryd::query::kRollupMinuteMs;
  Store& store = sink.store();
  REQUIRE(store.keeps_usage_rollups());
  prepared(store);
  // Three whole minutes across an hour's end, m0 to m0 + 3 min: twelve requests at uneven
  // offsets, two models, two tenants, two deployments and none, and two GPU samples that are
  // not usage.
  const std::int64_t m0 = telemetryd::query::hour_of(base_ms()) - 2 * kRollupMinuteMs;
  std::vector<DecodedEvent> events{gpu_event("rollup", 0, 1), gpu_event("rollup", 1, 2)};
  for (int i = 0; i < 12; ++i) {
    events.push_back(usage_at("rollup" + std::to_string(i), m0 + i * 15000 + 1000 * (i % 3),
                              i % 2 == 0 ? "conf-model-a" : "conf-model-b",
                              i % 3 == 0 ? "conf-tenant-1" : "conf-tenant-2",
                              i % 4 == 3 ? "" : (i % 2 == 0 ? "dep-x" : "dep-y"), 100 + 7 * i,
                              20 + 3 * i));
  }
  written(store, events);
  const std::vector<std::int64_t> minutes{m0, m0 + kRollupMinuteMs, m0 + 2 * kRollupMinuteMs};
  auto marked = store.marked_usage_minutes();
  REQUIRE(marked);
  CHECK(marked.value() == minutes);
  // Not yet rolled up: the answers come from the requests of the marked minutes.
  check_rollups(store, {}, {}, m0);
  check_usage_answers(store, events, {}, m0);

  CHECK(rolled_up(store) == 3);
  check_rollups(store, events, {}, m0);
  const auto rows = stored_minutes(store, 0, INT64_MAX);
  const auto hours = stored_hours(store, 0, INT64_MAX);
  CHECK(hours.size() ==
        expected_rows(events, {}, 0, INT64_MAX, telemetryd::query::kRollupHourMs).size());
  check_usage_answers(store, events, {}, m0);

  // A redelivered batch (all duplicates) marks its minutes again and changes no rollup, before
  // the next roll-up or after it.
  written(store, events);
  CHECK(stored_minutes(store, 0, INT64_MAX) == rows);
  CHECK(stored_hours(store, 0, INT64_MAX) == hours);
  check_usage_answers(store, events, {}, m0);
  rolled_up(store);
  CHECK(stored_minutes(store, 0, INT64_MAX) == rows);
  CHECK(stored_hours(store, 0, INT64_MAX) == hours);
  check_usage_answers(store, events, {}, m0);

  // Costs written onto one request of each minute (one of them unpriced) mark those minutes;
  // the answers carry them at once and the rollups once rolled up.
  RollupCosts costs;
  std::vector<telemetryd::cost::UsageCost> blocks;
  for (const std::size_t i : {2, 7, 8, 13}) {
    blocks.push_back(rollup_cost(events[i], i != 8));
    costs[events[i].id] = blocks.back();
  }
  const auto wrote = store.write_costs(blocks, std::nullopt);
  INFO((wrote ? std::string() : wrote.error().message));
  REQUIRE(wrote);
  marked = store.marked_usage_minutes();
  REQUIRE(marked);
  CHECK(marked.value() == minutes);
  check_usage_answers(store, events, costs, m0);
  rolled_up(store);
  check_rollups(store, events, costs, m0);
  check_usage_answers(store, events, costs, m0);

  // A late request into a rolled minute counts at once (its hour read from minutes meanwhile),
  // and in both rollups once rolled up.
  const DecodedEvent late = usage_at("rollup-late", m0 + kRollupMinuteMs + 59999, "conf-model-c",
                                     "conf-tenant-1", "dep-x", 5, 6);
  written(store, {late});
  events.push_back(late);
  marked = store.marked_usage_minutes();
  REQUIRE(marked);
  CHECK(marked.value() == std::vector<std::int64_t>{m0 + kRollupMinuteMs});
  check_usage_answers(store, events, costs, m0);
  CHECK(rolled_up(store) == 1);
  check_rollups(store, events, costs, m0);
  check_usage_answers(store, events, costs, m0);
}

inline void no_usage_rollups(const SinkTraits&, SinkHarness& sink) {
  Store& store = sink.store();
  CHECK_FALSE(store.keeps_usage_rollups());
  const auto rolled = store.roll_up_usage(0, 1);
  REQUIRE_FALSE(rolled);
  CHECK(rolled.error().kind == telemetryd::Error::Kind::kPermanent);
}

// ---- Registration: one test case per (sink, check) ----

using Check = void (*)(const SinkTraits&, SinkHarness&);

struct CheckCase {
  const char* name;
  Check check;
};

inline std::vector<CheckCase> checks_for(const SinkTraits& t) {
  return {
      {"prepare is idempotent", prepare_is_idempotent},
      {"distinct events are stored once each, with exact counts (an empty batch: none)",
       distinct_events_stored_once},
      {t.reports_duplicates ? "a redelivered batch is all duplicates; a mixed one splits exactly"
                            : "a redelivered batch stores nothing twice (rewrites count as "
                              "writes: no duplicates reported)",
       redelivery_is_idempotent},
      {"one event twice in a batch is stored once", duplicate_within_a_batch},
      t.refuses_per_event
          ? CheckCase{"a refused event is rejected at its batch index, the rest stored",
                      refused_event_rejected_at_its_index}
          : CheckCase{"refuses no decoded event ($-keys, new field types stored whole)",
                      refuses_nothing},
      {"prepare and write are retryable errors when the server is away", unreachable_is_retryable},
      t.registered ? CheckCase{"readiness probe ok when live, not ok with a detail when away",
                               readiness_probe}
                   : CheckCase{"no readiness probe (not a registered sink)", no_readiness_probe},
      t.keeps_latest_view
          ? CheckCase{"latest view: newest wins, unchanged by redelivery and late samples",
                      latest_view_newest_wins}
          : CheckCase{"keeps no latest view, and says so", no_latest_view},
      t.serves_queries ? CheckCase{"queries agree with the events, unchanged by redelivery",
                                   queries_agree_with_events}
                       : CheckCase{"serves no queries, and says so", no_queries},
      t.keeps_usage_rollups
          ? CheckCase{"usage rollups: minutes and hours recomputed from the stored requests, "
                      "unchanged by redelivery; answers exact across cut, marked and rolled parts",
                      usage_rollups_recomputed}
          : CheckCase{"keeps no usage rollups, and says so", no_usage_rollups},
  };
}

template <typename Harness>
class CheckInvoker final : public Catch::ITestInvoker {
 public:
  explicit CheckInvoker(Check check) : check_(check) {}
  void invoke() const override {
    Harness harness;
    check_(Harness::kTraits, harness);
  }

 private:
  Check check_;
};

/// Registers every check for one sink, at `line` (the test file's, so `-#` tags name it).
template <typename Harness>
struct Registration {
  Registration(const char* tags, const Catch::SourceLineInfo& line) {
    for (const CheckCase& c : checks_for(Harness::kTraits)) {
      const std::string name =
          std::string("sink conformance: ") + Harness::kTraits.name + ": " + c.name;
      Catch::AutoReg(new CheckInvoker<Harness>(c.check), line, Catch::StringRef(),
                     Catch::NameAndTags{name, tags});
    }
  }
};

}  // namespace test_support::conformance

/// One line per sink: its harness type (default-constructible, with `static constexpr
/// SinkTraits kTraits`) and its Catch2 tags.
#define TELEMETRYD_SINK_CONFORMANCE(Harness, tags)                                            \
  static const ::test_support::conformance::Registration<Harness> INTERNAL_CATCH_UNIQUE_NAME( \
      sink_conformance_)(tags, CATCH_INTERNAL_LINEINFO)
