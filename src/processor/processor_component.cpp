// The `processor` component: consumes gpu.metrics.v1 and token.usage.v1 at least once into
// MongoDB. kafka::ConsumerLoop gives the guarantees (offsets stored only for messages that are
// done, commit on revoke, pause and retry with backoff on a store outage); ProcessorCore is the
// stage it drives.

#include "kafka/consumer_loop.hpp"
#include "mongo/mongo_store.hpp"
#include "processor/cost_config.hpp"
#include "processor/kafka_dead_letters.hpp"
#include "processor/processor_core.hpp"
#include "processor/query_routes.hpp"
#include "processor/store_factory.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::processor {
namespace {

CoreSettings processor_settings(const Config& config) {
  CoreSettings s = core_settings_from(config, "processor");
  s.gpu_metrics_topic = config.str("processor.topics.gpu_metrics");
  s.token_usage_topic = config.str("processor.topics.token_usage");
  return s;
}

class ProcessorComponent final : public Component {
 public:
  explicit ProcessorComponent(ComponentContext& ctx)
      : prices_(price_catalog_from(ctx.config, "processor")),
        catalog_(catalog_from(ctx.config, "processor", prices_)),
        store_(make_processor_store(ctx.config)),
        dead_letters_(ctx.config, ctx.metrics, ctx.config.str("processor.dlq_suffix")),
        pricer_settings_(pricer_settings_from(ctx.config, "processor")),
        tenants_(pricer_settings_.tenants, pricer_settings_.tenant_series),
        core_(processor_settings(ctx.config), *store_, dead_letters_, ctx.metrics, tenants_),
        pricer_(pricer_settings_, *store_, prices_, ctx.metrics, tenants_),
        loop_(ctx.config, "processor", loop_settings(ctx.config), core_, ctx.readiness, ctx.metrics,
              ctx.request_shutdown, [this] { return prepare_store(); }) {
    add_query_routes(ctx.router, ctx.blocking, *store_, query_tokens_from(ctx.config, "processor"),
                     ctx.metrics);
  }

  void start() override {
    loop_.start();
    if (store_->supports_costs()) {
      pricer_.start();
    } else {
      log::warn("processor", "processor.store keeps no cost windows: usage is not priced",
                {{"store", "influxdb"}, {"fix", "processor.store: both (costs in MongoDB)"}});
    }
  }
  void stop() override {
    loop_.stop();
    pricer_.stop();
  }

 private:
  static kafka::ConsumerLoopSettings loop_settings(const Config& config) {
    kafka::ConsumerLoopSettings s = kafka::consumer_loop_settings(config, "processor");
    s.topics = {config.str("processor.topics.gpu_metrics"),
                config.str("processor.topics.token_usage")};
    return s;
  }

  Result<bool> prepare_store() {
    Result<bool> prepared = store_->prepare(catalog_);
    if (prepared) {
      log::info("processor", "gpu catalog stored", {{"gpu_profiles", catalog_.entries().size()}});
    }
    return prepared;
  }

  cost::PriceCatalog prices_;
  GpuCatalog catalog_;
  std::unique_ptr<Store> store_;  // processor.store: store_factory.cpp
  KafkaDeadLetters dead_letters_;
  PricerSettings pricer_settings_;
  TenantLabels tenants_;
  ProcessorCore core_;
  // Prices what the loop stored; stopped (joined) before the store goes.
  CostPricer pricer_;
  // Last: its destructor joins the consumer thread before the core and store go.
  kafka::ConsumerLoop loop_;
};

std::vector<KeySpec> processor_keys() {
  std::vector<KeySpec> keys{
      {.name = "topics.gpu_metrics",
       .description = "Topic of gpu.metrics.v1 events.",
       .default_value = "gpu.metrics.v1"},
      {.name = "topics.token_usage",
       .description = "Topic of token.usage.v1 events.",
       .default_value = "token.usage.v1"},
      {.name = "dlq_suffix",
       .description = "Invalid events go to <topic><suffix> with the reason in headers.",
       .default_value = ".dlq"},
  };
  for (auto& key : kafka::consumer_loop_keys("processor")) keys.push_back(std::move(key));
  for (auto& key : cost_keys()) keys.push_back(std::move(key));
  for (auto& key : store_keys()) keys.push_back(std::move(key));
  // A processor serves queries beyond this machine: a token by default.
  for (auto& key : query_keys("bearer")) keys.push_back(std::move(key));
  return keys;
}

// One consumer cannot subscribe to the same topic twice (librdkafka refuses the subscription and
// the processor would stop at start): the same name for both is a configuration error.
void check_processor_keys(const Config& config, KeyProblems& problems) {
  if (config.str("processor.topics.gpu_metrics") == config.str("processor.topics.token_usage")) {
    problems.add("processor.topics.token_usage",
                 "is the same topic as processor.topics.gpu_metrics",
                 "each event type needs its own topic");
  }
}

const ComponentRegistration kRegistration{
    {"processor",
     {"processor",
      "Consumes events, validates, stores in MongoDB and/or InfluxDB, prices tokens and serves "
      "queries.",
      processor_keys(), check_processor_keys},
     [](ComponentContext& ctx) { return std::make_unique<ProcessorComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::processor
