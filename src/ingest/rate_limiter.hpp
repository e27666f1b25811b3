#pragma once
// A token bucket per client: `rate` tokens a second up to `burst`. A request that finds too few
// tokens is refused with the time until enough have refilled, which becomes Retry-After.
// Used from the io thread only, so it needs no lock.

#include <chrono>
#include <map>
#include <string>

namespace telemetryd::ingest {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  /// rate <= 0 turns limiting off.
  RateLimiter(double rate_per_s, double burst) : rate_(rate_per_s), burst_(burst) {}

  /// Takes `cost` tokens from `client`'s bucket; on refusal returns false and sets `retry_after`
  /// to whole seconds (at least 1) until the request would pass.
  bool take(const std::string& client, double cost, Clock::time_point now, int& retry_after);
  bool enabled() const { return rate_ > 0; }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  double rate_;
  double burst_;
  std::map<std::string, Bucket, std::less<>> buckets_;
};

}  // namespace telemetryd::ingest
