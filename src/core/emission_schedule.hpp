#pragma once
// When a source's events are due. With a rate, the n-th event is due n/rate seconds after the
// start: bursts after a stall catch up and the long-run rate is exact. Without one, one sample
// per source interval, in real time. Callers wait their own way (the producer serves Kafka
// delivery reports while it waits; the embedded pipeline sleeps).

#include <chrono>
#include <cstdint>

namespace telemetryd {

class EmissionSchedule {
 public:
  using Clock = std::chrono::steady_clock;

  EmissionSchedule(double rate, std::chrono::milliseconds interval)
      : rate_(rate), interval_(interval), start_(Clock::now()), next_tick_(start_) {}

  /// True when pacing events by rate; false when sampling in real time.
  bool paced() const { return rate_ > 0; }

  /// Real-time mode: when the next sample is due; each call moves on by one interval.
  Clock::time_point next_tick() {
    const Clock::time_point due = next_tick_;
    next_tick_ += interval_;
    return due;
  }

  /// Rate mode: when event `n` (counted from 0) is due.
  Clock::time_point event_due(std::uint64_t n) const {
    return start_ + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(n) / rate_));
  }

 private:
  double rate_;
  std::chrono::milliseconds interval_;
  Clock::time_point start_;
  Clock::time_point next_tick_;
};

}  // namespace telemetryd
