#include "mongo/mongo_usage_rollup.hpp"

// libbson declares bson_t 128-byte aligned; vectors of bson_t pointers drop that attribute from
// the template argument, which is harmless for pointers.
#pragma GCC diagnostic ignored "-Wignored-attributes"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "cost/cost_model.hpp"
#include "mongo/bson_fields.hpp"
#include "mongo/bson_ptr.hpp"
#include "mongo/collection.hpp"
#include "mongo/find_each.hpp"
#include "mongo/mongo_errors.hpp"
#include "mongo/upsert_bulk.hpp"
#include "query/answer_rows.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::mongo {

namespace {

using query::kRollupMinuteMs;
using query::UsageRollupRow;
using Range = std::pair<std::int64_t, std::int64_t>;  // [from, to) in ms
using Tenants = std::optional<std::vector<std::string>>;
using RowKey = std::tuple<std::int64_t, std::string, std::string, std::string>;
using Rows = std::map<RowKey, UsageRollupRow>;  // by start, model, tenant_id, deployment

// One of the two rollups: its collection and the field holding a row's start.
struct Rollup {
  const char* collection;
  const char* start;
};
constexpr Rollup kMinutes{kUsageMinutesCollection, "minute"};
constexpr Rollup kHours{kUsageHoursCollection, "hour"};

constexpr const char* kRollupsInitialized = "usage_rollups_initialized";
// Documents per insert_many: a whole pass of rows or marks in one call could exceed what a
// reply may report, and a smaller unit keeps a refused chunk's fallback small.
constexpr std::size_t kChunk = 1000;

std::int64_t now_ms() {
  return unix_ms(std::chrono::system_clock::now());
}

void append_string(bson_t* doc, const char* key, const std::string& value) {
  bson_append_utf8(doc, key, -1, value.data(), static_cast<int>(value.size()));
}

// {field: {$in: [values]}} (an empty list matches nothing).
template <typename Values, typename Append>
void append_in(bson_t* filter, const char* field, const Values& values, Append&& append) {
  bson_t condition, list;
  BSON_APPEND_DOCUMENT_BEGIN(filter, field, &condition);
  BSON_APPEND_ARRAY_BEGIN(&condition, "$in", &list);
  std::size_t index = 0;
  for (const auto& value : values) append(&list, std::to_string(index++), value);
  bson_append_array_end(&condition, &list);
  bson_append_document_end(filter, &condition);
}

void append_tenants(bson_t* filter, const Tenants& tenants) {
  if (!tenants) return;
  append_in(filter, "tenant_id", *tenants,
            [](bson_t* list, const std::string& key, const std::string& tenant) {
              append_string(list, key.c_str(), tenant);
            });
}

void append_minutes(bson_t* filter, const char* field, const std::vector<std::int64_t>& minutes) {
  append_in(filter, field, minutes, [](bson_t* list, const std::string& key, std::int64_t m) {
    BSON_APPEND_INT64(list, key.c_str(), m);
  });
}

// Sorted, overlapping and touching ranges merged: each is one read of the requests.
std::vector<Range> coalesced(std::vector<Range> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<Range> out;
  for (const Range& r : ranges) {
    if (!out.empty() && r.first <= out.back().second) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<Range> minute_ranges(const std::vector<std::int64_t>& minutes) {
  std::vector<Range> ranges;
  for (const std::int64_t m : minutes) {
    const bool last = m > std::numeric_limits<std::int64_t>::max() - kRollupMinuteMs;
    ranges.emplace_back(m, last ? std::numeric_limits<std::int64_t>::max() : m + kRollupMinuteMs);
  }
  return coalesced(std::move(ranges));
}

UsageRollupRow& row_of(Rows& rows, const bson_t* doc) {
  RowKey key{query::minute_of(date_at(doc, "ts")), utf8_at(doc, "model"), utf8_at(doc, "tenant_id"),
             utf8_at(doc, "deployment")};
  auto [it, added] = rows.try_emplace(key);
  if (added) {
    UsageRollupRow& row = it->second;
    std::tie(row.start_ms, row.model, row.tenant_id, row.deployment) = std::move(key);
  }
  return it->second;
}

// Adds the requests stored in [from, to) (only those of `tenants` when given) to their rows:
// the sums usage_json made on the server before the rollups, from the same documents. Requests
// and tokens from token_usage, with the cost.amount_usd that the previous release wrote on the
// usage documents; the costs and priced requests from the cost documents, by their own model,
// tenant and deployment (the usage document's). Summed here rather than by $group: FerretDB 1.24
// answers 0 for every accumulator of a $group after the first one, and has no date arithmetic
// to group by minute.
Result<bool> add_requests(mongoc_client_t* client, const std::string& database, Range range,
                          const Tenants& tenants, Rows& rows) {
  const BsonPtr filter = ts_range(range.first, range.second);
  append_tenants(filter.get(), tenants);
  const BsonPtr usage_opts =
      projection_of({"ts", "model", "tenant_id", "deployment", "usage", "cost"}, false);
  const Collection usage(client, database, "token_usage");
  Result<bool> read =
      for_each_found(usage.get(), filter.get(), usage_opts.get(), [&](const bson_t* doc) {
        UsageRollupRow& row = row_of(rows, doc);
        ++row.requests;
        row.input_tokens += int64_at(doc, "usage.input_tokens").value_or(0);
        row.output_tokens += int64_at(doc, "usage.output_tokens").value_or(0);
        row.cost_usd += double_at(doc, "cost.amount_usd").value_or(0);
      });
  if (!read) return read;
  const BsonPtr cost_opts =
      projection_of({"ts", "model", "tenant_id", "deployment", "cost"}, false);
  const Collection costs(client, database, kCostCollection);
  return for_each_found(costs.get(), filter.get(), cost_opts.get(), [&](const bson_t* doc) {
    UsageRollupRow& row = row_of(rows, doc);
    // Priced: the amortised cost is a number (a cost of exactly 0 may be stored as an int32).
    const std::optional<double> amortized = double_at(doc, "cost.amortized_usd");
    if (amortized) ++row.priced_requests;
    row.cost_usd += amortized.value_or(0);
    row.cost_utilization_usd += double_at(doc, "cost.utilization_usd").value_or(0);
    row.cost_energy_usd += double_at(doc, "cost.energy_usd").value_or(0);
    row.gpu_seconds += double_at(doc, "cost.gpu_seconds").value_or(0);
    row.energy_j += double_at(doc, "cost.energy_j").value_or(0);
  });
}

// ---- usage_minutes documents ----

// Deterministic from the four keys, each string length-prefixed so that no two keys share an
// _id whatever characters they hold.
std::string row_id(const UsageRollupRow& row) {
  std::string id = std::to_string(row.start_ms);
  for (const std::string* part : {&row.model, &row.tenant_id, &row.deployment}) {
    id += '/' + std::to_string(part->size()) + ':' + *part;
  }
  return id;
}

// `ts` (the minute as a date) is what the TTL index expires a row by, with its requests.
BsonPtr row_document(const Rollup& rollup, const UsageRollupRow& row) {
  BsonPtr doc(bson_new());
  append_string(doc.get(), "_id", row_id(row));
  BSON_APPEND_INT64(doc.get(), rollup.start, row.start_ms);
  BSON_APPEND_DATE_TIME(doc.get(), "ts", row.start_ms);
  append_string(doc.get(), "model", row.model);
  append_string(doc.get(), "tenant_id", row.tenant_id);
  append_string(doc.get(), "deployment", row.deployment);
  BSON_APPEND_INT64(doc.get(), "requests", row.requests);
  BSON_APPEND_INT64(doc.get(), "input_tokens", row.input_tokens);
  BSON_APPEND_INT64(doc.get(), "output_tokens", row.output_tokens);
  BSON_APPEND_DOUBLE(doc.get(), "cost_usd", row.cost_usd);
  BSON_APPEND_DOUBLE(doc.get(), "cost_utilization_usd", row.cost_utilization_usd);
  BSON_APPEND_DOUBLE(doc.get(), "cost_energy_usd", row.cost_energy_usd);
  BSON_APPEND_DOUBLE(doc.get(), "gpu_seconds", row.gpu_seconds);
  BSON_APPEND_DOUBLE(doc.get(), "energy_j", row.energy_j);
  BSON_APPEND_INT64(doc.get(), "priced_requests", row.priced_requests);
  return doc;
}

UsageRollupRow row_from(const Rollup& rollup, const bson_t* doc) {
  UsageRollupRow row;
  row.start_ms = int64_at(doc, rollup.start).value_or(0);
  row.model = utf8_at(doc, "model");
  row.tenant_id = utf8_at(doc, "tenant_id");
  row.deployment = utf8_at(doc, "deployment");
  row.requests = int64_at(doc, "requests").value_or(0);
  row.input_tokens = int64_at(doc, "input_tokens").value_or(0);
  row.output_tokens = int64_at(doc, "output_tokens").value_or(0);
  row.cost_usd = double_at(doc, "cost_usd").value_or(0);
  row.cost_utilization_usd = double_at(doc, "cost_utilization_usd").value_or(0);
  row.cost_energy_usd = double_at(doc, "cost_energy_usd").value_or(0);
  row.gpu_seconds = double_at(doc, "gpu_seconds").value_or(0);
  row.energy_j = double_at(doc, "energy_j").value_or(0);
  row.priced_requests = int64_at(doc, "priced_requests").value_or(0);
  return row;
}

// The stored rows starting in [from, to), of `tenants` when given, in no particular order.
Result<std::vector<UsageRollupRow>> read_rows(mongoc_client_t* client, const std::string& database,
                                              const Rollup& rollup, Range range,
                                              const Tenants& tenants) {
  BsonPtr filter(BCON_NEW(rollup.start, "{", "$gte", BCON_INT64(range.first), "$lt",
                          BCON_INT64(range.second), "}"));
  append_tenants(filter.get(), tenants);
  std::vector<UsageRollupRow> rows;
  const Collection collection(client, database, rollup.collection);
  Result<bool> read =
      for_each_found(collection.get(), filter.get(), nullptr,
                     [&](const bson_t* doc) { rows.push_back(row_from(rollup, doc)); });
  if (!read) return read.error();
  return rows;
}

Result<bool> deleted_many(mongoc_collection_t* collection, const bson_t* filter) {
  bson_t reply;
  bson_error_t error;
  const bool ok = mongoc_collection_delete_many(collection, filter, nullptr, &reply, &error);
  const bool concern_failed = ok && has_write_concern_error(&reply);
  bson_destroy(&reply);
  if (!ok) return classify(error);
  if (concern_failed) return Error::retryable("write concern not satisfied deleting");
  return true;
}

// Unordered inserts of `docs` (in chunks): the write errors of the first chunk that has any.
Result<std::vector<WriteError>> insert_all(mongoc_collection_t* collection,
                                           const std::vector<BsonPtr>& docs, std::size_t from,
                                           std::size_t to) {
  std::vector<const bson_t*> pointers;
  for (std::size_t i = from; i < to; ++i) pointers.push_back(docs[i].get());
  const BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(false)));
  bson_t reply;
  bson_error_t error;
  const bool ok = mongoc_collection_insert_many(collection, pointers.data(), pointers.size(),
                                                opts.get(), &reply, &error);
  std::vector<WriteError> errors = write_errors(&reply);
  const bool concern_failed = has_write_concern_error(&reply);
  bson_destroy(&reply);
  if (concern_failed) return Error::retryable("write concern not satisfied inserting");
  if (!ok && !only_write_errors(error, errors)) return classify(error);
  return errors;
}

// The rows of these minutes (or hours) replaced: one delete_many, then inserts (not upserts:
// FerretDB 1.24 scans the whole collection for each update statement, docs/cost.md). A duplicate
// key means another roll-up of the same minutes wrote between our delete and insert, so which rows
// won is unknown: false, and the marks stay so that the minutes are rolled again (not an error:
// with one roll-up per processor this is a race, not a failing store).
Result<bool> replace_rows(mongoc_client_t* client, const std::string& database,
                          const Rollup& rollup, const std::vector<std::int64_t>& starts,
                          const Rows& rows) {
  const Collection collection(client, database, rollup.collection);
  BsonPtr filter(bson_new());
  append_minutes(filter.get(), rollup.start, starts);
  if (auto deleted = deleted_many(collection.get(), filter.get()); !deleted) return deleted;
  std::vector<BsonPtr> docs;
  for (const auto& [key, row] : rows) docs.push_back(row_document(rollup, row));
  for (std::size_t from = 0; from < docs.size(); from += kChunk) {
    auto errors = insert_all(collection.get(), docs, from, std::min(docs.size(), from + kChunk));
    if (!errors) return errors.error();
    if (errors.value().empty()) continue;
    const WriteError& first = errors.value().front();
    if (first.code == kDuplicateKey) return false;
    return classify_write_error(first.code, std::string("usage ") + rollup.start +
                                                " not written, code " + std::to_string(first.code) +
                                                ": " + first.message);
  }
  return true;
}

// The rows of these hours recomputed from their minutes' rows, as the minutes now are.
Result<bool> roll_up_hours(mongoc_client_t* client, const std::string& database,
                           const std::set<std::int64_t>& hours) {
  Rows rows;
  for (const std::int64_t hour : hours) {
    Result<std::vector<UsageRollupRow>> minutes =
        read_rows(client, database, kMinutes, {hour, hour + query::kRollupHourMs}, std::nullopt);
    if (!minutes) return minutes.error();
    for (const UsageRollupRow& minute : minutes.value()) {
      const RowKey key{hour, minute.model, minute.tenant_id, minute.deployment};
      auto [it, added] = rows.try_emplace(key);
      UsageRollupRow& row = it->second;
      if (added) std::tie(row.start_ms, row.model, row.tenant_id, row.deployment) = key;
      query::add_sums(row, minute);
    }
  }
  return replace_rows(client, database, kHours, {hours.begin(), hours.end()}, rows);
}

// ---- usage_marks ----

struct Mark {
  std::int64_t minute = 0;
  std::int64_t nonce = 0;
};

Result<std::vector<Mark>> due_marks(mongoc_client_t* client, const std::string& database,
                                    std::int64_t marked_before_ms, std::size_t limit) {
  const BsonPtr filter(BCON_NEW("marked_at", "{", "$lte", BCON_INT64(marked_before_ms), "}"));
  const BsonPtr opts(BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit",
                              BCON_INT64(static_cast<std::int64_t>(limit))));
  std::vector<Mark> marks;
  const Collection collection(client, database, kUsageMarksCollection);
  Result<bool> read =
      for_each_found(collection.get(), filter.get(), opts.get(), [&](const bson_t* doc) {
        const auto minute = int64_at(doc, "_id");
        if (!minute) return;
        marks.push_back({*minute, int64_at(doc, "nonce").value_or(0)});
      });
  if (!read) return read.error();
  return marks;
}

// The marked minutes in [from, to).
Result<std::set<std::int64_t>> marks_in(mongoc_client_t* client, const std::string& database,
                                        Range range) {
  const BsonPtr filter(
      BCON_NEW("_id", "{", "$gte", BCON_INT64(range.first), "$lt", BCON_INT64(range.second), "}"));
  const BsonPtr opts = projection_of({"_id"}, true);
  std::set<std::int64_t> minutes;
  const Collection collection(client, database, kUsageMarksCollection);
  Result<bool> read =
      for_each_found(collection.get(), filter.get(), opts.get(), [&](const bson_t* doc) {
        if (const auto minute = int64_at(doc, "_id")) minutes.insert(*minute);
      });
  if (!read) return read.error();
  return minutes;
}

Result<bool> holds_any(mongoc_client_t* client, const std::string& database, const char* name,
                       const bson_t* filter) {
  const BsonPtr opts(
      BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64(1)));
  bool found = false;
  const Collection collection(client, database, name);
  Result<bool> read =
      for_each_found(collection.get(), filter, opts.get(), [&](const bson_t*) { found = true; });
  if (!read) return read;
  return found;
}

// Deletes each mark that was read, only while it holds the nonce read: a minute marked again
// meanwhile keeps its mark and is rolled again. One delete per mark, to tell which were not
// deleted. A mark already gone means that another roll-up of the same minute, running at once
// (one per processor), cleared it after it wrote its rows, which may be newer than ours and
// which ours may have replaced: the minute is marked again, so that it is rolled once more.
Result<bool> clear_marks(mongoc_client_t* client, const std::string& database,
                         const std::vector<Mark>& marks) {
  std::vector<std::int64_t> superseded;
  const Collection collection(client, database, kUsageMarksCollection);
  for (const Mark& mark : marks) {
    const BsonPtr selector(
        BCON_NEW("_id", BCON_INT64(mark.minute), "nonce", BCON_INT64(mark.nonce)));
    bson_t reply;
    bson_error_t error;
    const bool ok =
        mongoc_collection_delete_one(collection.get(), selector.get(), nullptr, &reply, &error);
    const std::int64_t deleted = ok ? int64_at(&reply, "deletedCount").value_or(0) : 0;
    const bool concern_failed = ok && has_write_concern_error(&reply);
    bson_destroy(&reply);
    if (!ok) return classify(error);
    if (concern_failed) return Error::retryable("write concern not satisfied clearing a mark");
    if (deleted == 1) continue;
    const BsonPtr by_id(BCON_NEW("_id", BCON_INT64(mark.minute)));
    Result<bool> marked = holds_any(client, database, kUsageMarksCollection, by_id.get());
    if (!marked) return marked;
    if (!marked.value()) superseded.push_back(mark.minute);
  }
  if (superseded.empty()) return true;
  return mark_usage_minutes(client, database, superseded);
}

// The upgrade's marks (`minutes` ascending) that are not there yet: inserts, not upserts
// (FerretDB 1.24 scans the collection for each update statement, and the pass may mark every
// minute of months). A duplicate key means another processor runs the same pass at once: that
// mark is there, and the inserts go on after it (FerretDB ends an unordered insert at its first
// write error).
Result<bool> insert_marks(mongoc_client_t* client, const std::string& database,
                          const std::vector<std::int64_t>& minutes) {
  const std::int64_t marked_at = now_ms();
  const std::int64_t nonce = cost::random_token();
  const Collection collection(client, database, kUsageMarksCollection);
  for (std::size_t chunk = 0; chunk < minutes.size(); chunk += kChunk) {
    const std::size_t end = std::min(minutes.size(), chunk + kChunk);
    Result<std::set<std::int64_t>> present =
        marks_in(client, database, {minutes[chunk], minutes[end - 1] + 1});
    if (!present) return present.error();
    std::vector<BsonPtr> docs;
    for (std::size_t i = chunk; i < end; ++i) {
      if (present.value().contains(minutes[i])) continue;
      docs.emplace_back(BCON_NEW("_id", BCON_INT64(minutes[i]), "marked_at", BCON_INT64(marked_at),
                                 "nonce", BCON_INT64(nonce)));
    }
    std::size_t from = 0;
    while (from < docs.size()) {
      Result<std::vector<WriteError>> errors =
          insert_all(collection.get(), docs, from, docs.size());
      if (!errors) return errors.error();
      if (errors.value().empty()) break;
      std::int64_t first = std::numeric_limits<std::int64_t>::max();
      for (const WriteError& e : errors.value()) {
        if (e.code != kDuplicateKey || e.index < 0) {
          return classify_write_error(
              e.code, "usage mark not written, code " + std::to_string(e.code) + ": " + e.message);
        }
        first = std::min(first, e.index);
      }
      from += static_cast<std::size_t>(first) + 1;
    }
  }
  return true;
}

// Every minute holding token usage: one pass over the requests' ts.
Result<std::vector<std::int64_t>> usage_minutes_held(mongoc_client_t* client,
                                                     const std::string& database) {
  std::set<std::int64_t> minutes;
  const BsonPtr all(bson_new());
  const BsonPtr opts = projection_of({"ts"}, false);
  const Collection usage(client, database, "token_usage");
  Result<bool> read = for_each_found(usage.get(), all.get(), opts.get(), [&](const bson_t* doc) {
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, doc, "ts") && BSON_ITER_HOLDS_DATE_TIME(&iter)) {
      minutes.insert(query::minute_of(bson_iter_date_time(&iter)));
    }
  });
  if (!read) return read.error();
  return std::vector<std::int64_t>(minutes.begin(), minutes.end());
}

// ---- /v1/usage ----

const std::string& group_of(const UsageRollupRow& row, const std::string& group_by) {
  return group_by == "tenant"       ? row.tenant_id
         : group_by == "deployment" ? row.deployment
                                    : row.model;
}

// ---- hour leases: one roll-up of an hour at a time ----

constexpr const char* kUsageLeasesCollection = "usage_rollup_leases";
// Longer than a roll-up of one hour takes; a lease left by a crash holds its hour this long.
constexpr std::int64_t kHourLeaseMs = 120000;

// {_id: hour, holder, until}: inserted, so that of two roll-ups one gets a duplicate key (a
// unique _id is atomic on FerretDB too, where a filtered update is not). An expired lease is
// deleted first, then inserted again the same way.
Result<bool> take_hour_lease(mongoc_client_t* client, const std::string& database,
                             std::int64_t hour, std::int64_t token) {
  const Collection leases(client, database, kUsageLeasesCollection);
  const std::int64_t now = now_ms();
  const BsonPtr expired(
      BCON_NEW("_id", BCON_INT64(hour), "until", "{", "$lt", BCON_INT64(now), "}"));
  if (auto deleted = deleted_many(leases.get(), expired.get()); !deleted) return deleted;
  const BsonPtr lease(BCON_NEW("_id", BCON_INT64(hour), "holder", BCON_INT64(token), "until",
                               BCON_INT64(now + kHourLeaseMs)));
  bson_error_t error;
  if (mongoc_collection_insert_one(leases.get(), lease.get(), nullptr, nullptr, &error)) {
    return true;
  }
  if (error.code == kDuplicateKey) return false;
  return classify(error);
}

Result<bool> drop_hour_lease(mongoc_client_t* client, const std::string& database,
                             std::int64_t hour, std::int64_t token) {
  const Collection leases(client, database, kUsageLeasesCollection);
  const BsonPtr ours(BCON_NEW("_id", BCON_INT64(hour), "holder", BCON_INT64(token)));
  return deleted_many(leases.get(), ours.get());
}

// One hour's marked minutes: their rows from the requests, then the hour's rows from its
// minutes, then the marks that kept their nonce. False when another roll-up's rows got in the
// way (the marks stay).
Result<bool> roll_up_hour(mongoc_client_t* client, const std::string& database, std::int64_t hour,
                          const std::vector<Mark>& marks) {
  std::vector<std::int64_t> minutes;
  for (const Mark& mark : marks) minutes.push_back(mark.minute);
  Rows rows;
  for (const Range& range : minute_ranges(minutes)) {
    if (auto added = add_requests(client, database, range, std::nullopt, rows); !added) {
      return added.error();
    }
  }
  Result<bool> replaced = replace_rows(client, database, kMinutes, minutes, rows);
  if (!replaced || !replaced.value()) return replaced;
  // The hour from its minutes before the marks go: while a minute is marked its hour is not
  // read from the hour rows.
  replaced = roll_up_hours(client, database, {hour});
  if (!replaced || !replaced.value()) return replaced;
  if (auto cleared = clear_marks(client, database, marks); !cleared) return cleared;
  return true;
}

}  // namespace

Result<bool> mark_usage_minutes(mongoc_client_t* client, const std::string& database,
                                const std::vector<std::int64_t>& times_ms) {
  std::set<std::int64_t> minutes;
  for (const std::int64_t t : times_ms) minutes.insert(query::minute_of(t));
  if (minutes.empty()) return true;
  const std::int64_t marked_at = now_ms();
  const std::int64_t nonce = cost::random_token();
  std::vector<Upsert> ops;
  for (const std::int64_t m : minutes) {
    ops.push_back({BsonPtr(BCON_NEW("_id", BCON_INT64(m))),
                   BsonPtr(BCON_NEW("$set", "{", "marked_at", BCON_INT64(marked_at), "nonce",
                                    BCON_INT64(nonce), "}"))});
  }
  const Collection collection(client, database, kUsageMarksCollection);
  return upsert_all(collection.get(), ops);
}

Result<bool> initialize_usage_rollups(mongoc_client_t* client, const std::string& database) {
  // The marker's state: absent (never looked), "marking" (a pass began: it runs again until it
  // ends, since a crash may have left it halfway) or "done".
  const BsonPtr marker(BCON_NEW("_id", BCON_UTF8(kRollupsInitialized)));
  std::string state;
  {
    const Collection meta(client, database, kMetaCollection);
    Result<bool> read = for_each_found(meta.get(), marker.get(), nullptr,
                                       [&](const bson_t* doc) { state = utf8_at(doc, "state"); });
    if (!read) return read;
  }
  if (state == "done") return true;
  const auto set_state = [&](const char* value) {
    std::vector<Upsert> ops;
    ops.push_back(
        {BsonPtr(bson_copy(marker.get())), BsonPtr(BCON_NEW("$set", "{", "state", BCON_UTF8(value),
                                                            "at", BCON_INT64(now_ms()), "}"))});
    const Collection meta(client, database, kMetaCollection);
    return upsert_all(meta.get(), ops);
  };
  if (state.empty()) {
    // Rows or marks without a marker: a database that kept rollups before the marker existed
    // has nothing to mark.
    const BsonPtr all(bson_new());
    Result<bool> rows = holds_any(client, database, kUsageMinutesCollection, all.get());
    if (!rows) return rows;
    Result<bool> marks = holds_any(client, database, kUsageMarksCollection, all.get());
    if (!marks) return marks;
    if (rows.value() || marks.value()) return set_state("done");
    if (auto began = set_state("marking"); !began) return began;
  }
  Result<std::vector<std::int64_t>> minutes = usage_minutes_held(client, database);
  if (!minutes) return minutes.error();
  if (auto marked = insert_marks(client, database, minutes.value()); !marked) return marked;
  return set_state("done");
}

Result<std::size_t> roll_up_usage_minutes(mongoc_client_t* client, const std::string& database,
                                          std::int64_t marked_before_ms, std::size_t limit) {
  if (limit == 0) return std::size_t{0};  // a find's limit 0 means none
  Result<std::vector<Mark>> marks = due_marks(client, database, marked_before_ms, limit);
  if (!marks) return marks.error();
  // Hour by hour, each under its lease: an hour's rows are summed from its minutes' rows, so two
  // roll-ups of minutes of one hour at once (two processors) would each sum the other's minutes
  // half written. An hour another roll-up holds is left marked for a later round.
  std::map<std::int64_t, std::vector<Mark>> by_hour;
  for (const Mark& mark : marks.value()) by_hour[query::hour_of(mark.minute)].push_back(mark);
  std::size_t rolled = 0;
  const std::int64_t token = cost::random_token();
  for (const auto& [hour, hour_marks] : by_hour) {
    Result<bool> leased = take_hour_lease(client, database, hour, token);
    if (!leased) return leased.error();
    if (!leased.value()) continue;
    Result<bool> done = roll_up_hour(client, database, hour, hour_marks);
    // Released whatever happened: a lease left behind would only hold the hour for its length.
    Result<bool> released = drop_hour_lease(client, database, hour, token);
    if (!done) return done.error();
    if (!released) return released.error();
    if (done.value()) rolled += hour_marks.size();
  }
  return rolled;
}

Result<std::vector<query::UsageRollupRow>> stored_usage_rows(mongoc_client_t* client,
                                                             const std::string& database,
                                                             bool hours, std::int64_t from_ms,
                                                             std::int64_t to_ms) {
  Result<std::vector<UsageRollupRow>> rows =
      read_rows(client, database, hours ? kHours : kMinutes, {from_ms, to_ms}, {});
  if (!rows) return rows;
  // Sorted here: byte order of the keys whichever server (and collation) answered.
  std::sort(rows.value().begin(), rows.value().end(), [](const auto& a, const auto& b) {
    return std::tie(a.start_ms, a.model, a.tenant_id, a.deployment) <
           std::tie(b.start_ms, b.model, b.tenant_id, b.deployment);
  });
  return rows;
}

Result<std::vector<std::int64_t>> marked_minutes(mongoc_client_t* client,
                                                 const std::string& database) {
  Result<std::set<std::int64_t>> marks = marks_in(
      client, database,
      {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()});
  if (!marks) return marks.error();
  return std::vector<std::int64_t>(marks.value().begin(), marks.value().end());
}

Result<std::string> usage_answer(mongoc_client_t* client, const std::string& database,
                                 const UsageQuery& query) {
  const auto ms = [](const auto& t) -> std::optional<std::int64_t> {
    if (!t) return std::nullopt;
    return unix_ms(*t);
  };
  const std::optional<std::int64_t> from = ms(query.from), to = ms(query.to);
  const query::UsagePlan plan = query::plan_usage(from, to);
  const Range rolled{plan.rolled_from_ms, plan.rolled_to_ms};
  // Marks, then the rows the marks leave current, then the marks again: without transactions a
  // roll-up may replace rows meanwhile, but only of a marked minute (it clears the mark after),
  // so rows read while no new mark appeared are whole. A new mark means reading again with it.
  std::set<std::int64_t> marks;
  if (rolled.first < rolled.second) {
    Result<std::set<std::int64_t>> first = marks_in(client, database, rolled);
    if (!first) return first.error();
    marks = std::move(first.value());
  }
  for (;;) {
    const query::UsageReads reads = query::plan_usage_reads(from, to, {marks.begin(), marks.end()});
    query::UsageTotals totals;
    for (const auto& [rollup, ranges] :
         {std::pair{&kHours, &reads.hours}, std::pair{&kMinutes, &reads.minutes}}) {
      for (const Range& range : *ranges) {
        Result<std::vector<UsageRollupRow>> rows =
            read_rows(client, database, *rollup, range, query.tenants);
        if (!rows) return rows.error();
        for (const UsageRollupRow& row : rows.value()) {
          totals.add_row(group_of(row, query.group_by), row);
        }
      }
    }
    if (!reads.hours.empty() || !reads.minutes.empty()) {
      Result<std::set<std::int64_t>> again = marks_in(client, database, rolled);
      if (!again) return again.error();
      const std::size_t known = marks.size();
      marks.insert(again.value().begin(), again.value().end());
      // Marks only grow here, by the minutes newly written to: this ends within a pass or two.
      if (marks.size() != known) continue;
    }
    Rows requests;
    for (const Range& range : reads.requests) {
      if (auto added = add_requests(client, database, range, query.tenants, requests); !added) {
        return added.error();
      }
    }
    for (const auto& [key, row] : requests) {
      totals.add_row(group_of(row, query.group_by), row);
    }
    return totals.json();
  }
}

}  // namespace telemetryd::mongo
