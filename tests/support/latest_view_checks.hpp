#pragma once
// The latest-sample-per-GPU view (docs: gpu_latest) as every queryable store must keep it: newest
// wins, so a redelivered, older or equally old sample never changes what /gpu/info and
// /v1/devices answer. The sink conformance suite (sink_conformance.hpp) runs these checks on
// every store that keeps the view, through Store::write and the query methods.

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "support/gpu_history_samples.hpp"
#include "telemetryd/sink.hpp"

namespace test_support {

// A sample of GPU-lv-1 (node-a) or GPU-lv-2 (node-b) at T0 + `seconds`, its id `id`.
inline telemetryd::events::DecodedEvent latest_view_event(const std::string& id,
                                                          const std::string& gpu_uuid, int seconds,
                                                          int utilization) {
  telemetryd::events::DecodedEvent e =
      history_event(id, gpu_uuid, std::chrono::seconds(seconds),
                    "\"utilization_gpu_percent\":" + std::to_string(utilization));
  e.host = gpu_uuid == "GPU-lv-1" ? "node-a" : "node-b";
  e.data_json = "{\"gpu_uuid\":\"" + gpu_uuid + "\",\"host\":\"" + e.host +
                "\",\"model_name\":\"NVIDIA H100 80GB HBM3\",\"utilization_gpu_percent\":" +
                std::to_string(utilization) + "}";
  return e;
}

// The _id of the sample /gpu/info answers for this filter, or "" when it answers none.
inline std::string latest_id(telemetryd::Store& store, const std::string& gpu_uuid,
                             const std::string& host = {}) {
  const auto json = store.latest_gpu_json({gpu_uuid, host});
  REQUIRE(json);
  const std::string& body = json.value();
  const std::string key = "\"_id\":\"";
  const auto at = body.find(key);
  if (at == std::string::npos) return {};
  const auto from = at + key.size();
  return body.substr(from, body.find('"', from) - from);
}

inline void write_events(telemetryd::Store& store,
                         const std::vector<telemetryd::events::DecodedEvent>& events) {
  const auto written = store.write(stored(events));
  INFO((written ? std::string() : written.error().message));
  REQUIRE(written);
}

// Writes through the view's cases one batch at a time and checks what it answers after each.
inline void check_latest_view_is_newest_wins(telemetryd::Store& store) {
  using telemetryd::events::DecodedEvent;
  CHECK(latest_id(store, "GPU-lv-1").empty());

  write_events(store, {latest_view_event("lv-10", "GPU-lv-1", 10, 10)});
  CHECK(latest_id(store, "GPU-lv-1") == "lv-10");

  write_events(store, {latest_view_event("lv-20", "GPU-lv-1", 20, 20)});
  CHECK(latest_id(store, "GPU-lv-1") == "lv-20");

  // An older sample arriving late is stored in the history, never in the view.
  write_events(store, {latest_view_event("lv-5", "GPU-lv-1", 5, 5)});
  CHECK(latest_id(store, "GPU-lv-1") == "lv-20");

  // A redelivery (same id) and another sample of the same time change nothing.
  const std::vector<telemetryd::events::DecodedEvent> redelivered{
      latest_view_event("lv-20", "GPU-lv-1", 20, 20)};
  const auto again = store.write(stored(redelivered));
  REQUIRE(again);
  CHECK(again.value().duplicates == 1);
  write_events(store, {latest_view_event("lv-20-tie", "GPU-lv-1", 20, 99)});
  CHECK(latest_id(store, "GPU-lv-1") == "lv-20");

  // One batch, newest first: the older one after it does not win.
  write_events(store, {latest_view_event("lv-40", "GPU-lv-1", 40, 40),
                       latest_view_event("lv-30", "GPU-lv-1", 30, 30),
                       latest_view_event("lv2-7", "GPU-lv-2", 7, 70)});
  CHECK(latest_id(store, "GPU-lv-1") == "lv-40");
  CHECK(latest_id(store, "GPU-lv-2") == "lv2-7");
  CHECK(latest_id(store, "", "node-b") == "lv2-7");
  CHECK(latest_id(store, "") == "lv-40");  // the newest of every GPU

  const auto devices = store.devices_json();
  REQUIRE(devices);
  CHECK(devices.value() ==
        "[{\"gpu_uuid\":\"GPU-lv-1\",\"host\":\"node-a\",\"model_name\":\"NVIDIA H100 80GB "
        "HBM3\",\"ts\":\"2026-12-04T10:00:40.000Z\",\"utilization_gpu_percent\":40},"
        "{\"gpu_uuid\":\"GPU-lv-2\",\"host\":\"node-b\",\"model_name\":\"NVIDIA H100 80GB "
        "HBM3\",\"ts\":\"2026-12-04T10:00:07.000Z\",\"utilization_gpu_percent\":70}]");
}

}  // namespace test_support
