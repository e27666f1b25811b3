#pragma once
// The processor's MongoDB store (libmongoc, pooled): gpu_metrics, token_usage and gpus with the
// event id as _id, unordered bulk inserts in which a duplicate key counts as already stored.

#include <mongoc/mongoc.h>

#include <memory>
#include <string>

#include "mongo/mongo_uri.hpp"
#include "processor/store.hpp"
#include "telemetryd/config.hpp"

namespace telemetryd::mongo {

struct MongoStoreSettings {
  MongoConnection connection;  // connection_from(config): URI, TLS, credentials
  std::string database;
  std::string write_concern = "majority";  // or "1"
  std::int64_t ttl_days = 0;               // 0: keep forever
};

class MongoStore final : public processor::Store {
 public:
  /// Throws StartupError for an invalid URI (never quoting it).
  explicit MongoStore(MongoStoreSettings settings);
  ~MongoStore() override;

  Result<bool> prepare(const processor::GpuCatalog& catalog) override;
  Result<processor::WriteOutcome> write(const std::vector<processor::StoredEvent>& batch) override;
  Result<std::string> latest_gpu_json(const processor::GpuQuery& query) override;
  Result<std::string> gpus_json() override;
  Result<std::string> usage_json(const processor::UsageQuery& query) override;
  Result<std::string> gpu_series_json(const processor::SeriesQuery& query) override;
  Result<std::string> devices_json() override;

 private:
  class Client;  // a pooled client, returned on scope exit
  Result<bool> ensure_indexes(mongoc_client_t* client);

  MongoStoreSettings settings_;
  mongoc_client_pool_t* pool_ = nullptr;
};

}  // namespace telemetryd::mongo
