#pragma once
// The processor's latest-sample-per-GPU view in MongoDB: gpu_latest holds one document per GPU,
// {_id: gpu_uuid, ts, host, doc: <the gpu_metrics document>}, replaced only by a newer sample
// (newest wins), so a redelivered or late sample never changes it. MongoStore::write keeps it
// in the same batch as the samples; /gpu/info and /v1/devices read it instead of sorting the
// history, so they cost one document per GPU whatever the history holds.

#include <mongoc/mongoc.h>

#include <cstdint>
#include <string>
#include <vector>

#include "telemetryd/result.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::mongo {

inline constexpr const char* kLatestCollection = "gpu_latest";

/// One GPU's newest sample of a batch: the stored gpu_metrics document and what keys it.
struct ViewUpdate {
  std::string gpu_uuid;
  std::int64_t ts_ms = 0;
  std::string host;
  const bson_t* document = nullptr;
};

/// Makes each sample its GPU's view document unless the view already holds one as new or newer:
/// one bulk of conditional upserts, plus one read and one more bulk only when some are refused
/// (an older or equal sample, or another writer creating the GPU's document at the same time).
Result<bool> upsert_latest(mongoc_client_t* client, const std::string& database,
                           const std::vector<ViewUpdate>& samples);

/// Fills an empty view from gpu_metrics (a database from before the view): one pass over the
/// samples' gpu_uuid and ts, then each GPU's newest document by _id. A view that holds anything
/// is left as it is.
Result<bool> backfill_latest(mongoc_client_t* client, const std::string& database);

/// Every GPU's view document as a latest sample (its stored sample's JSON, and the kDeviceFields
/// of it as one /v1/devices entry), in gpu_uuid order.
Result<std::vector<query::LatestSample>> latest_samples_of(mongoc_client_t* client,
                                                           const std::string& database);

}  // namespace telemetryd::mongo
