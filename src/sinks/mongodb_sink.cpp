// The `mongodb` sink: events, the GPU catalog, the latest view and the cost windows in a
// MongoDB-compatible database (mongo::MongoStore), queried by the query API.

#include <memory>

#include "mongo/mongo_section.hpp"
#include "mongo/mongo_store.hpp"
#include "mongo/mongo_uri.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::sinks {
namespace {

class MongoProbe final : public SinkProbe {
 public:
  explicit MongoProbe(const Config& config)
      : ping_(config), interval_(config.integer("mongodb.check_interval_ms")) {}
  ProbeResult check() override { return ping_.check(); }
  std::chrono::milliseconds interval() const override { return interval_; }

 private:
  mongo::MongoPing ping_;
  std::chrono::milliseconds interval_;
};

const SinkRegistration kRegistration{{
    .name = "mongodb",
    .section = &mongo::mongodb_section(),
    .summary = "MongoDB or FerretDB: stores and serves queries and costs.",
    .create = [](const Config& config) -> std::unique_ptr<Store> {
      return std::make_unique<mongo::MongoStore>(mongo::MongoStoreSettings{
          mongo::connection_from(config), config.str("mongodb.database"),
          config.str("mongodb.write_concern"), config.integer("mongodb.ttl_days")});
    },
    .probe = [](const Config& config) -> std::unique_ptr<SinkProbe> {
      return std::make_unique<MongoProbe>(config);
    },
}};

}  // namespace
}  // namespace telemetryd::sinks
