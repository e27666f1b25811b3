// The `processor` component: consumes gpu.metrics.v1 and token.usage.v1 at least once into
// MongoDB. kafka::ConsumerLoop gives the guarantees (offsets stored only for messages that are
// done, commit on revoke, pause and retry with backoff on a store outage); ProcessorCore is the
// stage it drives.

#include "core/dependency_probe.hpp"
#include "kafka/consumer_loop.hpp"
#include "processor/cost_config.hpp"
#include "processor/processor_core.hpp"
#include "processor/query_routes.hpp"
#include "sinks/kafka_dead_letters.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/sink.hpp"

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
        store_(SinkRegistry::build(ctx.config)),
        dead_letters_(ctx.config, ctx.metrics, ctx.config.str("processor.dlq_suffix")),
        pricer_settings_(pricer_settings_from(ctx.config, "processor")),
        tenants_(pricer_settings_.tenants, pricer_settings_.tenant_series),
        core_(processor_settings(ctx.config), *store_, dead_letters_, ctx.metrics, tenants_),
        pricer_(pricer_settings_, *store_, prices_, ctx.metrics, tenants_),
        loop_(ctx.config, "processor", loop_settings(ctx.config), core_, ctx.readiness, ctx.metrics,
              ctx.request_shutdown, [this] { return prepare_store(); }) {
    add_query_routes(ctx.router, ctx.blocking, *store_, query_tokens_from(ctx.config, "processor"),
                     ctx.metrics);
    // /ready waits for the servers of the sinks in use, and for no other.
    for (const auto& name : SinkRegistry::in_use(ctx.config)) {
      const SinkInfo* info = SinkRegistry::instance().find(name);
      if (info == nullptr || !info->probe) continue;
      SinkProbe& probe = *sink_probes_.emplace_back(info->probe(ctx.config));
      probes_.push_back(std::make_unique<DependencyProbe>(ctx.io, ctx.blocking, ctx.readiness,
                                                          ctx.metrics, name, probe.interval(),
                                                          [&probe] { return probe.check(); }));
    }
  }

  void start() override {
    for (auto& probe : probes_) probe->start();
    loop_.start();
    if (store_->supports_costs()) {
      pricer_.start();
    } else {
      log::warn("processor", "no sink in use keeps cost windows: usage is not priced",
                {{"fix", "add a sink that serves queries to processor.sinks, e.g. mongodb"}});
    }
  }
  void stop() override {
    loop_.stop();
    pricer_.stop();
    for (auto& probe : probes_) probe->stop();
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
  events::GpuCatalog catalog_;
  std::unique_ptr<Store> store_;  // processor.sinks: SinkRegistry::build
  sinks::KafkaDeadLetters dead_letters_;
  PricerSettings pricer_settings_;
  TenantLabels tenants_;
  ProcessorCore core_;
  // Prices what the loop stored; stopped (joined) before the store goes.
  CostPricer pricer_;
  std::vector<std::unique_ptr<SinkProbe>> sink_probes_;
  std::vector<std::unique_ptr<DependencyProbe>> probes_;  // after what their checks use
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
  for (auto& key : SinkRegistry::keys()) keys.push_back(std::move(key));
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
      "Consumes events, validates, stores them in its sinks (processor.sinks), prices tokens and "
      "serves queries.",
      processor_keys(), check_processor_keys},
     [](ComponentContext& ctx) { return std::make_unique<ProcessorComponent>(ctx); },
     // Every sink's section is valid in the processor role; only those in use are checked.
     [] { return SinkRegistry::instance().sections(); },
     SinkRegistry::check}};

}  // namespace
}  // namespace telemetryd::processor
