#include "worker/worker_core.hpp"

#include <map>

#include "events/event_decoder.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::worker {

WorkerCore::WorkerCore(WorkerSettings settings, MetadataStore& store, DeadLetterSink& dead_letters,
                       metrics::Registry& metrics)
    : settings_(std::move(settings)),
      store_(store),
      dead_letters_(dead_letters),
      consumed_(metrics.counter("worker_messages_consumed_total",
                                "Messages received (reconciliation: received = "
                                "worker_documents_written_total{collection=\"gpu_metadata\"} + "
                                "dead-lettered + duplicates + in flight + abandoned).",
                                {"topic"})),
      invalid_(metrics.counter("worker_invalid_events_total",
                               "Events that failed validation or transform, by reason.",
                               {"topic", "reason"})),
      dead_lettered_(metrics.counter("worker_dead_letters_total",
                                     "Messages sent to the dead-letter topic.",
                                     {"topic", "stage"})),
      written_(metrics.counter("worker_documents_written_total",
                               "Documents inserted (gpu_metadata) or device states inserted or "
                               "replaced (gpu_devices).",
                               {"collection"})),
      duplicates_(metrics
                      .counter("worker_duplicates_total",
                               "Events already in gpu_metadata (same id), counted as done.")
                      .with({})),
      stale_(metrics
                 .counter("worker_stale_updates_total",
                          "Events older than (or equal to) their device's stored state, which "
                          "they therefore did not replace.")
                 .with({})),
      abandoned_(metrics
                     .counter("worker_abandoned_total",
                              "Messages dropped from memory before being done, to be redelivered "
                              "(partition revoked, or stopped during an outage).")
                     .with({})),
      in_flight_(metrics.gauge("worker_in_flight", "Messages received but not yet done.").with({})),
      write_latency_(metrics
                         .histogram("worker_batch_write_duration_seconds",
                                    "Time one batch's log and state writes took.")
                         .with({})) {
  // Present from the start, so dashboards see 0 rather than nothing.
  written_.with({"gpu_metadata"});
  written_.with({"gpu_devices"});
}

void WorkerCore::update_in_flight() {
  in_flight_.Set(static_cast<double>(batch_.size()));
}

bool WorkerCore::dead_letter(const core::IncomingMessage& message, std::string_view reason,
                             std::string_view detail, std::string_view stage) {
  if (!dead_letters_.send({message.topic, message.partition, message.offset, message.key,
                           message.value, reason, detail, stage})) {
    return false;
  }
  dead_lettered_.with({std::string(message.topic), std::string(stage)}).Increment();
  return true;
}

bool WorkerCore::accept(const core::IncomingMessage& message) {
  // Nothing is counted or marked done until the message is really taken: a caller that gets
  // false offers the same message again.
  events::DecodeResult decoded = events::decode_event(message.value, parser_);
  std::string reason, detail, stage = "validate";
  std::optional<MetadataDocument> doc;
  if (auto* error = std::get_if<events::DecodeError>(&decoded)) {
    reason = error->reason;
    detail = error->detail;
  } else {
    const events::DecodedEvent& event = std::get<events::DecodedEvent>(decoded);
    if (event.kind != events::EventKind::kGpuMetadata || message.topic != settings_.topic) {
      reason = "wrong_topic";
      detail = "type " + event.type + " does not belong on topic " + std::string(message.topic);
    } else {
      Result<MetadataDocument> transformed = transform_metadata(event, transform_parser_);
      if (transformed) {
        doc = std::move(transformed.value());
      } else {
        reason = "transform_failed";
        detail = transformed.error().message;
        stage = "transform";
      }
    }
  }
  if (!reason.empty() && !dead_letter(message, reason, detail, stage)) return false;

  if (pending_messages_ == 0) oldest_pending_ = std::chrono::steady_clock::now();
  ++pending_messages_;
  consumed_.with({std::string(message.topic)}).Increment();
  auto& highest = offsets_[{std::string(message.topic), message.partition}];
  highest = std::max(highest, message.offset);
  if (!reason.empty()) {
    invalid_.with({std::string(message.topic), reason}).Increment();
    return true;
  }
  Pending p;
  p.doc = std::move(*doc);
  p.topic = std::string(message.topic);
  p.key = std::string(message.key);
  p.value = std::string(message.value);
  p.partition = message.partition;
  p.offset = message.offset;
  batch_.push_back(std::move(p));
  update_in_flight();
  return true;
}

Error WorkerCore::retried(Error error, const char* message) {
  if (error.kind == Error::Kind::kPermanent || error.unclassified) {
    log::error("worker", message, {{"error", error.message}, {"code", error.code}});
  }
  error.kind = Error::Kind::kRetryable;
  return error;
}

Result<bool> WorkerCore::write_log() {
  std::vector<const MetadataDocument*> docs;
  for (const Pending& p : batch_) docs.push_back(&p.doc);
  Result<LogOutcome> outcome = store_.insert_log(docs);
  // A batch refused whole is retried, never dead-lettered: only the documents the store refuses
  // one by one are (the processor's rule, processor_core.cpp failed_write).
  if (!outcome) return retried(outcome.error(), "store refused a batch; retrying it");
  written_.with({"gpu_metadata"}).Increment(static_cast<double>(outcome->inserted));
  duplicates_.Increment(static_cast<double>(outcome->duplicates));
  for (const auto& entry : outcome->rejected) {
    batch_[entry.first].rejected = entry.second;
    batch_[entry.first].rejected_stage = "store";
  }
  return true;
}

Result<bool> WorkerCore::write_state() {
  // Only the newest observation of each device in the batch can change its state; the others
  // are stale whatever is stored, so they cost no write.
  std::map<std::string, std::size_t> newest;
  std::size_t stale_in_batch = 0;
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    if (!batch_[i].rejected.empty()) continue;
    auto [it, inserted] = newest.try_emplace(batch_[i].doc.gpu_uuid, i);
    if (inserted) continue;
    ++stale_in_batch;
    if (is_newer(batch_[i].doc.version, batch_[it->second].doc.version)) it->second = i;
  }
  std::vector<const MetadataDocument*> docs;
  std::vector<std::size_t> positions;
  for (const auto& entry : newest) {
    docs.push_back(&batch_[entry.second].doc);
    positions.push_back(entry.second);
  }
  if (!docs.empty()) {
    Result<StateOutcome> outcome = store_.update_devices(docs);
    if (!outcome) {
      return retried(outcome.error(), "store refused the device states; retrying them");
    } else {
      written_.with({"gpu_devices"}).Increment(static_cast<double>(outcome->updated));
      stale_.Increment(static_cast<double>(outcome->stale));
      for (const auto& entry : outcome->rejected) {
        batch_[positions[entry.first]].rejected = entry.second;
        batch_[positions[entry.first]].rejected_stage = "state";
      }
    }
  }
  stale_.Increment(static_cast<double>(stale_in_batch));
  return true;
}

Result<bool> WorkerCore::flush(core::DoneOffsets& done) {
  if (pending_messages_ == 0) return true;
  const auto started = std::chrono::steady_clock::now();
  if (step_ == Step::kLog) {
    if (!batch_.empty()) {
      Result<bool> logged = write_log();
      if (!logged) return logged;
    }
    step_ = Step::kState;
  }
  if (step_ == Step::kState) {
    Result<bool> applied = write_state();
    if (!applied) return applied;
    write_latency_.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    step_ = Step::kRejected;
  }
  if (step_ == Step::kRejected) {
    for (Pending& p : batch_) {
      if (p.rejected.empty() || p.dead_lettered) continue;
      if (!dead_letter({p.topic, p.partition, p.offset, p.key, p.value}, "store_rejected",
                       p.rejected, p.rejected_stage)) {
        return Error::retryable("dead-letter queue full");
      }
      p.dead_lettered = true;
    }
    step_ = Step::kDeadLetters;
  }
  // Offsets may only move once every dead letter of the batch is acknowledged too.
  if (!dead_letters_.flush(settings_.dead_letter_timeout)) {
    return Error::retryable("dead letters not acknowledged yet");
  }
  done = std::move(offsets_);
  offsets_.clear();
  batch_.clear();
  pending_messages_ = 0;
  update_in_flight();
  step_ = Step::kLog;
  return true;
}

void WorkerCore::abandon(const std::function<bool(const core::PartitionKey&)>& revoked) {
  const std::size_t before = batch_.size();
  std::erase_if(batch_, [&](const Pending& p) { return revoked({p.topic, p.partition}); });
  const std::size_t dropped = before - batch_.size();
  std::erase_if(offsets_, [&](const auto& entry) { return revoked(entry.first); });
  abandoned_.Increment(static_cast<double>(dropped));
  pending_messages_ -= std::min(pending_messages_, dropped);
  if (batch_.empty() && offsets_.empty()) {
    pending_messages_ = 0;
    step_ = Step::kLog;
  }
  update_in_flight();
}

}  // namespace telemetryd::worker
