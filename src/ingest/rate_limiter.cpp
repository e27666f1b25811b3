#include "ingest/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace telemetryd::ingest {

bool RateLimiter::take(const std::string& client, double cost, Clock::time_point now,
                       int& retry_after) {
  if (!enabled()) return true;
  auto it = buckets_.find(client);
  if (it == buckets_.end()) it = buckets_.emplace(client, Bucket{burst_, now}).first;
  Bucket& bucket = it->second;
  const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
  bucket.tokens = std::min(burst_, bucket.tokens + std::max(0.0, elapsed) * rate_);
  bucket.updated = now;
  if (bucket.tokens >= cost) {
    bucket.tokens -= cost;
    return true;
  }
  // A request costing more than the burst can never pass; it still gets a finite wait.
  const double needed = std::min(cost, burst_) - bucket.tokens;
  retry_after = std::max(1, static_cast<int>(std::ceil(needed / rate_)));
  return false;
}

}  // namespace telemetryd::ingest
