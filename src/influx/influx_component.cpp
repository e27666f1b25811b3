// The `influxdb` component: owns the `influxdb:` section and, when processor.store writes to
// InfluxDB, reports the server's reachability to /ready (GET /ping on its own connection, so a
// probe never waits behind a batch write). With processor.store: mongodb it does nothing.

#include <memory>
#include <mutex>

#include "core/dependency_probe.hpp"
#include "influx/influx_config.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::influx {
namespace {

class InfluxComponent final : public Component {
 public:
  explicit InfluxComponent(ComponentContext& ctx) {
    if (!influx_in_use(ctx.config)) return;
    writer_ = std::make_unique<InfluxWriter>(store_settings_from(ctx.config).writer);
    probe_ = std::make_unique<DependencyProbe>(
        ctx.io, ctx.blocking, ctx.readiness, ctx.metrics, "influxdb",
        std::chrono::milliseconds(ctx.config.integer("influxdb.check_interval_ms")),
        [this] { return check(); });
  }

  void start() override {
    if (probe_) probe_->start();
  }
  void stop() override {
    if (probe_) probe_->stop();
  }

 private:
  ProbeResult check() {
    const std::lock_guard lock(mutex_);  // the writer is single-threaded
    Result<Reply> reply = writer_->get("/ping");
    if (!reply) return {false, reply.error().message};
    if (reply->status != 204 && reply->status != 200) {
      return {false, "/ping answered " + std::to_string(reply->status)};
    }
    return {true, "ping ok"};
  }

  std::mutex mutex_;
  std::unique_ptr<InfluxWriter> writer_;
  std::unique_ptr<DependencyProbe> probe_;
};

const ComponentRegistration kRegistration{
    {"influxdb",
     {"influxdb",
      "InfluxDB the processor writes GPU metrics and token usage to, as line protocol over HTTP "
      "(processor.store: influxdb or both).",
      influx_keys()},
     [](ComponentContext& ctx) { return std::make_unique<InfluxComponent>(ctx); },
     nullptr,
     check_influx_config}};

}  // namespace
}  // namespace telemetryd::influx
