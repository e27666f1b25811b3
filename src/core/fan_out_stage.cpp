#include "core/fan_out_stage.hpp"

#include <algorithm>

namespace telemetryd::core {

FanOutStage::FanOutStage(std::vector<BatchStage*> stages)
    : stages_(std::move(stages)), done_by_stage_(stages_.size()) {}

bool FanOutStage::accept(const IncomingMessage& message) {
  const bool resumed = partial_ && partial_->topic == message.topic &&
                       partial_->partition == message.partition &&
                       partial_->offset == message.offset;
  for (std::size_t i = resumed ? next_stage_ : 0; i < stages_.size(); ++i) {
    if (!stages_[i]->accept(message)) {
      partial_ = Position{std::string(message.topic), message.partition, message.offset};
      next_stage_ = i;
      return false;
    }
  }
  partial_.reset();
  return true;
}

std::size_t FanOutStage::pending() const {
  std::size_t most = 0;
  for (const BatchStage* stage : stages_) most = std::max(most, stage->pending());
  return most;
}

std::chrono::steady_clock::time_point FanOutStage::oldest_pending() const {
  auto oldest = std::chrono::steady_clock::time_point::max();
  for (const BatchStage* stage : stages_) {
    if (stage->pending() > 0) oldest = std::min(oldest, stage->oldest_pending());
  }
  return oldest;
}

Result<bool> FanOutStage::flush(DoneOffsets& done) {
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    DoneOffsets stage_done;
    Result<bool> result = stages_[i]->flush(stage_done);
    // Progress a stage reports beside an error (one partition uploaded, another failed) is
    // kept too: the stage does not report it again.
    for (const auto& [key, offset] : stage_done) {
      auto [it, inserted] = done_by_stage_[i].try_emplace(key, offset);
      if (!inserted) it->second = std::max(it->second, offset);
    }
    if (!result) return result;  // what earlier stages finished is kept in done_by_stage_
  }
  done.clear();
  if (stages_.empty()) return true;
  for (const auto& [key, first] : done_by_stage_[0]) {
    std::int64_t lowest = first;
    bool everywhere = true;
    for (std::size_t i = 1; i < stages_.size() && everywhere; ++i) {
      const auto it = done_by_stage_[i].find(key);
      everywhere = it != done_by_stage_[i].end();
      if (everywhere) lowest = std::min(lowest, it->second);
    }
    if (!everywhere) continue;
    const auto it = reported_.find(key);
    if (it != reported_.end() && it->second >= lowest) continue;
    reported_[key] = lowest;
    done[key] = lowest;
  }
  return true;
}

void FanOutStage::abandon(const std::function<bool(const PartitionKey&)>& revoked) {
  for (BatchStage* stage : stages_) stage->abandon(revoked);
  // A partition assigned again later starts from its committed offset, so what was known about
  // it here no longer applies.
  for (auto& done : done_by_stage_) {
    std::erase_if(done, [&](const auto& entry) { return revoked(entry.first); });
  }
  std::erase_if(reported_, [&](const auto& entry) { return revoked(entry.first); });
  if (partial_ && revoked({partial_->topic, partial_->partition})) partial_.reset();
}

}  // namespace telemetryd::core
