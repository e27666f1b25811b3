#pragma once
// Bounds the tenant label of the spend metrics: the tenants named in configuration, then the
// first `limit` others seen, keep their own series; the rest add to tenant="other". A tenant
// never changes series once it has one, so its counters stay monotonic. Thread-safe (the
// processor's consumer and the pricer both count per tenant).

#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace telemetryd::processor {

class TenantLabels {
 public:
  TenantLabels(std::vector<std::string> always, std::size_t limit)
      : always_(always.begin(), always.end()), limit_(limit) {}

  /// The label value for a tenant.
  std::string label(const std::string& tenant) {
    const std::lock_guard lock(mutex_);
    if (always_.count(tenant) != 0 || seen_.count(tenant) != 0) return tenant;
    if (seen_.size() < limit_) {
      seen_.insert(tenant);
      return tenant;
    }
    return "other";
  }

 private:
  std::mutex mutex_;
  std::set<std::string> always_;
  std::set<std::string> seen_;
  std::size_t limit_;
};

}  // namespace telemetryd::processor
