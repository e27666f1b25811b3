#pragma once
// MetadataStore on MongoDB (libmongoc, pooled; FerretDB in the tests). The log is one unordered
// insert_many in which a duplicate key counts as already stored; the device states are read,
// then inserted (new devices) or replaced under worker::device_filter (older ones). A
// write-concern error or a transient server or network error fails the call retryably; other
// per-document errors are reported as rejected.

#include <mongoc/mongoc.h>

#include "mongo/mongo_uri.hpp"

#include <map>
#include <string>

#include "worker/metadata_store.hpp"

namespace telemetryd::worker {

struct MongoMetadataSettings {
  mongo::MongoConnection connection;  // connection_from(config): URI, TLS, credentials
  std::string database;
  std::string write_concern = "majority";  // or "1"
};

class MongoMetadataStore final : public MetadataStore {
 public:
  /// Throws StartupError for an invalid URI.
  explicit MongoMetadataStore(MongoMetadataSettings settings);
  ~MongoMetadataStore() override;
  MongoMetadataStore(const MongoMetadataStore&) = delete;
  MongoMetadataStore& operator=(const MongoMetadataStore&) = delete;

  Result<bool> prepare() override;
  Result<LogOutcome> insert_log(const std::vector<const MetadataDocument*>& batch) override;
  Result<StateOutcome> update_devices(const std::vector<const MetadataDocument*>& batch) override;

 private:
  Result<std::map<std::string, DeviceVersion>> stored_versions(
      mongoc_client_t* client, const std::vector<const MetadataDocument*>& docs,
      const std::vector<std::size_t>& which);

  MongoMetadataSettings settings_;
  mongoc_client_pool_t* pool_ = nullptr;
};

}  // namespace telemetryd::worker
