#pragma once
// Usage rollups in MongoDB (query/usage_rollup.hpp, docs/cost.md "Usage rollups"):
// usage_minutes holds one document per (minute, model, tenant_id, deployment) with the sums
// /v1/usage answers, usage_hours the same per hour (summed from its minutes), usage_marks one
// document per minute changed since it was last rolled up ({_id: minute ms, marked_at, nonce}).
// FerretDB 1.24 has no multi-document transactions, so order gives safety: a writer marks a minute
// before it changes the minute's requests or costs, and a roll-up clears a mark only after the
// minute's rows and then its hour's are written, and only the mark it read (same nonce). A crash in
// between leaves a mark: one more roll-up, never a stale minute that an answer trusts.

#include <mongoc/mongoc.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "query/usage_rollup.hpp"
#include "telemetryd/result.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::mongo {

// Where MongoStore keeps the cost of each usage document (docs/cost.md): one document per usage
// document, same _id, with its ts, window, model, tenant and deployment and the `cost` block.
inline constexpr const char* kCostCollection = "token_usage_costs";
inline constexpr const char* kUsageMinutesCollection = "usage_minutes";
inline constexpr const char* kUsageHoursCollection = "usage_hours";
inline constexpr const char* kUsageMarksCollection = "usage_marks";
// Small one-time facts about the database, by _id (so far only kRollupsInitialized).
inline constexpr const char* kMetaCollection = "telemetryd_meta";

/// Marks the minutes holding these times (duplicates merged): one bulk of upserts, marked_at now
/// and one fresh nonce, so a minute marked again while it is rolled up keeps its mark.
Result<bool> mark_usage_minutes(mongoc_client_t* client, const std::string& database,
                                const std::vector<std::int64_t>& times_ms);

/// Once per database (a marker in kMetaCollection): a database from before the rollups, whose
/// usage_minutes and usage_marks are empty while token_usage is not, gets every minute holding
/// token usage marked, so the roll-ups fill it and answers stay whole meanwhile.
Result<bool> initialize_usage_rollups(mongoc_client_t* client, const std::string& database);

/// Store::roll_up_usage: the marks of up to `limit` minutes marked at or before
/// `marked_before_ms`, oldest minute first, rolled up together.
Result<std::size_t> roll_up_usage_minutes(mongoc_client_t* client, const std::string& database,
                                          std::int64_t marked_before_ms, std::size_t limit);

/// Store::usage_minutes and usage_hours: the rows starting in [from, to), by start, model,
/// tenant_id, deployment.
Result<std::vector<query::UsageRollupRow>> stored_usage_rows(mongoc_client_t* client,
                                                             const std::string& database,
                                                             bool hours, std::int64_t from_ms,
                                                             std::int64_t to_ms);

/// Store::marked_usage_minutes: every marked minute, ascending.
Result<std::vector<std::int64_t>> marked_minutes(mongoc_client_t* client,
                                                 const std::string& database);

/// Store::usage_json: as query::plan_usage_reads splits the range, the hour rows of its whole
/// hours without a marked minute, the minute rows of its other unmarked whole minutes, and the
/// requests of its partial edges and marked minutes, merged per group.
Result<std::string> usage_answer(mongoc_client_t* client, const std::string& database,
                                 const UsageQuery& query);

}  // namespace telemetryd::mongo
