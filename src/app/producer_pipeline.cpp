// The `producer` component: a source (synthetic or nvml) feeding the Kafka sink on a thread of
// its own, so pacing and backpressure never stall the HTTP listener on the io thread.
// producer.rate > 0 paces events per second; 0 samples in real time at the source's interval.
// producer.count > 0 stops after exactly that many events are delivered.

#include <atomic>
#include <cmath>
#include <thread>

#include "core/emission_schedule.hpp"
#include "metrics/gpu_exporter.hpp"
#include "sinks/kafka_sink.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/source.hpp"

namespace telemetryd::app {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ProducerPipeline final : public Component {
 public:
  explicit ProducerPipeline(ComponentContext& ctx)
      : source_name_(ctx.config.str("producer.source")),
        source_(make_source(ctx.config)),
        gpu_exporter_(metrics::export_gpu_samples(*source_, ctx.config, ctx.metrics)),
        sink_(ctx.config, ctx.metrics, [this](const sinks::DeliveryReport& r) { on_delivery(r); }),
        rate_(ctx.config.number("producer.rate")),
        count_(static_cast<std::uint64_t>(ctx.config.integer("producer.count"))),
        flush_timeout_(ctx.config.integer("daemon.shutdown_timeout_ms")),
        request_shutdown_(ctx.request_shutdown),
        generated_(
            ctx.metrics
                .counter("producer_events_generated_total", "Events a source produced.", {"source"})
                .with({source_name_})),
        source_errors_(ctx.metrics
                           .counter("producer_source_errors_total",
                                    "Ticks in which a source reported a problem.", {"source"})
                           .with({source_name_})) {}

  ~ProducerPipeline() override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void start() override {
    log::info("producer", "starting",
              {{"source", source_name_}, {"rate", rate_}, {"count", count_}});
    thread_ = std::thread([this] { run(); });
  }
  void stop() override { stopping_ = true; }

 private:
  static std::unique_ptr<Source> make_source(const Config& config) {
    Topics topics{config.str("producer.topics.gpu_metrics"),
                  config.str("producer.topics.token_usage")};
    return SourceRegistry::instance().find(config.str("producer.source"))->create(config, topics);
  }

  void on_delivery(const sinks::DeliveryReport& report) {
    if (report.ok) {
      ++delivered_;
      return;
    }
    ++failed_;
    if (failed_ <= 10 || failed_ % 1000 == 0) {
      log::error("producer", "delivery failed",
                 {{"topic", report.topic},
                  {"error", rd_kafka_err2str(report.error)},
                  {"failed_total", failed_}});
    }
  }

  bool done_with_count() const { return count_ > 0 && delivered_ + failed_ >= count_; }

  // Waits until `until`, serving delivery reports meanwhile.
  void wait_until(Clock::time_point until) {
    while (!stopping_) {
      const auto now = Clock::now();
      if (now >= until) return;
      sink_.poll(std::min(std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + 1ms,
                          std::chrono::milliseconds(100)));
    }
  }

  void run() {
    std::vector<Event> pending;
    std::size_t next = 0;
    std::uint64_t produced = 0;
    std::uint64_t payload_bytes = 0;
    EmissionSchedule schedule(rate_, source_->interval());
    int exit_code = 0;
    while (!stopping_) {
      if (count_ > 0 && produced >= count_) {
        if (done_with_count()) break;
        sink_.poll(100ms);
        continue;
      }
      if (next == pending.size()) {
        pending.clear();
        next = 0;
        if (!schedule.paced()) {
          wait_until(schedule.next_tick());
          if (stopping_) break;
        }
        std::string error;
        const bool ok = source_->sample(pending, error);
        if (!error.empty()) {
          source_errors_.Increment();
          log::warn("producer", "source problem", {{"source", source_name_}, {"error", error}});
        }
        if (!ok) {
          sink_.poll(100ms);
          continue;
        }
        generated_.Increment(static_cast<double>(pending.size()));
        if (pending.empty()) continue;
      }
      if (schedule.paced()) {
        wait_until(schedule.event_due(produced));
        if (stopping_) break;
      }
      std::string error;
      if (!sink_.produce(pending[next], stopping_, error)) {
        if (stopping_) break;
        if (const std::string fatal = sink_.fatal_error(); !fatal.empty()) {
          log::error("producer", "fatal Kafka error, stopping", {{"error", fatal}});
          exit_code = 1;
          break;
        }
        log::error("producer", "event not accepted", {{"error", error}, {"id", pending[next].id}});
        ++failed_;
        ++next;
        ++produced;
        continue;
      }
      payload_bytes += pending[next].payload.size();
      ++next;
      ++produced;
      if ((produced & 255) == 0) sink_.poll(0ms);
    }

    const bool count_reached = count_ > 0 && produced >= count_;
    const int undelivered = sink_.flush(flush_timeout_);
    log::write(undelivered == 0 && failed_ == 0 ? log::Level::kInfo : log::Level::kError,
               "producer", "stopped",
               {{"produced", produced},
                {"delivered", delivered_},
                {"failed", failed_},
                {"undelivered", undelivered},
                {"payload_bytes", payload_bytes}});
    if (count_reached || exit_code != 0) {
      request_shutdown_(exit_code != 0 || failed_ > 0 || undelivered > 0 ? 1 : 0);
    }
  }

  std::string source_name_;
  std::unique_ptr<Source> source_;
  // Fed by source_ on the sampling thread, which the destructor joins first.
  std::unique_ptr<metrics::GpuExporter> gpu_exporter_;
  sinks::KafkaSink sink_;
  double rate_;
  std::uint64_t count_;
  std::chrono::milliseconds flush_timeout_;
  std::function<void(int)> request_shutdown_;
  metrics::Counter& generated_;
  metrics::Counter& source_errors_;
  std::atomic<bool> stopping_{false};
  // Only touched on the pipeline thread (delivery reports are served by its own polls).
  std::uint64_t delivered_ = 0;
  std::uint64_t failed_ = 0;
  std::thread thread_;
};

const ComponentRegistration kRegistration{
    {"producer",
     {"producer",
      "Emits GPU metric and token usage events from a source to Kafka.",
      {
          {.name = "source",
           .description =
               "Where events come from: synthetic (simulated fleet) or nvml (real GPUs).",
           .default_value = "synthetic",
           .check = SourceRegistry::check_name},
          {.name = "rate",
           .type = ValueType::kDouble,
           .description = "Events per second across both topics; 0 samples in real time at the "
                          "source's interval.",
           .default_value = "0",
           .min = 0,
           .max = 10000000},
          {.name = "count",
           .type = ValueType::kInt,
           .description = "Stop after this many events are delivered and exit 0 (0: run until "
                          "stopped). Also `run --count N`.",
           .default_value = "0",
           .min = 0},
          {.name = "topics.gpu_metrics",
           .description = "Topic for io.telemetryd.gpu.metrics.v1 events.",
           .default_value = "gpu.metrics.v1"},
          {.name = "topics.token_usage",
           .description = "Topic for io.telemetryd.token.usage.v1 events.",
           .default_value = "token.usage.v1"},
      }},
     [](ComponentContext& ctx) { return std::make_unique<ProducerPipeline>(ctx); },
     [] {
       auto sections = SourceRegistry::instance().sections();
       sections.push_back(&metrics::gpu_metrics_section());
       return sections;
     }}};

}  // namespace
}  // namespace telemetryd::app
