// The `worker` component: consumes gpu.metadata.v1 from `gpu-metadata` at least once into
// MongoDB: every event in gpu_metadata (_id = event id), and each device's newest observation in
// gpu_devices (_id = gpu_uuid). kafka::ConsumerLoop gives the processor's guarantees (offsets
// stored only once done, commit on revoke, pause and retry on a store outage); WorkerCore is the
// stage it drives. A second sink that must acknowledge before offsets commit (the S3 archive)
// joins as another core::BatchStage next to core_, both behind one core::FanOutStage.

#include "kafka/consumer_loop.hpp"
#include "processor/kafka_dead_letters.hpp"
#include "telemetryd/component.hpp"
#include "worker/mongo_metadata_store.hpp"
#include "worker/worker_core.hpp"

namespace telemetryd::worker {
namespace {

class WorkerComponent final : public Component {
 public:
  explicit WorkerComponent(ComponentContext& ctx)
      : store_({ctx.config.str("mongodb.uri"), ctx.config.str("mongodb.database"),
                ctx.config.str("mongodb.write_concern")}),
        dead_letters_(ctx.config, ctx.metrics, ctx.config.str("worker.dlq_suffix")),
        core_({.topic = ctx.config.str("worker.topic")}, store_, dead_letters_, ctx.metrics),
        loop_(ctx.config, "worker", loop_settings(ctx.config), core_, ctx.readiness, ctx.metrics,
              ctx.request_shutdown, [this] { return store_.prepare(); }) {}

  void start() override { loop_.start(); }
  void stop() override { loop_.stop(); }

 private:
  static kafka::ConsumerLoopSettings loop_settings(const Config& config) {
    kafka::ConsumerLoopSettings s = kafka::consumer_loop_settings(config, "worker");
    s.topics = {config.str("worker.topic")};
    return s;
  }

  MongoMetadataStore store_;
  processor::KafkaDeadLetters dead_letters_;
  WorkerCore core_;
  // Last: its destructor joins the consumer thread before the core and store go.
  kafka::ConsumerLoop loop_;
};

std::vector<KeySpec> worker_keys() {
  std::vector<KeySpec> keys{
      {.name = "topic",
       .description = "Topic of gpu.metadata.v1 events.",
       .default_value = "gpu-metadata"},
      {.name = "dlq_suffix",
       .description = "Invalid events go to <topic><suffix> with the reason in headers.",
       .default_value = ".dlq"},
  };
  for (auto& key : kafka::consumer_loop_keys("edge-worker")) keys.push_back(std::move(key));
  return keys;
}

const ComponentRegistration kRegistration{
    {"worker",
     {"worker",
      "Consumes GPU metadata events and keeps them in MongoDB: the log of every event "
      "(gpu_metadata) and each device's newest state (gpu_devices).",
      worker_keys()},
     [](ComponentContext& ctx) { return std::make_unique<WorkerComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::worker
