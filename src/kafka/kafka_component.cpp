// The `kafka` component: the broker connection a role depends on. It owns the `kafka:` section
// and reports the brokers' reachability to /ready with a real metadata request, made with the
// same connection and security settings as the role's producers and consumers (a probe without
// TLS or SASL could never pass against a TLS broker, or would pass against the wrong listener).

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <mutex>

#include "core/dependency_probe.hpp"
#include "kafka/client_properties.hpp"
#include "kafka/kafka_handle.hpp"
#include "telemetryd/component.hpp"

namespace telemetryd::kafka {
namespace {

class KafkaComponent final : public Component {
 public:
  explicit KafkaComponent(ComponentContext& ctx)
      : handle_(make_probe_handle(ctx.config)),
        timeout_ms_(static_cast<int>(ctx.config.integer("kafka.check_timeout_ms"))),
        probe_(ctx.io, ctx.blocking, ctx.readiness, ctx.metrics, "kafka",
               std::chrono::milliseconds(ctx.config.integer("kafka.check_interval_ms")),
               [this] { return check(); }) {}

  void start() override { probe_.start(); }
  void stop() override { probe_.stop(); }

 private:
  HandlePtr make_probe_handle(const Config& config) {
    rd_kafka_conf_t* conf = make_conf(client_properties(config));
    rd_kafka_conf_set_opaque(conf, this);
    return make_handle_from_conf(RD_KAFKA_PRODUCER, conf, &KafkaComponent::on_error);
  }

  // A failed metadata request only says "transport failure" or "timed out"; the cause (TLS
  // handshake, authentication) arrives here, served by rd_kafka_poll in check().
  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    log_client_error(err, reason);
    // "all brokers down" follows every cause and would hide it.
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) return;
    auto* self = static_cast<KafkaComponent*>(opaque);
    const std::lock_guard lock(self->mutex_);
    self->last_error_ = reason;
  }

  ProbeResult check() {
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(handle_.get(), 0, nullptr, &metadata, timeout_ms_);
    // Serves the error callbacks queued meanwhile (nothing else polls this handle, and unserved
    // events would pile up while the brokers are down). Not under mutex_: on_error takes it.
    rd_kafka_poll(handle_.get(), 0);
    const std::lock_guard lock(mutex_);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string detail = std::string("metadata request failed: ") + rd_kafka_err2str(err);
      if (!last_error_.empty()) detail += "; last error: " + last_error_;
      return {false, detail};
    }
    last_error_.clear();
    const int brokers = metadata->broker_cnt;
    rd_kafka_metadata_destroy(metadata);
    return {true, std::to_string(brokers) + " broker(s) reachable"};
  }

  std::mutex mutex_;
  std::string last_error_;  // guarded by mutex_
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
      kafka_keys(), check_kafka_client_keys},
     [](ComponentContext& ctx) { return std::make_unique<KafkaComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::kafka
