#include "processor/store_factory.hpp"

#include <algorithm>
#include <set>

#include "influx/influx_config.hpp"
#include "influx/influx_store.hpp"
#include "mongo/mongo_store.hpp"
#include "mongo/mongo_uri.hpp"

namespace telemetryd::processor {

namespace {

std::unique_ptr<Store> make_mongo(const Config& config) {
  return std::make_unique<mongo::MongoStore>(mongo::MongoStoreSettings{
      mongo::connection_from(config), config.str("mongodb.database"),
      config.str("mongodb.write_concern"), config.integer("mongodb.ttl_days")});
}

std::unique_ptr<Store> make_influx(const Config& config) {
  return std::make_unique<influx::InfluxStore>(influx::store_settings_from(config));
}

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

std::vector<KeySpec> store_keys() {
  return {{.name = "store",
           .description = "Where events are stored: mongodb (queried by /gpu/info and /v1/usage), "
                          "influxdb (write-only: the query routes answer 501), or both (a batch "
                          "is done once both acknowledged it; queries from MongoDB).",
           .default_value = "mongodb",
           .allowed = {"mongodb", "influxdb", "both"}}};
}

std::unique_ptr<Store> make_processor_store(const Config& config) {
  const std::string& choice = config.str("processor.store");
  if (choice == "influxdb") return make_influx(config);
  if (choice == "both") return std::make_unique<TeeStore>(make_mongo(config), make_influx(config));
  return make_mongo(config);
}

TeeStore::TeeStore(std::unique_ptr<Store> primary, std::unique_ptr<Store> secondary)
    : primary_(std::move(primary)), secondary_(std::move(secondary)) {}

Result<bool> TeeStore::prepare(const GpuCatalog& catalog) {
  if (Result<bool> r = primary_->prepare(catalog); !r) return r;
  return secondary_->prepare(catalog);
}

Result<WriteOutcome> TeeStore::write(const std::vector<StoredEvent>& batch) {
  const std::uint64_t print = fingerprint(batch);
  if (!acknowledged_ || acknowledged_fingerprint_ != print) {
    Result<WriteOutcome> first = primary_->write(batch);
    if (!first) return first.error();
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
    std::size_t& inserted = batch[r.first].event->kind == EventKind::kTokenUsage
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
Result<std::string> TeeStore::gpu_series_json(const SeriesQuery& query) {
  return primary_->gpu_series_json(query);
}
Result<std::string> TeeStore::devices_json() {
  return primary_->devices_json();
}

}  // namespace telemetryd::processor
