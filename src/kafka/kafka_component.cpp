// The `kafka` component: the broker connection a role depends on. It owns the `kafka:` section
// and reports the brokers' reachability to /ready with a real metadata request.

#include <memory>

#include "core/dependency_probe.hpp"
#include "kafka/client_properties.hpp"
#include "kafka/kafka_handle.hpp"
#include "telemetryd/component.hpp"

namespace telemetryd::kafka {
namespace {

class KafkaComponent final : public Component {
 public:
  explicit KafkaComponent(ComponentContext& ctx)
      : handle_(
            make_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", ctx.config.str("kafka.brokers")},
                                            {"client.id", ctx.config.str("kafka.client_id")}})),
        timeout_ms_(static_cast<int>(ctx.config.integer("kafka.check_timeout_ms"))),
        probe_(ctx.io, ctx.blocking, ctx.readiness, ctx.metrics, "kafka",
               std::chrono::milliseconds(ctx.config.integer("kafka.check_interval_ms")),
               [this] { return check(); }) {}

  void start() override { probe_.start(); }
  void stop() override { probe_.stop(); }

 private:
  ProbeResult check() {
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(handle_.get(), 0, nullptr, &metadata, timeout_ms_);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return {false, std::string("metadata request failed: ") + rd_kafka_err2str(err)};
    }
    const int brokers = metadata->broker_cnt;
    rd_kafka_metadata_destroy(metadata);
    return {true, std::to_string(brokers) + " broker(s) reachable"};
  }

  HandlePtr handle_;
  int timeout_ms_;
  DependencyProbe probe_;
};

std::vector<KeySpec> kafka_keys() {
  std::vector<KeySpec> keys{
      {.name = "brokers",
       .description = "Bootstrap brokers, comma-separated host:port.",
       .default_value = "127.0.0.1:9092",
       .check = check_host_port_list,
       .hint = "host:port[,host:port...]"},
      {.name = "client_id",
       .description = "client.id sent to the brokers (appears in their logs and quotas).",
       .default_value = "telemetryd"},
      {.name = "check_interval_ms",
       .type = ValueType::kInt,
       .description = "How often /ready re-checks the brokers while they are reachable.",
       .default_value = "5000",
       .min = 100,
       .max = 300000},
      {.name = "check_timeout_ms",
       .type = ValueType::kInt,
       .description = "Timeout of one metadata request used as the readiness check.",
       .default_value = "3000",
       .min = 100,
       .max = 60000},
  };
  for (auto& key : kafka_client_keys()) keys.push_back(std::move(key));
  return keys;
}

const ComponentRegistration kRegistration{
    {"kafka",
     {"kafka", "Connection to the Kafka cluster, its security, and how producers deliver.",
      kafka_keys()},
     [](ComponentContext& ctx) { return std::make_unique<KafkaComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::kafka
