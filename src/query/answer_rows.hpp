#pragma once
// One entry of /v1/usage and of /v1/gpus as the SQL sinks (SQLite, PostgreSQL) write them, so
// their answers keep the keys and order MongoStore's aggregation gives.

#include <cstdint>
#include <string_view>

#include "telemetryd/json_writer.hpp"

namespace telemetryd::query {

/// One group of /v1/usage: token sums and the priced `cost` block's sums.
struct UsageRow {
  std::string_view key;  // the model, tenant or deployment
  std::int64_t requests = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double cost_usd = 0;
  double cost_utilization_usd = 0;
  double cost_energy_usd = 0;
  double gpu_seconds = 0;
  double energy_j = 0;
  std::int64_t priced_requests = 0;
};

void write_usage_row(JsonWriter& json, const UsageRow& row);

/// One entry of the gpus catalog (its name is also its _id).
void write_gpu_entry(JsonWriter& json, std::string_view name, std::string_view model_name,
                     double price_per_hour_usd);

}  // namespace telemetryd::query
