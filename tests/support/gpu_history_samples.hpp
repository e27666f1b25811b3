#pragma once
// Known gpu_metrics samples and the exact history both stores must answer for them: the SQLite
// unit test and the MongoDB (FerretDB) integration test write the same events through
// Store::write and compare against the same JSON.

#include <chrono>
#include <string>
#include <vector>

#include "events/event_decoder.hpp"
#include "telemetryd/sink.hpp"

namespace test_support {

// 2026-12-04T10:00:00Z, a multiple of every step the tests use.
inline const std::chrono::system_clock::time_point kHistoryT0{std::chrono::seconds(1796378400)};

inline telemetryd::events::DecodedEvent history_event(const std::string& id,
                                                      const std::string& gpu_uuid,
                                                      std::chrono::milliseconds offset,
                                                      const std::string& fields) {
  telemetryd::events::DecodedEvent e;
  e.kind = telemetryd::events::EventKind::kGpuMetrics;
  e.id = id;
  e.source = "test";
  e.type = "gpu.metrics.v1";
  e.time = kHistoryT0 + offset;
  e.gpu_uuid = gpu_uuid;
  e.host = gpu_uuid == "GPU-hist-1" ? "node-a" : "node-b";
  e.model_name = gpu_uuid == "GPU-hist-1" ? "NVIDIA H100 80GB HBM3" : "NVIDIA A100-SXM4-40GB";
  e.data_json = "{\"gpu_uuid\":\"" + gpu_uuid + "\",\"host\":\"" + e.host + "\",\"model_name\":\"" +
                e.model_name + "\",\"collector\":\"synthetic\"" +
                (fields.empty() ? "" : "," + fields) + "}";
  return e;
}

// GPU-hist-1: three samples in [T0, T0+10s) (the first with GPM activity, the last without
// utilization_memory_percent), one in [T0+10s, T0+20s), one in [T0+30s, T0+40s), and one before
// T0 that a range from T0 leaves out. GPU-hist-2: one sample, the only one of its GPU.
inline std::vector<telemetryd::events::DecodedEvent> history_events() {
  using std::chrono::milliseconds;
  return {
      history_event("h-before", "GPU-hist-1", milliseconds(-500),
                    "\"utilization_gpu_percent\":99,\"memory_used_bytes\":1"),
      history_event("h-1", "GPU-hist-1", milliseconds(1000),
                    "\"utilization_gpu_percent\":10,\"utilization_memory_percent\":5,"
                    "\"memory_total_bytes\":80000000000,\"memory_used_bytes\":1000,"
                    "\"power_draw_watts\":100.5,\"temperature_gpu_celsius\":50,"
                    "\"clock_sm_mhz\":1000,\"activity\":{\"sm_active_percent\":40,"
                    "\"tensor_active_percent\":12.5}"),
      history_event("h-2", "GPU-hist-1", milliseconds(4000),
                    "\"utilization_gpu_percent\":20,\"utilization_memory_percent\":15,"
                    "\"memory_total_bytes\":80000000000,\"memory_used_bytes\":2000,"
                    "\"power_draw_watts\":200.5,\"temperature_gpu_celsius\":60,"
                    "\"clock_sm_mhz\":1200"),
      history_event("h-3", "GPU-hist-1", milliseconds(9999),
                    "\"utilization_gpu_percent\":60,"
                    "\"memory_total_bytes\":80000000000,\"memory_used_bytes\":60000000000,"
                    "\"power_draw_watts\":300.5,\"temperature_gpu_celsius\":70,"
                    "\"clock_sm_mhz\":1400"),
      history_event("h-4", "GPU-hist-1", milliseconds(10000),
                    "\"utilization_gpu_percent\":50,\"utilization_memory_percent\":25,"
                    "\"memory_total_bytes\":80000000000,\"memory_used_bytes\":4000,"
                    "\"power_draw_watts\":250.25,\"temperature_gpu_celsius\":65.5,"
                    "\"clock_sm_mhz\":1500"),
      history_event("h-5", "GPU-hist-1", milliseconds(35000),
                    "\"utilization_gpu_percent\":0,\"utilization_memory_percent\":0,"
                    "\"memory_total_bytes\":80000000000,\"memory_used_bytes\":0,"
                    "\"power_draw_watts\":60,\"temperature_gpu_celsius\":40,"
                    "\"clock_sm_mhz\":210"),
      history_event("h-other", "GPU-hist-2", milliseconds(2000),
                    "\"utilization_gpu_percent\":75,\"memory_used_bytes\":5,"
                    "\"power_draw_watts\":123.5,\"temperature_gpu_celsius\":45"),
  };
}

inline std::vector<telemetryd::StoredEvent> stored(
    const std::vector<telemetryd::events::DecodedEvent>& events) {
  std::vector<telemetryd::StoredEvent> batch;
  for (const auto& e : events) batch.push_back({&e});
  return batch;
}

// GPU-hist-1 over [T0, T0+1m) by 10 s.
inline telemetryd::query::SeriesQuery history_query() {
  return {"GPU-hist-1", kHistoryT0, kHistoryT0 + std::chrono::minutes(1), 10000};
}

inline const std::string kHistoryPointsJson =
    "[{\"ts\":\"2026-12-04T10:00:00.000Z\",\"samples\":3,"
    "\"utilization_gpu_percent\":{\"avg\":30,\"max\":60},"
    "\"utilization_memory_percent\":{\"avg\":10,\"max\":15},"
    "\"memory_used_bytes\":{\"avg\":20000001000,\"max\":60000000000},"
    "\"power_draw_watts\":{\"avg\":200.5,\"max\":300.5},"
    "\"temperature_gpu_celsius\":{\"avg\":60,\"max\":70},"
    "\"clock_sm_mhz\":{\"avg\":1200,\"max\":1400},"
    "\"activity\":{\"sm_active_percent\":{\"avg\":40,\"max\":40},"
    "\"tensor_active_percent\":{\"avg\":12.5,\"max\":12.5}}},"
    "{\"ts\":\"2026-12-04T10:00:10.000Z\",\"samples\":1,"
    "\"utilization_gpu_percent\":{\"avg\":50,\"max\":50},"
    "\"utilization_memory_percent\":{\"avg\":25,\"max\":25},"
    "\"memory_used_bytes\":{\"avg\":4000,\"max\":4000},"
    "\"power_draw_watts\":{\"avg\":250.25,\"max\":250.25},"
    "\"temperature_gpu_celsius\":{\"avg\":65.5,\"max\":65.5},"
    "\"clock_sm_mhz\":{\"avg\":1500,\"max\":1500}},"
    "{\"ts\":\"2026-12-04T10:00:30.000Z\",\"samples\":1,"
    "\"utilization_gpu_percent\":{\"avg\":0,\"max\":0},"
    "\"utilization_memory_percent\":{\"avg\":0,\"max\":0},"
    "\"memory_used_bytes\":{\"avg\":0,\"max\":0},"
    "\"power_draw_watts\":{\"avg\":60,\"max\":60},"
    "\"temperature_gpu_celsius\":{\"avg\":40,\"max\":40},"
    "\"clock_sm_mhz\":{\"avg\":210,\"max\":210}}]";

// The latest sample of each GPU, fields in kDeviceFields order.
inline const std::string kHistoryDevicesJson =
    "[{\"gpu_uuid\":\"GPU-hist-1\",\"host\":\"node-a\",\"model_name\":\"NVIDIA H100 80GB HBM3\","
    "\"ts\":\"2026-12-04T10:00:35.000Z\",\"utilization_gpu_percent\":0,"
    "\"utilization_memory_percent\":0,\"memory_used_bytes\":0,"
    "\"memory_total_bytes\":80000000000,\"power_draw_watts\":60,"
    "\"temperature_gpu_celsius\":40},"
    "{\"gpu_uuid\":\"GPU-hist-2\",\"host\":\"node-b\",\"model_name\":\"NVIDIA A100-SXM4-40GB\","
    "\"ts\":\"2026-12-04T10:00:02.000Z\",\"utilization_gpu_percent\":75,"
    "\"memory_used_bytes\":5,\"power_draw_watts\":123.5,\"temperature_gpu_celsius\":45}]";

}  // namespace test_support
