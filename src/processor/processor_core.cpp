#include "processor/processor_core.hpp"

#include <cmath>
#include <cstdint>

#include "telemetryd/log.hpp"

namespace telemetryd::processor {

ProcessorCore::ProcessorCore(CoreSettings settings, Store& store, DeadLetterSink& dead_letters,
                             GpuCatalog& catalog, metrics::Registry& metrics)
    : settings_(std::move(settings)),
      store_(store),
      dead_letters_(dead_letters),
      catalog_(catalog),
      costs_(settings_.cost, catalog),
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
                              "Input plus output tokens stored, by model.", {"model"})),
      cost_per_token_(metrics.gauge("processor_cost_per_token_usd",
                                    "Latest cost per token over the rolling window, by window key.",
                                    {"model"})),
      write_latency_(metrics
                         .histogram("processor_batch_write_duration_seconds",
                                    "Time one batch write to the store took.")
                         .with({})),
      end_to_end_latency_(metrics
                              .histogram("processor_end_to_end_latency_seconds",
                                         "From event time to stored.", {},
                                         {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})
                              .with({})) {}

// Dead letters count as done once sent, so only valid events waiting for the store are in
// flight; that keeps received = stored + dead-lettered + duplicates + in flight + abandoned.
void ProcessorCore::update_in_flight() {
  in_flight_.set(static_cast<double>(batch_.size()));
}

void ProcessorCore::note_done(const std::string& topic, std::int32_t partition,
                              std::int64_t offset) {
  auto& highest = offsets_[{topic, partition}];
  highest = std::max(highest, offset);
}

bool ProcessorCore::accept(const IncomingMessage& message) {
  // Nothing is counted or marked done until the message is really taken: a caller that gets
  // false retries the same message, and a stop in between must leave its offset uncommitted.
  DecodeResult decoded = decode_event(message.value, parser_);
  std::string reason, detail;
  if (auto* error = std::get_if<DecodeError>(&decoded)) {
    reason = error->reason;
    detail = error->detail;
  } else {
    const DecodedEvent& event = std::get<DecodedEvent>(decoded);
    const bool expected_topic =
        (event.kind == EventKind::kGpuMetrics && message.topic == settings_.gpu_metrics_topic) ||
        (event.kind == EventKind::kTokenUsage && message.topic == settings_.token_usage_topic);
    if (!expected_topic) {
      reason = "wrong_topic";
      detail = "type " + event.type + " does not belong on topic " + std::string(message.topic);
    }
  }
  if (!reason.empty() && !dead_letter(message, reason, detail, "validate")) return false;

  if (pending_messages_ == 0) oldest_pending_ = std::chrono::steady_clock::now();
  ++pending_messages_;
  consumed_.with({std::string(message.topic)}).inc();
  note_done(std::string(message.topic), message.partition, message.offset);
  if (!reason.empty()) {
    invalid_.with({std::string(message.topic), reason}).inc();
    return true;
  }
  batch_.push_back({std::move(std::get<DecodedEvent>(decoded)), std::string(message.topic),
                    std::string(message.key), std::string(message.value), message.partition,
                    message.offset, std::nullopt});
  update_in_flight();
  return true;
}

bool ProcessorCore::dead_letter(const IncomingMessage& message, std::string_view reason,
                                std::string_view detail, std::string_view stage) {
  if (!dead_letters_.send({message.topic, message.partition, message.offset, message.key,
                           message.value, reason, detail, stage})) {
    return false;
  }
  dead_lettered_.with({std::string(message.topic), std::string(stage)}).inc();
  return true;
}

void ProcessorCore::enrich() {
  // In arrival order, so a usage event sees the GPU models of metrics that came before it.
  for (Pending& p : batch_) {
    if (p.event.kind == EventKind::kGpuMetrics) {
      catalog_.observe_gpu(p.event.gpu_uuid, p.event.model_name, p.event.host);
    } else if (p.event.kind == EventKind::kTokenUsage) {
      const std::string& key = settings_.cost_by_deployment && !p.event.deployment.empty()
                                   ? p.event.deployment
                                   : p.event.model;
      // Usage that names no GPU but its host (OTLP spans, scraped model servers) is served
      // by the GPUs that host reports.
      const std::vector<std::string>& gpus = p.event.gpu_uuids.empty() && !p.event.host.empty()
                                                 ? catalog_.gpus_on_host(p.event.host)
                                                 : p.event.gpu_uuids;
      p.cost = costs_.add(key, p.event.time, p.event.input_tokens, p.event.output_tokens, gpus);
      if (p.cost->cost_per_token) cost_per_token_.with({key}).set(*p.cost->cost_per_token);
    }
  }
}

Result<bool> ProcessorCore::flush(core::DoneOffsets& done) {
  if (pending_messages_ == 0) return true;
  // Stages resume where a retryable failure stopped them, so a retry never enriches, writes or
  // counts twice.
  if (stage_ == Stage::kEnrich) {
    enrich();
    stage_ = Stage::kWrite;
  }
  if (stage_ == Stage::kWrite) {
    rejected_.clear();
    rejected_next_ = 0;
    if (!batch_.empty()) {
      std::vector<StoredEvent> stored;
      stored.reserve(batch_.size());
      for (const Pending& p : batch_) stored.push_back({&p.event, p.cost});
      const auto started = std::chrono::steady_clock::now();
      Result<WriteOutcome> outcome = store_.write(stored);
      write_latency_.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      if (!outcome) {
        if (outcome.error().kind == Error::Kind::kRetryable) return outcome.error();
        // The store refused the whole batch for good: keep the events, in the dead-letter topic.
        log::error("processor", "store refused a batch", {{"error", outcome.error().message}});
        for (std::size_t i = 0; i < batch_.size(); ++i) {
          rejected_.emplace_back(i, outcome.error().message);
        }
      } else {
        count_written(outcome.value());
        rejected_ = std::move(outcome.value().rejected);
      }
    }
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
  stage_ = Stage::kEnrich;
  return true;
}

void ProcessorCore::count_written(const WriteOutcome& w) {
  db_writes_.with({"gpu_metrics"}).inc(static_cast<double>(w.gpu_metrics_inserted));
  db_writes_.with({"token_usage"}).inc(static_cast<double>(w.token_usage_inserted));
  duplicates_.inc(static_cast<double>(w.duplicates));
  std::vector<bool> rejected(batch_.size(), false);
  for (const auto& entry : w.rejected) rejected[entry.first] = true;
  const auto now = std::chrono::system_clock::now();
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    if (rejected[i]) continue;
    const Pending& p = batch_[i];
    end_to_end_latency_.observe(std::chrono::duration<double>(now - p.event.time).count());
    if (p.event.kind == EventKind::kTokenUsage) {
      tokens_.with({p.event.model})
          .inc(static_cast<double>(p.event.input_tokens + p.event.output_tokens));
    }
  }
}

void ProcessorCore::abandon(const std::function<bool(const PartitionKey&)>& revoked) {
  // Keep the saved store rejections pointing at the same events after the batch shrinks, so the
  // kept ones are still dead-lettered before their offsets move.
  std::vector<std::size_t> new_index(batch_.size(), SIZE_MAX);
  std::vector<Pending> kept;
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    if (revoked({batch_[i].topic, batch_[i].partition})) continue;
    new_index[i] = kept.size();
    kept.push_back(std::move(batch_[i]));
  }
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
  abandoned_.inc(static_cast<double>(dropped));
  pending_messages_ -= std::min(pending_messages_, dropped);
  if (batch_.empty() && offsets_.empty()) {
    pending_messages_ = 0;
    rejected_.clear();
    rejected_next_ = 0;
    stage_ = Stage::kEnrich;
  }
  update_in_flight();
}

}  // namespace telemetryd::processor
