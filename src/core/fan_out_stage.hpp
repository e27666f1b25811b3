#pragma once
// Several stages behind one consumer loop, each getting every message: the worker's MongoDB
// writes and, attached next to them, the S3 archive. An offset is reported done only once every
// stage has it done, so offsets never commit past an event one of the sinks has not acknowledged.
//
// What a stage attached here must do:
// - accept(): copy what it needs (the views die after the call); false only when it cannot take
//   the message now (it is offered again, to that stage and the ones after it only).
// - flush(done): make progress; set `done` to the highest offset per partition up to which it
//   has everything durable (acknowledged), even if that is below what it accepted. A stage that
//   gathers larger objects than the loop's batch returns true with a lower or absent offset
//   until its object is written. Retryable error: the loop pauses, backs off and calls again.
// - pending()/oldest_pending(): the messages it wants flushed now. A gathering stage reports 0
//   until its object is due (by size or age), so it does not make the loop flush on every poll,
//   and the count once it is.
// - abandon(): drop what belongs to revoked partitions.

#include <optional>
#include <vector>

#include "core/batch_stage.hpp"

namespace telemetryd::core {

class FanOutStage final : public BatchStage {
 public:
  /// The stages must outlive this one; they are offered each message in this order.
  explicit FanOutStage(std::vector<BatchStage*> stages);

  bool accept(const IncomingMessage& message) override;
  /// The largest of the stages'.
  std::size_t pending() const override;
  /// The oldest among the stages that have something pending.
  std::chrono::steady_clock::time_point oldest_pending() const override;
  /// Flushes every stage in order (stopping at the first error); `done` gets, per partition, the
  /// lowest offset all stages have done, when it moved since the last report.
  Result<bool> flush(DoneOffsets& done) override;
  void abandon(const std::function<bool(const PartitionKey&)>& revoked) override;

 private:
  struct Position {
    std::string topic;
    std::int32_t partition;
    std::int64_t offset;
  };

  std::vector<BatchStage*> stages_;
  std::vector<DoneOffsets> done_by_stage_;  // highest done offset each stage reported
  DoneOffsets reported_;                    // what flush() last handed to the loop
  // A message that some stages took before another refused it: offered again from there.
  std::optional<Position> partial_;
  std::size_t next_stage_ = 0;
};

}  // namespace telemetryd::core
