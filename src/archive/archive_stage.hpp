#pragma once
// The archive as a stage of the worker's consumer loop (beside the MongoDB writes, in a
// core::FanOutStage): every consumed message goes into the ArchiveBatcher, and the offsets it
// reports done never pass a record that is not stored yet, so Kafka commits stay behind the
// archive and a crash redelivers instead of losing. The batcher gathers objects larger than the
// loop's batches: this stage asks for a flush only when the batcher has work due.

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "archive/archive_batcher.hpp"
#include "core/batch_stage.hpp"
#include "telemetryd/metrics.hpp"

namespace telemetryd::archive {

class ArchiveStage final : public core::BatchStage {
 public:
  ArchiveStage(ArchiveBatcher& batcher, metrics::Registry& metrics);

  /// The first message of a partition reads the highest archived offset from the store
  /// (recover); while the store cannot answer, the message is refused and offered again.
  /// Failures reach /ready through the consumer loop (its check names the error) and the
  /// archive's own probe (the store's reachability).
  bool accept(const core::IncomingMessage& message) override;
  std::size_t pending() const override;
  std::chrono::steady_clock::time_point oldest_pending() const override;
  Result<bool> flush(core::DoneOffsets& done) override;
  void abandon(const std::function<bool(const core::PartitionKey&)>& revoked) override;

 private:
  struct PartitionState {
    bool recovered = false;
    std::int64_t highest_accepted = -1;
    std::int64_t reported = -1;
    std::chrono::milliseconds backoff{0};
    std::chrono::steady_clock::time_point retry_at{};
  };
  bool due() const;

  ArchiveBatcher& batcher_;
  std::map<core::PartitionKey, PartitionState> partitions_;
  metrics::Counter& objects_;
  metrics::Counter& records_;
  metrics::Counter& bytes_;
  metrics::Family<metrics::Counter>& failures_;
  metrics::Gauge& buffered_;
};

}  // namespace telemetryd::archive
