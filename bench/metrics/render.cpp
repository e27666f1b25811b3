// Times /metrics rendering (Registry::expose()) for the series a processor exposes: 24 partitions
// of consumer lag, store error codes, token and cost counters by model and tenant, the HTTP
// listener's routes and a few histograms. Prints the text size and the mean time per render.
//
// It uses only Registry::counter/gauge/histogram, with() and the metric's increment, so the same
// file builds against the hand-written registry that preceded prometheus-cpp (see bump()) and the
// before/after numbers come from one benchmark.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "telemetryd/metrics.hpp"

namespace {

using namespace telemetryd;

// prometheus-cpp's Increment/Set/Observe, or inc/set/observe of the registry before it.
template <typename Metric>
void bump(Metric& m, double v) {
  if constexpr (requires { m.Increment(v); }) {
    m.Increment(v);
  } else {
    m.inc(v);
  }
}
template <typename Metric>
void put(Metric& m, double v) {
  if constexpr (requires { m.Set(v); }) {
    m.Set(v);
  } else {
    m.set(v);
  }
}
template <typename Metric>
void record(Metric& m, double v) {
  if constexpr (requires { m.Observe(v); }) {
    m.Observe(v);
  } else {
    m.observe(v);
  }
}

void register_processor_series(metrics::Registry& r) {
  auto& lag = r.gauge("processor_kafka_consumer_lag", "Messages behind.", {"topic", "partition"});
  auto& lag_s = r.gauge("processor_kafka_consumer_lag_seconds", "Age.", {"topic", "partition"});
  for (int p = 0; p < 24; ++p) {
    put(lag.with({"gpu.metrics.v1", std::to_string(p)}), 1000 + p);
    put(lag_s.with({"gpu.metrics.v1", std::to_string(p)}), 0.5 * p);
  }
  auto& consumed = r.counter("processor_messages_consumed_total", "Received.", {"topic"});
  auto& invalid = r.counter("processor_invalid_events_total", "Invalid.", {"topic", "reason"});
  auto& dead = r.counter("processor_dead_letters_total", "Dead letters.", {"topic", "stage"});
  for (const char* topic : {"gpu.metrics.v1", "token.usage.v1"}) {
    bump(consumed.with({topic}), 123456789);
    for (const char* reason : {"schema", "json", "time", "unknown_type"}) {
      bump(invalid.with({topic, reason}), 17);
    }
    for (const char* stage : {"decode", "store"}) bump(dead.with({topic, stage}), 3);
  }
  auto& errors = r.counter("processor_store_errors_total", "Store errors.", {"code", "class"});
  for (const char* code : {"11000", "50", "91", "189", "262", "6", "7", "89", "unknown"}) {
    bump(errors.with({code, "retryable"}), 2);
  }
  auto& writes = r.counter("processor_db_writes_total", "Inserted.", {"collection"});
  bump(writes.with({"gpu_metrics"}), 98765432);
  bump(writes.with({"token_usage"}), 1234567);
  auto& tokens = r.counter("processor_token_usage_tokens_total", "Tokens.", {"model"});
  auto& cost = r.counter("processor_cost_usd_total", "Cost.", {"model", "basis"});
  for (int m = 0; m < 10; ++m) {
    const std::string model = "model-" + std::to_string(m);
    bump(tokens.with({model}), 1e9 + m);
    for (const char* basis : {"amortized", "utilization", "energy"}) {
      bump(cost.with({model, basis}), 12.25 * m);
    }
  }
  auto& tenant = r.counter("processor_tenant_tokens_total", "Tokens by tenant.", {"tenant"});
  for (int t = 0; t < 20; ++t) bump(tenant.with({"tenant-" + std::to_string(t)}), 4242 * t);
  auto& requests = r.counter("http_requests_total", "Requests.", {"route", "method", "code"});
  auto& duration = r.histogram("http_request_duration_seconds", "Duration.", {"route"});
  for (const char* route : {"/health", "/ready", "/metrics", "/v1/usage", "/v1/costs"}) {
    bump(requests.with({route, "GET", "200"}), 1000);
    bump(requests.with({route, "GET", "503"}), 3);
    for (int i = 0; i < 100; ++i) record(duration.with({route}), 0.0001 * i);
  }
  auto& write = r.histogram("processor_batch_write_duration_seconds", "Write.").with({});
  auto& e2e = r.histogram("processor_end_to_end_latency_seconds", "E2E.", {},
                          {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})
                  .with({});
  for (int i = 0; i < 1000; ++i) {
    record(write, 0.001 * i);
    record(e2e, 0.01 * i);
  }
  put(r.gauge("processor_in_flight", "In flight.").with({}), 512);
  bump(r.counter("processor_duplicates_total", "Duplicates.").with({}), 99);
  metrics::register_process_metrics(r, "0.0.0");
}

}  // namespace

// Arguments: the number of renders (default 2000), or `print` to write one exposition to stdout.
int main(int argc, char** argv) {
  metrics::Registry registry;
  register_processor_series(registry);
  if (argc > 1 && std::string(argv[1]) == "print") {
    std::fputs(registry.expose().c_str(), stdout);
    return 0;
  }
  const int renders = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::size_t bytes = registry.expose().size();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  for (int i = 0; i < renders; ++i) bytes = registry.expose().size();
  // CPU time as well as wall time: on the shared development machine the wall time includes
  // waiting for a core.
  const double cpu_us =
      1e6 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC / renders;
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      renders;
  std::printf("renders=%d bytes=%zu us_per_render=%.1f cpu_us_per_render=%.1f\n", renders, bytes,
              us, cpu_us);

  // What a caller pays that looks its series up per event rather than keeping the reference.
  auto& consumed = registry.counter("processor_messages_consumed_total", "Received.", {"topic"});
  auto& errors =
      registry.counter("processor_store_errors_total", "Store errors.", {"code", "class"});
  auto& held = consumed.with({"gpu.metrics.v1"});
  const int events = 200000;
  const auto time_ns = [&](auto&& one) {  // CPU time
    const std::clock_t t0 = std::clock();
    for (int i = 0; i < events; ++i) one();
    return 1e9 * static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC / events;
  };
  const double held_ns = time_ns([&] { bump(held, 1); });
  const double one_label_ns = time_ns([&] { bump(consumed.with({"gpu.metrics.v1"}), 1); });
  const double two_labels_ns = time_ns([&] { bump(errors.with({"11000", "retryable"}), 1); });
  std::printf("cpu_ns_per_inc: held=%.1f with_1_label=%.1f with_2_labels=%.1f\n", held_ns,
              one_label_ns, two_labels_ns);
  return 0;
}
