#pragma once
// Events for the store tests, as the decoder hands them to a store: version-7 ids by number,
// CloudEvents of gpu.metrics.v1 and token.usage.v1 at a given time, decoded, and batched as
// StoredEvents. Header-only: it REQUIREs, so it lives with Catch2.

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <variant>
#include <vector>

#include "cost/cost_model.hpp"
#include "events/event_decoder.hpp"
#include "telemetryd/sink.hpp"
#include "telemetryd/time_format.hpp"

namespace test_support::store_events {

using telemetryd::rfc3339_utc;
using telemetryd::StoredEvent;
using telemetryd::events::decode_event;
using telemetryd::events::DecodedEvent;
using telemetryd::events::DecodeResult;

// A version-7 UUID per number, as the decoder requires.
inline std::string event_id(int n) {
  char tail[13];
  std::snprintf(tail, sizeof tail, "%012x", n);
  return std::string("01930000-0000-7000-8000-") + tail;
}

inline std::string envelope(int n, const char* type, std::int64_t time_ms,
                            const std::string& data) {
  const auto time = std::chrono::system_clock::time_point(std::chrono::milliseconds(time_ms));
  return R"({"specversion":"1.0","id":")" + event_id(n) +
         R"(","source":"//test/store","type":"io.telemetryd.)" + type + R"(","time":")" +
         rfc3339_utc(time) + R"(","data":)" + data + "}";
}

inline std::string gpu_json(int n, std::int64_t time_ms, const std::string& uuid,
                            const std::string& host, const std::string& model_name,
                            const std::string& fields) {
  return envelope(n, "gpu.metrics.v1", time_ms,
                  R"({"gpu_uuid":")" + uuid + R"(","host":")" + host + R"(","model_name":")" +
                      model_name + R"(","collector":"synthetic")" +
                      (fields.empty() ? "" : "," + fields) + "}");
}

inline std::string usage_json_event(int n, std::int64_t time_ms, const std::string& model,
                                    const std::string& tenant, std::int64_t input,
                                    std::int64_t output, const std::string& fields) {
  return envelope(n, "token.usage.v1", time_ms,
                  R"({"model":")" + model + R"(","tenant_id":")" + tenant +
                      R"(","usage":{"input_tokens":)" + std::to_string(input) +
                      R"(,"output_tokens":)" + std::to_string(output) + "}" +
                      (fields.empty() ? "" : "," + fields) + "}");
}

inline std::vector<DecodedEvent> decode_all(const std::vector<std::string>& lines) {
  simdjson::dom::parser parser;
  std::vector<DecodedEvent> out;
  for (const auto& line : lines) {
    DecodeResult result = decode_event(line, parser);
    INFO(line);
    REQUIRE(std::holds_alternative<DecodedEvent>(result));
    out.push_back(std::get<DecodedEvent>(std::move(result)));
  }
  return out;
}

inline std::vector<StoredEvent> batch_of(const std::vector<DecodedEvent>& events) {
  std::vector<StoredEvent> batch;
  for (const auto& e : events) batch.push_back({&e});
  return batch;
}

// A priced cost of one usage document (model m1, tenant t1, deployment d1, 5 s into the window
// that starts at `start`): amortised `usd`, utilisation usd / 2, energy usd / 4.
inline telemetryd::cost::UsageCost usage_cost(const std::string& id, std::int64_t start,
                                              double usd) {
  namespace cost = telemetryd::cost;
  cost::UsageCost c;
  c.id = id;
  c.time_ms = start + 5000;  // the usage document's time, as price_window copies it
  c.model = "m1";
  c.tenant_id = "t1";
  c.deployment = "d1";
  c.window_start_ms = start;
  c.window_s = 60;
  c.basis = "output";
  c.tokens = 30;
  c.tokens_in_window = 30;
  c.placement = "configured";
  c.gpus = {"GPU-A"};
  c.gpu_model = "H100";
  c.price_per_hour_usd = 2.49;
  c.energy_price_usd_per_kwh = 0.12;
  c.gpu_seconds = 12;
  c.energy_j = 3000;
  c.amortized_usd = usd;
  c.utilization_usd = usd / 2;
  c.energy_usd = usd / 4;
  return c;
}

}  // namespace test_support::store_events
