// The `mongodb` component: the worker's connection to MongoDB. It owns the `mongodb:` section
// (mongo_section.cpp, shared with the processor's `mongodb` sink) and reports the server's
// reachability to /ready with a real `ping` command.

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>

#include "core/dependency_probe.hpp"
#include "mongo/mongo_section.hpp"
#include "telemetryd/component.hpp"

namespace telemetryd::mongo {
namespace {

class MongoComponent final : public Component {
 public:
  explicit MongoComponent(ComponentContext& ctx)
      : ping_(ctx.config),
        probe_(ctx.io, ctx.blocking, ctx.readiness, ctx.metrics, "mongodb",
               std::chrono::milliseconds(ctx.config.integer("mongodb.check_interval_ms")),
               [this] { return ping_.check(); }) {}

  void start() override { probe_.start(); }
  void stop() override { probe_.stop(); }

 private:
  MongoPing ping_;
  DependencyProbe probe_;
};

const ComponentRegistration kRegistration{{"mongodb", mongodb_section(), [](ComponentContext& ctx) {
                                             return std::make_unique<MongoComponent>(ctx);
                                           }}};

}  // namespace
}  // namespace telemetryd::mongo
