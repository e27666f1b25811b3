#include "query/answer_rows.hpp"

namespace telemetryd::query {

void write_usage_row(JsonWriter& json, const UsageRow& row) {
  json.begin_object()
      .key("_id")
      .value(row.key)
      .key("requests")
      .value(row.requests)
      .key("input_tokens")
      .value(row.input_tokens)
      .key("output_tokens")
      .value(row.output_tokens)
      .key("cost_usd")
      .value(row.cost_usd)
      .key("cost_utilization_usd")
      .value(row.cost_utilization_usd)
      .key("cost_energy_usd")
      .value(row.cost_energy_usd)
      .key("gpu_seconds")
      .value(row.gpu_seconds)
      .key("energy_j")
      .value(row.energy_j)
      .key("priced_requests")
      .value(row.priced_requests)
      .end_object();
}

void write_gpu_entry(JsonWriter& json, std::string_view name, std::string_view model_name,
                     double price_per_hour_usd) {
  json.begin_object()
      .key("_id")
      .value(name)
      .key("name")
      .value(name)
      .key("model_name")
      .value(model_name)
      .key("price_per_hour_usd")
      .value(price_per_hour_usd)
      .end_object();
}

}  // namespace telemetryd::query
