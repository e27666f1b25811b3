#include "sinks/tee_store.hpp"

#include <algorithm>
#include <set>

namespace telemetryd::sinks {

namespace {

std::uint64_t fingerprint(const std::vector<StoredEvent>& batch) {
  std::uint64_t h = 14695981039346656037ULL ^ batch.size();
  for (const StoredEvent& e : batch) {
    for (const char c : e.event->id) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

TeeStore::TeeStore(std::unique_ptr<Store> primary, std::unique_ptr<Store> secondary)
    : primary_(std::move(primary)), secondary_(std::move(secondary)) {}

Result<bool> TeeStore::prepare(const events::GpuCatalog& catalog) {
  if (Result<bool> r = primary_->prepare(catalog); !r) return r;
  return secondary_->prepare(catalog);
}

Result<WriteOutcome> TeeStore::write(const std::vector<StoredEvent>& batch) {
  const std::uint64_t print = fingerprint(batch);
  if (!acknowledged_ || acknowledged_fingerprint_ != print) {
    const std::uint64_t generation = primary_->latest_generation();
    Result<WriteOutcome> first = primary_->write(batch);
    if (!first) return first.error();
    if (primary_->latest_generation() != generation) latest_changed();
    acknowledged_ = std::move(first.value());
    acknowledged_fingerprint_ = print;
  }
  Result<WriteOutcome> second = secondary_->write(batch);
  if (!second) {
    // Retryable: the retry of this same batch skips the primary. Permanent: the batch is
    // dead-lettered whole and will not come back as such.
    if (second.error().kind == Error::Kind::kPermanent) acknowledged_.reset();
    return second.error();
  }
  WriteOutcome outcome = *acknowledged_;
  acknowledged_.reset();
  // A point only the secondary refused was counted as inserted by the primary; it goes to the
  // dead letters instead, so it is taken out of the counts (the reconciliation stays exact).
  std::set<std::size_t> refused;
  for (const auto& r : outcome.rejected) refused.insert(r.first);
  for (auto& r : second.value().rejected) {
    if (!refused.insert(r.first).second) continue;
    std::size_t& inserted = batch[r.first].event->kind == events::EventKind::kTokenUsage
                                ? outcome.token_usage_inserted
                                : outcome.gpu_metrics_inserted;
    if (inserted > 0) {
      --inserted;
    } else if (outcome.duplicates > 0) {
      --outcome.duplicates;
    }
    outcome.rejected.push_back(std::move(r));
  }
  std::sort(outcome.rejected.begin(), outcome.rejected.end());
  return outcome;
}

Result<std::string> TeeStore::latest_gpu_json(const GpuQuery& query) {
  return primary_->latest_gpu_json(query);
}
Result<std::string> TeeStore::gpus_json() {
  return primary_->gpus_json();
}
Result<std::string> TeeStore::usage_json(const UsageQuery& query) {
  return primary_->usage_json(query);
}
Result<std::string> TeeStore::gpu_series_json(const query::SeriesQuery& query) {
  return primary_->gpu_series_json(query);
}
Result<std::string> TeeStore::devices_json() {
  return primary_->devices_json();
}

}  // namespace telemetryd::sinks
