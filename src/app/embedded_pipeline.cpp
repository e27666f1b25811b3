// The `embedded` component of the `all` role: a source thread feeds a bounded in-process queue,
// and a processor thread validates and stores into one SQLite file, whose cost windows a pricer
// thread prices (docs/cost.md), serving the same query API as the processor. No Kafka and no
// MongoDB, so a newcomer sees the whole pipeline move with one command.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <thread>

#include "core/batch_driver.hpp"
#include "core/bounded_queue.hpp"
#include "core/emission_schedule.hpp"
#include "metrics/gpu_exporter.hpp"
#include "processor/cost_config.hpp"
#include "processor/processor_core.hpp"
#include "processor/query_routes.hpp"
#include "sqlite/retention_task.hpp"
#include "sqlite/sqlite_store.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/source.hpp"

namespace telemetryd::app {
namespace {

using namespace std::chrono_literals;

std::string database_path(const Config& config) {
  const std::filesystem::path dir = config.str("embedded.data_dir");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw StartupError("embedded.data_dir: cannot create " + dir.string() + ": " + ec.message());
  return (dir / "telemetryd.sqlite3").string();
}

sqlite::RetentionSettings retention_from(const Config& config,
                                         const processor::PricerSettings& pricer) {
  sqlite::RetentionSettings s;
  s.max_age_ms = config.integer("embedded.retention_days") * 86400 * 1000;
  s.max_bytes = config.integer("embedded.max_size_mb") * 1024 * 1024;
  s.lookback_ms = pricer.model.window_ms;
  s.placement_ttl_ms = pricer.model.placement_ttl_ms;
  return s;
}

// The queue side of a core::BatchDriver: events arrive from the queue (in-process offsets), a
// pause needs nothing (while the driver retries, nobody pops and the full queue holds the source
// back), and a wait is a sleep.
class EmbeddedPipeline final : public Component, public EventInlet, private core::BatchInput {
 public:
  explicit EmbeddedPipeline(ComponentContext& ctx)
      : readiness_(ctx.readiness),
        request_shutdown_(ctx.request_shutdown),
        source_(SourceRegistry::instance()
                    .find(ctx.config.str("embedded.source"))
                    ->create(ctx.config, Topics{})),
        gpu_exporter_(metrics::export_gpu_samples(*source_, ctx.config, ctx.metrics)),
        rate_(ctx.config.number("embedded.rate")),
        queue_(static_cast<std::size_t>(ctx.config.integer("embedded.queue_capacity"))),
        queue_capacity_(ctx.config.integer("embedded.queue_capacity")),
        store_(database_path(ctx.config)),
        prices_(processor::price_catalog_from(ctx.config, "embedded")),
        catalog_(processor::catalog_from(ctx.config, "embedded", prices_)),
        pricer_settings_(processor::pricer_settings_from(ctx.config, "embedded")),
        tenants_(pricer_settings_.tenants, pricer_settings_.tenant_series),
        core_(processor::core_settings_from(ctx.config, "embedded"), store_, store_, ctx.metrics,
              tenants_),
        pricer_(pricer_settings_, store_, prices_, ctx.metrics, tenants_),
        retention_(store_, retention_from(ctx.config, pricer_settings_), ctx.metrics),
        driver_({.name = "embedded",
                 .ready_reason = "running",
                 .batch_size = static_cast<std::size_t>(ctx.config.integer("embedded.batch_size")),
                 .batch_timeout = 200ms,
                 .backoff_initial = 200ms,
                 .backoff_max = 5000ms},
                core_, *this, ctx.readiness),
        queue_depth_(
            ctx.metrics.gauge("embedded_queue_depth", "Events waiting in the in-process queue.")
                .with({})) {
    readiness_.declare("embedded", "starting");
    ctx.inlet.provide([this]() -> EventInlet& { return *this; });
    processor::add_query_routes(ctx.router, ctx.blocking, store_,
                                processor::query_tokens_from(ctx.config, "embedded"), ctx.metrics);
    if (auto prepared = store_.prepare(catalog_); !prepared) {
      throw StartupError("embedded: cannot prepare the database: " + prepared.error().message);
    }
  }

  ~EmbeddedPipeline() override {
    stop();
    retention_.stop();
    pricer_.stop();
    if (source_thread_.joinable()) source_thread_.join();
    if (processor_thread_.joinable()) processor_thread_.join();
  }

  void start() override {
    source_thread_ = std::thread([this] { run_source(); });
    processor_thread_ = std::thread([this] { run_processor(); });
    pricer_.start();
    retention_.start();
    readiness_.set("embedded", true, "running");
  }

  void stop() override {
    stopping_ = true;
    queue_.close();
  }

  // Receivers' events join the source's in the queue. Accepted means queued: the processor
  // thread stores it within a batch interval, and the drain stores what is queued at SIGTERM.
  boost::asio::awaitable<std::vector<Delivery>> publish(const std::vector<Event>& events) override {
    std::vector<Event> copies = events;
    const bool queued = !stopping_ && queue_.try_push_all(copies);
    std::vector<Delivery> results(events.size());
    for (auto& result : results) {
      result.ok = queued;
      if (!queued) result.error = stopping_ ? "stopping" : "queue_full";
    }
    co_return results;
  }
  std::int64_t in_flight() const override { return static_cast<std::int64_t>(queue_.size()); }
  std::int64_t capacity() const override { return queue_capacity_; }
  std::string token_usage_topic() const override { return kTokenUsageTopic; }

 private:
  void run_source() {
    EmissionSchedule schedule(rate_, source_->interval());
    std::uint64_t produced = 0;
    std::vector<Event> events;
    while (!stopping_) {
      if (!schedule.paced()) {
        const auto due = schedule.next_tick();
        while (!stopping_ && std::chrono::steady_clock::now() < due) {
          std::this_thread::sleep_for(20ms);
        }
      }
      events.clear();
      std::string error;
      if (!source_->sample(events, error)) {
        log::warn("embedded", "source problem", {{"error", error}});
        std::this_thread::sleep_for(100ms);
        continue;
      }
      for (auto& event : events) {
        if (schedule.paced()) {
          const auto due = schedule.event_due(produced);
          while (!stopping_ && std::chrono::steady_clock::now() < due) {
            std::this_thread::sleep_for(1ms);
          }
        }
        if (!queue_.push(std::move(event))) return;  // closed: stopping
        ++produced;
      }
    }
  }

  void run_processor() {
    std::int64_t offset = 0;
    for (;;) {
      std::optional<Event> event = queue_.pop(100ms);
      if (event) {
        const processor::IncomingMessage message{event->topic, 0, offset++, event->key,
                                                 event->payload};
        // False only when the dead-letter table refused the insert: retry, never drop.
        while (!core_.accept(message)) std::this_thread::sleep_for(100ms);
      } else if (stopping_) {
        break;
      }
      queue_depth_.Set(static_cast<double>(queue_.size()));
      if (driver_.due()) driver_.flush_until_done();
    }
    // What is queued here exists nowhere else: a few more tries before giving up.
    if (!driver_.final_flush(4)) {
      log::error("embedded", "stopping with events not stored", {{"pending", core_.pending()}});
      request_shutdown_(1);
    }
  }

  // core::BatchInput, for driver_ (on the processor thread).
  void commit(const core::DoneOffsets&) override {}  // offsets are numbered in-process
  void set_paused(bool) override {}
  void wait(std::chrono::milliseconds duration) override {
    const auto until = std::chrono::steady_clock::now() + duration;
    while (!stopping_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(20ms);
    }
  }
  bool stopping() const override { return stopping_; }

  Readiness& readiness_;
  std::function<void(int)> request_shutdown_;
  std::unique_ptr<Source> source_;
  // Fed by source_ on the sampling thread, which the destructor joins first.
  std::unique_ptr<metrics::GpuExporter> gpu_exporter_;
  double rate_;
  BoundedQueue<Event> queue_;
  std::int64_t queue_capacity_;
  sqlite::SqliteStore store_;
  cost::PriceCatalog prices_;
  events::GpuCatalog catalog_;
  processor::PricerSettings pricer_settings_;
  processor::TenantLabels tenants_;
  processor::ProcessorCore core_;
  processor::CostPricer pricer_;
  sqlite::RetentionTask retention_;
  core::BatchDriver driver_;
  metrics::Gauge& queue_depth_;
  std::atomic<bool> stopping_{false};
  std::thread source_thread_;
  std::thread processor_thread_;
};

std::vector<KeySpec> embedded_keys() {
  std::vector<KeySpec> keys{
      {.name = "data_dir",
       .description = "Folder of the SQLite database (telemetryd.sqlite3); created if missing.",
       .default_value = "data"},
      {.name = "source",
       .description = "Where events come from: synthetic (simulated fleet) or nvml (real GPUs).",
       .default_value = "synthetic",
       .check = SourceRegistry::check_name},
      {.name = "rate",
       .type = ValueType::kDouble,
       .description = "Events per second; 0 samples in real time at the source's interval.",
       .default_value = "0",
       .min = 0,
       .max = 10000000},
      {.name = "queue_capacity",
       .type = ValueType::kInt,
       .description = "Events the in-process queue holds before the source waits.",
       .default_value = "10000",
       .min = 1,
       .max = 10000000},
      {.name = "batch_size",
       .type = ValueType::kInt,
       .description = "Events per database transaction.",
       .default_value = "500",
       .min = 1,
       .max = 100000},
      // Days, as mongodb.ttl_days says the same of the processor's store.
      {.name = "retention_days",
       .type = ValueType::kInt,
       .description = "Delete events (and their cost windows) older than this, in small "
                      "batches once a minute; 0 keeps them.",
       .default_value = "7",
       .min = 0,
       .max = 36500},
      {.name = "max_size_mb",
       .type = ValueType::kInt,
       .description = "Delete the oldest events while the database holds more than this "
                      "(never the last hour nor unpriced cost windows); 0 for no bound.",
       .default_value = "1024",
       .min = 0,
       .max = 16777216},
  };
  for (auto& key : processor::cost_keys()) keys.push_back(std::move(key));
  // The all role is the first try on one machine (config/roles/all.yaml listens on loopback):
  // no token by default, and a warning when it listens wider (docs/security.md).
  for (auto& key : processor::query_keys("none")) keys.push_back(std::move(key));
  return keys;
}

const ComponentRegistration kRegistration{
    {"embedded",
     {"embedded", "Source, processor and SQLite store in one process (the all role).",
      embedded_keys()},
     [](ComponentContext& ctx) { return std::make_unique<EmbeddedPipeline>(ctx); },
     [] {
       auto sections = SourceRegistry::instance().sections();
       sections.push_back(&metrics::gpu_metrics_section());
       return sections;
     }}};

}  // namespace
}  // namespace telemetryd::app
