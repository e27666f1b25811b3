#include "mongo/mongo_section.hpp"

#include "mongo/mongo_uri.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd::mongo {
namespace {

std::vector<KeySpec> mongodb_keys() {
  std::vector<KeySpec> keys = connection_keys();
  for (auto& key : std::vector<KeySpec>{
           {.name = "database",
 .description = "Database holding gpu_metrics, token_usage and gpus.",
 .default_value = "telemetry"},
           {.name = "write_concern",
           .description = "majority waits for a majority of replicas; 1 for the primary only.",
           .default_value = "majority",
           .allowed = {"majority", "1"}},
           {.name = "ttl_days",
           .type = ValueType::kInt,
           .description = "Delete gpu_metrics and token_usage older than this (TTL index on ts); "
                          "0 keeps them.",
           .default_value = "0",
           .min = 0,
           .max = 36500},
           {.name = "check_interval_ms",
           .type = ValueType::kInt,
           .description = "How often /ready re-checks the server while it is reachable.",
           .default_value = "5000",
           .min = 100,
           .max = 300000},
           {.name = "check_timeout_ms",
           .type = ValueType::kInt,
           .description = "Server selection timeout of the readiness ping.",
           .default_value = "3000",
           .min = 100,
           .max = 60000},
       }) {
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace

const SectionSpec& mongodb_section() {
  static const SectionSpec section{"mongodb", "Connection to the MongoDB-compatible database.",
                                   mongodb_keys(), check_connection_keys};
  return section;
}

MongoPing::MongoPing(const Config& config) {
  // A pooled client otherwise waits 30 s for a server; the check must answer sooner.
  const UriPtr uri = make_uri(connection_from(config),
                              static_cast<int32_t>(config.integer("mongodb.check_timeout_ms")));
  pool_.reset(mongoc_client_pool_new(uri.get()));
  if (!pool_) throw StartupError("mongodb: cannot create client pool");
  mongoc_client_pool_set_error_api(pool_.get(), MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(pool_.get(), "telemetryd");
}

ProbeResult MongoPing::check() {
  mongoc_client_t* client = mongoc_client_pool_pop(pool_.get());
  bson_t* command = BCON_NEW("ping", BCON_INT32(1));
  bson_t reply;
  bson_error_t error;
  const bool ok = mongoc_client_command_simple(client, "admin", command, nullptr, &reply, &error);
  bson_destroy(command);
  bson_destroy(&reply);
  mongoc_client_pool_push(pool_.get(), client);
  if (!ok) return {false, std::string("ping failed: ") + error.message};
  return {true, "ping ok"};
}

}  // namespace telemetryd::mongo
