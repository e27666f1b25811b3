// The `influxdb` sink: GPU metrics and token usage as line protocol over HTTP(S)
// (influx::InfluxStore). Write-only: with InfluxDB alone the query routes answer 501 and nothing
// is priced.

#include <memory>
#include <mutex>

#include "influx/influx_config.hpp"
#include "influx/influx_store.hpp"
#include "influx/influx_writer.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::sinks {
namespace {

// GET /ping on its own connection, so a probe never waits behind a batch write.
class InfluxProbe final : public SinkProbe {
 public:
  explicit InfluxProbe(const Config& config)
      : writer_(influx::store_settings_from(config).writer),
        interval_(config.integer("influxdb.check_interval_ms")) {}

  ProbeResult check() override {
    const std::lock_guard lock(mutex_);  // the writer is single-threaded
    Result<influx::Reply> reply = writer_.get("/ping");
    if (!reply) return {false, reply.error().message};
    if (reply->status != 204 && reply->status != 200) {
      return {false, "/ping answered " + std::to_string(reply->status)};
    }
    return {true, "ping ok"};
  }
  std::chrono::milliseconds interval() const override { return interval_; }

 private:
  std::mutex mutex_;
  influx::InfluxWriter writer_;
  std::chrono::milliseconds interval_;
};

const SectionSpec& influxdb_section() {
  static const SectionSpec section{
      "influxdb",
      "InfluxDB the processor writes GPU metrics and token usage to, as line protocol over HTTP "
      "(processor.sinks: [influxdb], alone or beside a queryable sink).",
      influx::influx_keys()};
  return section;
}

const SinkRegistration kRegistration{{
    .name = "influxdb",
    .section = &influxdb_section(),
    .summary = "InfluxDB 1.x or 2.x: write-only.",
    .create = [](const Config& config) -> std::unique_ptr<Store> {
      return std::make_unique<influx::InfluxStore>(influx::store_settings_from(config));
    },
    .probe = [](const Config& config) -> std::unique_ptr<SinkProbe> {
      return std::make_unique<InfluxProbe>(config);
    },
    .check = influx::check_influx_config,
}};

}  // namespace
}  // namespace telemetryd::sinks
