#include "processor/processor_core.hpp"

#include <cmath>
#include <cstdint>
#include <set>

#include "telemetryd/log.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::processor {

ProcessorCore::ProcessorCore(CoreSettings settings, Store& store, DeadLetterSink& dead_letters,
                             metrics::Registry& metrics, TenantLabels& tenants)
    : settings_(std::move(settings)),
      store_(store),
      dead_letters_(dead_letters),
      tenants_(tenants),
      metrics_(metrics),
      consumed_(metrics.counter("processor_messages_consumed_total",
                                "Messages received (reconciliation: received = stored + "
                                "dead-lettered + duplicates + in flight + abandoned).",
                                {"topic"})),
      invalid_(metrics.counter("processor_invalid_events_total",
                               "Events that failed validation, by reason.", {"topic", "reason"})),
      dead_lettered_(metrics.counter("processor_dead_letters_total",
                                     "Messages sent to the dead-letter destination.",
                                     {"topic", "stage"})),
      db_writes_(
          metrics.counter("processor_db_writes_total", "Documents inserted.", {"collection"})),
      store_errors_(metrics.counter(
          "processor_store_errors_total",
          "Batch writes that failed and are retried, by error code and class (retryable, "
          "permanent, unclassified); none of them dead-letters an event.",
          {"code", "class"})),
      duplicates_(metrics
                      .counter("processor_duplicates_total",
                               "Events already stored (same id), counted as done.")
                      .with({})),
      abandoned_(metrics
                     .counter("processor_abandoned_total",
                              "Messages dropped from memory before being done, to be redelivered "
                              "(partition revoked, or stopped during an outage).")
                     .with({})),
      in_flight_(
          metrics.gauge("processor_in_flight", "Messages received but not yet done.").with({})),
      tokens_(metrics.counter("processor_token_usage_tokens_total",
                              "Input plus output tokens stored (duplicates not counted), by "
                              "model.",
                              {"model"})),
      tenant_tokens_(metrics.counter("processor_tenant_tokens_total",
                                     "Input plus output tokens stored, by tenant (bounded: "
                                     "cost.tenant_series, the rest tenant=\"other\").",
                                     {"tenant"})),
      write_latency_(metrics
                         .histogram("processor_batch_write_duration_seconds",
                                    "Time one batch write to the store took.")
                         .with({})),
      // Fine between 50 ms and 1 s, where a batch timeout and a store's write time land: a
      // p99 of 250 ms must be told from one of 495 ms.
      end_to_end_latency_(metrics
                              .histogram("processor_end_to_end_latency_seconds",
                                         "From event time to stored (duplicates not counted).", {},
                                         {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4,
                                          0.5, 0.75, 1, 2.5, 5, 10, 30, 60})
                              .with({})) {}

// The last word of a processor that stops (its counters die with it): the reconciliation terms
// of its whole life, so runs that stop members (a scale-in, a rolling restart) can still be
// summed exactly across the group.
ProcessorCore::~ProcessorCore() {
  log::info("processor", "final counts",
            {{"consumed", totals_.consumed},
             {"stored", totals_.stored},
             {"duplicates", totals_.duplicates},
             {"dead_lettered", totals_.dead_lettered},
             {"abandoned", totals_.abandoned},
             {"in_flight", static_cast<std::int64_t>(batch_.size())}});
}

// Dead letters count as done once sent, so only valid events waiting for the store are in
// flight; that keeps received = stored + dead-lettered + duplicates + in flight + abandoned.
void ProcessorCore::update_in_flight() {
  in_flight_.Set(static_cast<double>(batch_.size()));
}

void ProcessorCore::note_done(const std::string& topic, std::int32_t partition,
                              std::int64_t offset) {
  auto& highest = offsets_[{topic, partition}];
  highest = std::max(highest, offset);
}

bool ProcessorCore::accept(const IncomingMessage& message) {
  // Nothing is counted or marked done until the message is really taken: a caller that gets
  // false retries the same message, and a stop in between must leave its offset uncommitted.
  events::DecodeResult decoded = events::decode_event(message.value, parser_);
  std::string reason, detail;
  if (auto* error = std::get_if<events::DecodeError>(&decoded)) {
    reason = error->reason;
    detail = error->detail;
  } else {
    const events::DecodedEvent& event = std::get<events::DecodedEvent>(decoded);
    const bool expected_topic = (event.kind == events::EventKind::kGpuMetrics &&
                                 message.topic == settings_.gpu_metrics_topic) ||
                                (event.kind == events::EventKind::kTokenUsage &&
                                 message.topic == settings_.token_usage_topic);
    if (!expected_topic) {
      reason = "wrong_topic";
      detail = "type " + event.type + " does not belong on topic " + std::string(message.topic);
    }
  }
  if (!reason.empty() && !dead_letter(message, reason, detail, "validate")) return false;

  if (pending_messages_ == 0) oldest_pending_ = std::chrono::steady_clock::now();
  ++pending_messages_;
  consumed_(message.topic).Increment();
  ++totals_.consumed;
  note_done(std::string(message.topic), message.partition, message.offset);
  if (!reason.empty()) {
    invalid_.with({std::string(message.topic), reason}).Increment();
    return true;
  }
  batch_.push_back({std::move(std::get<events::DecodedEvent>(decoded)), std::string(message.topic),
                    std::string(message.key), std::string(message.value), message.partition,
                    message.offset});
  update_in_flight();
  return true;
}

bool ProcessorCore::dead_letter(const IncomingMessage& message, std::string_view reason,
                                std::string_view detail, std::string_view stage) {
  if (!dead_letters_.send({message.topic, message.partition, message.offset, message.key,
                           message.value, reason, detail, stage})) {
    return false;
  }
  dead_lettered_.with({std::string(message.topic), std::string(stage)}).Increment();
  ++totals_.dead_lettered;
  return true;
}

// A batch the store did not take, whatever the reason, is retried: only the per-document
// refusals of a write that answered go to the dead-letter topic. A whole batch refused "for good"
// is nearly always the store's condition (credentials, a missing bucket, a server state nobody
// classified), not the events': dead-lettering it lost valid events, and retrying costs nothing
// but the pause, which the error counter and its alert make visible.
Error ProcessorCore::failed_write(Error error) {
  const char* error_class = error.unclassified                      ? "unclassified"
                            : error.kind == Error::Kind::kPermanent ? "permanent"
                                                                    : "retryable";
  store_errors_.with({error.code.empty() ? "unknown" : error.code, error_class}).Increment();
  if (error.kind == Error::Kind::kPermanent || error.unclassified) {
    log::error("processor", "store refused a batch; retrying it",
               {{"error", error.message}, {"code", error.code}, {"class", error_class}});
  }
  error.kind = Error::Kind::kRetryable;
  return error;
}

Result<bool> ProcessorCore::flush(core::DoneOffsets& done) {
  if (pending_messages_ == 0) return true;
  // Stages resume where a retryable failure stopped them, so a retry never writes or counts
  // twice.
  if (stage_ == Stage::kWrite) {
    rejected_.clear();
    rejected_next_ = 0;
    written_.assign(batch_.size(), false);
    if (!batch_.empty()) {
      std::vector<StoredEvent> stored;
      stored.reserve(batch_.size());
      for (const Pending& p : batch_) stored.push_back({&p.event});
      const auto started = std::chrono::steady_clock::now();
      Result<WriteOutcome> outcome = store_.write(stored);
      write_latency_.Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      if (!outcome) return failed_write(outcome.error());
      count_written(outcome.value());
      rejected_ = std::move(outcome.value().rejected);
      written_.assign(batch_.size(), true);
      for (const auto& entry : rejected_) written_[entry.first] = false;
    }
    stage_ = Stage::kMark;
  }
  if (stage_ == Stage::kMark) {
    if (Result<bool> marked = mark_cost_windows(); !marked) return marked.error();
    stage_ = Stage::kRejected;
  }
  if (stage_ == Stage::kRejected) {
    for (; rejected_next_ < rejected_.size(); ++rejected_next_) {
      const auto& [index, reason] = rejected_[rejected_next_];
      const Pending& p = batch_[index];
      if (!dead_letter({p.topic, p.partition, p.offset, p.key, p.value}, "store_rejected", reason,
                       "store")) {
        return Error::retryable("dead-letter queue full");
      }
    }
    stage_ = Stage::kDeadLetters;
  }
  // Offsets may only move once every dead letter of the batch is acknowledged too.
  if (!dead_letters_.flush(settings_.dead_letter_timeout)) {
    return Error::retryable("dead letters not acknowledged yet");
  }
  done = std::move(offsets_);
  offsets_.clear();
  batch_.clear();
  rejected_.clear();
  pending_messages_ = 0;
  update_in_flight();
  stage_ = Stage::kWrite;
  return true;
}

// Stored events (duplicates too: a redelivery may follow a crash between the write and the
// mark) mark their windows; usage that names a deployment and its GPUs or host teaches the
// placement. Both before the offsets move, so no stored event is left unpriced by a crash.
Result<bool> ProcessorCore::mark_cost_windows() {
  if (!store_.supports_costs()) return true;
  std::set<std::int64_t> starts;
  std::map<std::pair<std::string, std::string>, cost::PlacementRow> placements;
  for (std::size_t i = 0; i < batch_.size() && i < written_.size(); ++i) {
    if (!written_[i]) continue;
    const events::DecodedEvent& e = batch_[i].event;
    const std::int64_t ms = unix_ms(e.time);
    const std::int64_t start = cost::window_start(ms, settings_.cost_window_ms);
    starts.insert(start);
    // A GPU sample is also the energy baseline of the next window: a late one changes it too.
    if (e.kind == events::EventKind::kGpuMetrics) starts.insert(start + settings_.cost_window_ms);
    if (e.kind != events::EventKind::kTokenUsage || e.deployment.empty()) continue;
    std::vector<std::string> targets;
    for (const auto& uuid : e.gpu_uuids) targets.push_back("gpu:" + uuid);
    if (targets.empty() && !e.host.empty()) targets.push_back("host:" + e.host);
    for (auto& target : targets) {
      auto [it, inserted] = placements.try_emplace(
          {e.deployment, target}, cost::PlacementRow{e.deployment, target, ms, ms});
      it->second.first_seen_ms = std::min(it->second.first_seen_ms, ms);
      it->second.last_seen_ms = std::max(it->second.last_seen_ms, ms);
    }
  }
  if (!placements.empty()) {
    std::vector<cost::PlacementRow> rows;
    for (auto& [key, row] : placements) rows.push_back(std::move(row));
    if (Result<bool> r = store_.upsert_placements(rows); !r) {
      // Never a reason to drop the batch: the store is away, or refuses for now.
      return Error::retryable("storing placements: " + r.error().message);
    }
  }
  if (starts.empty()) return true;
  if (Result<bool> r =
          store_.mark_cost_windows(std::vector<std::int64_t>(starts.begin(), starts.end()),
                                   unix_ms(std::chrono::system_clock::now()), cost::random_token());
      !r) {
    return Error::retryable("marking cost windows: " + r.error().message);
  }
  return true;
}

void ProcessorCore::count_written(const WriteOutcome& w) {
  db_writes_.with({"gpu_metrics"}).Increment(static_cast<double>(w.gpu_metrics_inserted));
  db_writes_.with({"token_usage"}).Increment(static_cast<double>(w.token_usage_inserted));
  duplicates_.Increment(static_cast<double>(w.duplicates));
  totals_.stored += static_cast<std::int64_t>(w.gpu_metrics_inserted + w.token_usage_inserted);
  totals_.duplicates += static_cast<std::int64_t>(w.duplicates);
  // Refused events and duplicates (stored before) count nowhere here.
  std::vector<bool> skip(batch_.size(), false);
  for (const auto& entry : w.rejected) skip[entry.first] = true;
  for (const std::size_t index : w.duplicate_indexes) {
    if (index < skip.size()) skip[index] = true;
  }
  const auto now = std::chrono::system_clock::now();
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    if (skip[i]) continue;
    const Pending& p = batch_[i];
    end_to_end_latency_.Observe(std::chrono::duration<double>(now - p.event.time).count());
    if (p.event.kind == events::EventKind::kTokenUsage) {
      const auto tokens = static_cast<double>(p.event.input_tokens + p.event.output_tokens);
      tokens_(p.event.model).Increment(tokens);
      tenant_tokens_(tenants_.label(p.event.tenant_id)).Increment(tokens);
    }
  }
}

void ProcessorCore::abandon(const std::function<bool(const PartitionKey&)>& revoked) {
  // Keep the saved store rejections pointing at the same events after the batch shrinks, so the
  // kept ones are still dead-lettered before their offsets move.
  std::vector<std::size_t> new_index(batch_.size(), SIZE_MAX);
  std::vector<Pending> kept;
  std::vector<bool> written;
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    if (revoked({batch_[i].topic, batch_[i].partition})) continue;
    new_index[i] = kept.size();
    kept.push_back(std::move(batch_[i]));
    if (i < written_.size()) written.push_back(written_[i]);
  }
  written_ = std::move(written);
  const std::size_t dropped = batch_.size() - kept.size();
  std::vector<std::pair<std::size_t, std::string>> rejected;
  std::size_t next = 0;
  for (std::size_t r = 0; r < rejected_.size(); ++r) {
    if (new_index[rejected_[r].first] == SIZE_MAX) continue;
    if (r < rejected_next_) ++next;
    rejected.emplace_back(new_index[rejected_[r].first], std::move(rejected_[r].second));
  }
  batch_ = std::move(kept);
  rejected_ = std::move(rejected);
  rejected_next_ = next;
  std::erase_if(offsets_, [&](const auto& entry) { return revoked(entry.first); });
  abandoned_.Increment(static_cast<double>(dropped));
  totals_.abandoned += static_cast<std::int64_t>(dropped);
  pending_messages_ -= std::min(pending_messages_, dropped);
  if (batch_.empty() && offsets_.empty()) {
    pending_messages_ = 0;
    rejected_.clear();
    rejected_next_ = 0;
    stage_ = Stage::kWrite;
  }
  update_in_flight();
}

}  // namespace telemetryd::processor
