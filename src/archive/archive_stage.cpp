#include "archive/archive_stage.hpp"

#include <algorithm>

#include "telemetryd/log.hpp"

namespace telemetryd::archive {

ArchiveStage::ArchiveStage(ArchiveBatcher& batcher, metrics::Registry& metrics)
    : batcher_(batcher),
      objects_(metrics.counter("worker_archive_objects_total", "Archive objects stored.").with({})),
      records_(metrics.counter("worker_archive_records_total", "Events in stored archive objects.")
                   .with({})),
      bytes_(metrics.counter("worker_archive_bytes_total", "Compressed bytes stored.").with({})),
      failures_(metrics.counter("worker_archive_failures_total",
                                "Failed archive uploads and recoveries, by error kind.", {"kind"})),
      buffered_(
          metrics
              .gauge("worker_archive_buffered_bytes", "Uncompressed bytes waiting to be archived.")
              .with({})) {}

bool ArchiveStage::accept(const core::IncomingMessage& message) {
  const core::PartitionKey key{std::string(message.topic), message.partition};
  PartitionState& state = partitions_[key];
  if (!state.recovered) {
    // While the store cannot answer, each partition waits a doubling backoff between attempts,
    // so the loop's re-offers do not list the store every 100 ms.
    const auto now = std::chrono::steady_clock::now();
    if (now < state.retry_at) return false;
    Result<std::optional<std::int64_t>> recovered = batcher_.recover(key.first, key.second);
    if (!recovered) {
      state.backoff = std::clamp(state.backoff * 2, std::chrono::milliseconds(500),
                                 std::chrono::milliseconds(30000));
      state.retry_at = now + state.backoff;
      failures_
          .with({recovered.error().kind == Error::Kind::kPermanent ? "permanent" : "retryable"})
          .Increment();
      log::warn(
          "worker", "cannot read the archive position, will retry",
          {{"topic", key.first}, {"partition", key.second}, {"error", recovered.error().message}});
      return false;  // offered again after a pause: nothing is taken before the store answers
    }
    state.recovered = true;
    log::info("worker", "archive position recovered",
              {{"topic", key.first},
               {"partition", key.second},
               {"archived_through", recovered.value().value_or(-1)}});
  }
  // False means archived already (a replay after a crash): done for the archive all the same.
  batcher_.add({message.topic, message.partition, message.offset, message.value});
  state.highest_accepted = message.offset;
  buffered_.Set(static_cast<double>(batcher_.buffered_bytes()));
  return true;
}

bool ArchiveStage::due() const {
  if (batcher_.buffered_records() == 0) return false;
  if (batcher_.backlogged()) return true;
  const auto next = batcher_.next_due();
  return next && *next <= std::chrono::steady_clock::now();
}

std::size_t ArchiveStage::pending() const {
  return due() ? batcher_.buffered_records() : 0;
}

std::chrono::steady_clock::time_point ArchiveStage::oldest_pending() const {
  // Due now: older than any batch timeout, so the loop flushes on its next turn.
  const auto now = std::chrono::steady_clock::now();
  return due() ? now - std::chrono::hours(1) : now;
}

Result<bool> ArchiveStage::flush(core::DoneOffsets& done) {
  Result<FlushReport> flushed = batcher_.flush(false);
  if (flushed) {
    const FlushReport& report = flushed.value();
    objects_.Increment(static_cast<double>(report.objects));
    records_.Increment(static_cast<double>(report.records));
    bytes_.Increment(static_cast<double>(report.bytes));
  }
  // Partitions that moved count even when another partition's upload failed in this call.
  for (auto& [key, state] : partitions_) {
    if (state.highest_accepted < 0) continue;
    const std::int64_t next =
        batcher_.commit_bound(key.first, key.second, state.highest_accepted + 1);
    if (next - 1 > state.reported) {
      state.reported = next - 1;
      done[key] = state.reported;
    }
  }
  buffered_.Set(static_cast<double>(batcher_.buffered_bytes()));
  if (!flushed) {
    failures_.with({flushed.error().kind == Error::Kind::kPermanent ? "permanent" : "retryable"})
        .Increment();
    return flushed.error();
  }
  // Sealed objects still waiting (a partition in its upload backoff) or a full buffer: the
  // store has not recovered yet. A failure keeps the loop paused, so memory stays bounded by
  // archive.max_buffered_bytes instead of growing through the whole outage.
  if (flushed.value().waiting > 0) {
    return Error::retryable("archive uploads waiting for the store (" +
                            std::to_string(flushed.value().waiting) + " objects)");
  }
  if (batcher_.backlogged()) return Error::retryable("archive buffer full");
  return true;
}

void ArchiveStage::abandon(const std::function<bool(const core::PartitionKey&)>& revoked) {
  for (auto it = partitions_.begin(); it != partitions_.end();) {
    if (revoked(it->first)) {
      batcher_.abandon(it->first.first, it->first.second);
      it = partitions_.erase(it);
    } else {
      ++it;
    }
  }
  buffered_.Set(static_cast<double>(batcher_.buffered_bytes()));
}

}  // namespace telemetryd::archive
