// The `worker` component: consumes gpu.metadata.v1 from `gpu-metadata` at least once into
// MongoDB: every event in gpu_metadata (_id = event id), and each device's newest observation in
// gpu_devices (_id = gpu_uuid). kafka::ConsumerLoop gives the processor's guarantees (offsets
// stored only once done, commit on revoke, pause and retry on a store outage); WorkerCore is the
// stage it drives. With `archive.enabled`, the S3 (or filesystem) archive is a second stage next
// to core_, both behind one core::FanOutStage, so offsets commit only below archived events.

#include "archive/archive_config.hpp"
#include "archive/archive_stage.hpp"
#include "core/dependency_probe.hpp"
#include "core/fan_out_stage.hpp"
#include "kafka/consumer_loop.hpp"
#include "mongo/mongo_uri.hpp"
#include "sinks/kafka_dead_letters.hpp"
#include "telemetryd/component.hpp"
#include "worker/mongo_metadata_store.hpp"
#include "worker/worker_core.hpp"

namespace telemetryd::worker {
namespace {

class WorkerComponent final : public Component {
 public:
  explicit WorkerComponent(ComponentContext& ctx)
      : store_({mongo::connection_from(ctx.config), ctx.config.str("mongodb.database"),
                ctx.config.str("mongodb.write_concern")}),
        dead_letters_(ctx.config, ctx.metrics, ctx.config.str("worker.dlq_suffix")),
        core_({.topic = ctx.config.str("worker.topic")}, store_, dead_letters_, ctx.metrics),
        loop_(ctx.config, "worker", loop_settings(ctx.config), stage(ctx), ctx.readiness,
              ctx.metrics, ctx.request_shutdown, [this] { return store_.prepare(); }) {}

  void start() override {
    if (archive_probe_) archive_probe_->start();
    loop_.start();
  }
  void stop() override {
    if (archive_probe_) archive_probe_->stop();
    loop_.stop();
  }

 private:
  static kafka::ConsumerLoopSettings loop_settings(const Config& config) {
    kafka::ConsumerLoopSettings s = kafka::consumer_loop_settings(config, "worker");
    s.topics = {config.str("worker.topic")};
    return s;
  }

  // The MongoDB writes alone, or beside the archive: offsets then commit only below events both
  // have acknowledged.
  core::BatchStage& stage(ComponentContext& ctx) {
    if (!archive::archive_enabled(ctx.config)) return core_;
    archive_store_ = archive::make_archive_store(ctx.config);
    batcher_ = std::make_unique<archive::ArchiveBatcher>(archive::batcher_settings(ctx.config),
                                                         *archive_store_);
    archive_stage_ = std::make_unique<archive::ArchiveStage>(*batcher_, ctx.metrics);
    // /ready shows whether the store answers (a one-key listing) before any event needs it; the
    // probe has its own client, as it runs on the blocking pool beside the consumer thread.
    probe_store_ = archive::make_archive_store(ctx.config);
    archive_probe_ = std::make_unique<DependencyProbe>(
        ctx.io, ctx.blocking, ctx.readiness, ctx.metrics, "archive", std::chrono::seconds(10),
        [this, prefix = ctx.config.str("archive.prefix")] {
          Result<archive::ListPage> listed = probe_store_->list(prefix, "", 1);
          if (!listed) return ProbeResult{false, "archive store: " + listed.error().message};
          return ProbeResult{true, probe_store_->describe() + " reachable"};
        });
    fan_out_ = std::make_unique<core::FanOutStage>(
        std::vector<core::BatchStage*>{&core_, archive_stage_.get()});
    return *fan_out_;
  }

  MongoMetadataStore store_;
  sinks::KafkaDeadLetters dead_letters_;
  WorkerCore core_;
  std::unique_ptr<archive::ArchiveStore> archive_store_;
  std::unique_ptr<archive::ArchiveBatcher> batcher_;
  std::unique_ptr<archive::ArchiveStage> archive_stage_;
  std::unique_ptr<core::FanOutStage> fan_out_;
  std::unique_ptr<archive::ArchiveStore> probe_store_;
  std::unique_ptr<DependencyProbe> archive_probe_;
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
     [](ComponentContext& ctx) { return std::make_unique<WorkerComponent>(ctx); },
     [] { return std::vector<const SectionSpec*>{&archive::archive_section()}; }}};

}  // namespace
}  // namespace telemetryd::worker
