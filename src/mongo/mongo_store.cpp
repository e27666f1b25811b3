#include "mongo/mongo_store.hpp"

// libbson declares bson_t 128-byte aligned; smart pointers and vectors of bson_t pointers drop
// that attribute from the template argument, which is harmless for pointers.
#pragma GCC diagnostic ignored "-Wignored-attributes"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "mongo/bson_fields.hpp"
#include "mongo/bson_json.hpp"
#include "mongo/bson_ptr.hpp"
#include "mongo/find_each.hpp"
#include "mongo/json_to_bson.hpp"
#include "mongo/mongo_errors.hpp"
#include "mongo/mongo_index.hpp"
#include "mongo/mongo_latest_view.hpp"
#include "mongo/mongo_usage_rollup.hpp"
#include "mongo/upsert_bulk.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::mongo {

using events::EventKind;

class MongoStore::Client {
 public:
  explicit Client(mongoc_client_pool_t* pool)
      : pool_(pool), client_(mongoc_client_pool_pop(pool)) {}
  ~Client() { mongoc_client_pool_push(pool_, client_); }
  mongoc_client_t* get() const { return client_; }

 private:
  mongoc_client_pool_t* pool_;
  mongoc_client_t* client_;
};

namespace {

// The stored document: the event's data fields at the top level, with _id, ts (a BSON date for
// range queries and TTL) and source. A usage document gets its `cost` block later, when its
// window is priced (write_costs).
BsonPtr make_document(const StoredEvent& stored, std::string& error) {
  const auto& e = *stored.event;
  BsonPtr doc(bson_new());
  BSON_APPEND_UTF8(doc.get(), "_id", e.id.c_str());
  BSON_APPEND_DATE_TIME(doc.get(), "ts", unix_ms(e.time));
  BSON_APPEND_UTF8(doc.get(), "source", e.source.c_str());
  BSON_APPEND_DATE_TIME(doc.get(), "received_at", unix_ms(std::chrono::system_clock::now()));
  if (!append_json_object(doc.get(), e.data_json, error)) return nullptr;
  return doc;
}

// Reads every document of a query as one JSON array, then frees the cursor and collection.
Result<std::string> drain_to_json_array(mongoc_cursor_t* cursor, mongoc_collection_t* collection) {
  const bson_t* doc = nullptr;
  JsonWriter json;
  json.begin_array();
  while (mongoc_cursor_next(cursor, &doc)) write_bson_document(json, doc);
  json.end_array();
  bson_error_t error;
  const bool failed = mongoc_cursor_error(cursor, &error);
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(collection);
  if (failed) return classify(error);
  return json.take();
}

// Runs a find and hands every document to `each`, then frees the cursor and the collection.
template <typename Each>
Result<bool> find_each(mongoc_client_t* client, const std::string& database,
                       const char* collection_name, const bson_t* filter, const bson_t* opts,
                       Each&& each) {
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client, database.c_str(), collection_name);
  Result<bool> read = for_each_found(collection, filter, opts, std::forward<Each>(each));
  mongoc_collection_destroy(collection);
  return read;
}

}  // namespace

MongoStore::MongoStore(MongoStoreSettings settings) : settings_(std::move(settings)) {
  pool_ = make_store_pool(settings_.connection, settings_.write_concern, "telemetryd-processor");
}

MongoStore::~MongoStore() {
  mongoc_client_pool_destroy(pool_);
}

Result<bool> MongoStore::ensure_indexes(mongoc_client_t* client) {
  struct Index {
    const char* collection;
    const char* name;
    BsonPtr key;
  };
  std::vector<Index> indexes;
  indexes.push_back({"gpu_metrics", "gpu_uuid_ts",
                     BsonPtr(BCON_NEW("gpu_uuid", BCON_INT32(1), "ts", BCON_INT32(-1)))});
  indexes.push_back(
      {"gpu_metrics", "host_ts", BsonPtr(BCON_NEW("host", BCON_INT32(1), "ts", BCON_INT32(-1)))});
  indexes.push_back(
      {"token_usage", "model_ts", BsonPtr(BCON_NEW("model", BCON_INT32(1), "ts", BCON_INT32(-1)))});
  indexes.push_back({"token_usage", "tenant_id_ts",
                     BsonPtr(BCON_NEW("tenant_id", BCON_INT32(1), "ts", BCON_INT32(-1)))});
  // The pricer's queue: settled_cost_windows reads the marks older than the settle delay.
  indexes.push_back({"cost_windows", "marked_at", BsonPtr(BCON_NEW("marked_at", BCON_INT32(1)))});
  // Usage rollups: answers and roll-ups read the rows by minute; the roll-up reads the marks
  // older than its delay.
  indexes.push_back(
      {kUsageMinutesCollection, "minute", BsonPtr(BCON_NEW("minute", BCON_INT32(1)))});
  indexes.push_back({kUsageHoursCollection, "hour", BsonPtr(BCON_NEW("hour", BCON_INT32(1)))});
  indexes.push_back(
      {kUsageMarksCollection, "marked_at", BsonPtr(BCON_NEW("marked_at", BCON_INT32(1)))});
  // cost_window_inputs and usage_window_starts read both collections by a ts range alone, which
  // the {gpu_uuid, ts} and {model, ts} indexes cannot serve. With a TTL, ts_ttl serves it.
  // Descending, so that it never has the TTL index's key: turning a TTL on later would otherwise
  // conflict with it ("index already exists with a different name").
  if (settings_.ttl_days <= 0) {
    for (const char* collection : {"gpu_metrics", "token_usage", kCostCollection}) {
      indexes.push_back({collection, "ts_desc", BsonPtr(BCON_NEW("ts", BCON_INT32(-1)))});
    }
  }
  for (const auto& index : indexes) {
    Result<bool> created =
        create_index(client, settings_.database, index.collection, index.name, index.key.get());
    if (!created) return created;
  }
  if (settings_.ttl_days > 0) {
    const BsonPtr ts(BCON_NEW("ts", BCON_INT32(1)));
    // The latest view expires with its GPU's last sample, so a GPU whose history the TTL
    // removed leaves /v1/devices as it did when that read the history.
    // A minute's (hour's) rollup rows expire with it (their ts is its start), as its requests
    // do: an answer counts no request from a rollup long after the request expired.
    for (const char* collection : {"gpu_metrics", "token_usage", kCostCollection, kLatestCollection,
                                   kUsageMinutesCollection, kUsageHoursCollection}) {
      Result<bool> created = create_index(client, settings_.database, collection, "ts_ttl",
                                          ts.get(), settings_.ttl_days * 86400);
      if (!created) return created;
    }
  }
  return true;
}

Result<bool> MongoStore::prepare(const events::GpuCatalog& catalog) {
  Client client(pool_);
  if (auto indexes = ensure_indexes(client.get()); !indexes) return indexes.error();
  // A database from before the view gets it filled once, so an upgrade keeps /v1/devices.
  if (auto filled = backfill_latest(client.get(), settings_.database); !filled) {
    return filled.error();
  }
  // Likewise a database from before the usage rollups gets its minutes marked once.
  if (auto initialized = initialize_usage_rollups(client.get(), settings_.database); !initialized) {
    return initialized.error();
  }
  // Through upsert_all: processors started together on a new database upsert the same entries
  // at once, and FerretDB answers the loser of each race with E11000, which must not stop it.
  std::vector<Upsert> ops;
  for (const auto& entry : catalog.entries()) {
    ops.push_back(
        {BsonPtr(BCON_NEW("_id", BCON_UTF8(entry.name.c_str()))),
         BsonPtr(BCON_NEW("$set", "{", "name", BCON_UTF8(entry.name.c_str()), "model_name",
                          BCON_UTF8(entry.model_name.c_str()), "price_per_hour_usd",
                          BCON_DOUBLE(entry.price_per_hour_usd), "}"))});
  }
  mongoc_collection_t* gpus =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpus");
  Result<bool> result = upsert_all(gpus, ops);
  mongoc_collection_destroy(gpus);
  return result;
}

namespace {

// Inserts each document alone, for a batch libmongoc refused whole: the per-document answers as
// write errors (index = position in `docs`), or the error of a call that failed for another
// reason than its document.
Result<std::vector<WriteError>> insert_each(mongoc_collection_t* collection,
                                            const std::vector<const bson_t*>& docs) {
  std::vector<WriteError> errors;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    bson_t reply;
    bson_error_t error;
    const bool ok = mongoc_collection_insert_one(collection, docs[i], nullptr, &reply, &error);
    std::vector<WriteError> answers = write_errors(&reply);
    bson_destroy(&reply);
    if (ok) continue;
    if (!answers.empty()) {
      errors.push_back(
          {static_cast<std::int64_t>(i), answers.front().code, answers.front().message});
    } else if (refused_by_client(error)) {
      // No server code: the document's own, and permanent (reported as BadValue).
      errors.push_back({static_cast<std::int64_t>(i), 2, error.message});
    } else {
      return classify(error);  // the server's condition, not this document's
    }
  }
  return errors;
}

// The newest stored sample of each GPU in the batch into the latest view (one bulk). Duplicates
// count as stored: a retried batch whose samples went in before its view update failed must
// still reach the view. A refused document never does.
Result<bool> keep_latest(mongoc_client_t* client, const std::string& database,
                         const std::vector<StoredEvent>& batch, const std::vector<BsonPtr>& docs,
                         const std::vector<std::size_t>& positions,
                         const std::vector<WriteError>& errors) {
  std::vector<bool> refused(docs.size(), false);
  for (const auto& e : errors) {
    if (e.code != kDuplicateKey && e.index >= 0 && static_cast<std::size_t>(e.index) < docs.size())
      refused[e.index] = true;
  }
  std::map<std::string_view, std::size_t> newest;  // gpu_uuid -> index in docs
  for (std::size_t k = 0; k < docs.size(); ++k) {
    if (refused[k]) continue;
    const auto& e = *batch[positions[k]].event;
    auto [it, added] = newest.try_emplace(e.gpu_uuid, k);
    if (!added && batch[positions[it->second]].event->time < e.time) it->second = k;
  }
  std::vector<ViewUpdate> samples;
  for (const auto& [uuid, k] : newest) {
    const auto& e = *batch[positions[k]].event;
    samples.push_back({e.gpu_uuid, unix_ms(e.time), e.host, docs[k].get()});
  }
  return upsert_latest(client, database, samples);
}

}  // namespace

Result<WriteOutcome> MongoStore::write(const std::vector<StoredEvent>& batch) {
  // The minutes of the batch's requests are marked before any is inserted, duplicates too:
  // without transactions, a crash between the two then leaves a mark (one more roll-up), never
  // a stored request that its minute's rollup lacks. A redelivered batch marks them again.
  std::vector<std::int64_t> usage_times;
  for (const StoredEvent& stored : batch) {
    if (stored.event->kind == EventKind::kTokenUsage)
      usage_times.push_back(unix_ms(stored.event->time));
  }
  const auto mark_usage = [&]() -> Result<bool> {
    if (usage_times.empty()) return true;
    Client client(pool_);
    return mark_usage_minutes(client.get(), settings_.database, usage_times);
  };
  if (auto marked = mark_usage(); !marked) return marked.error();
  WriteOutcome outcome;
  // One unordered insert per collection; batch indexes are kept to map write errors back.
  for (const events::EventKind kind :
       {events::EventKind::kGpuMetrics, events::EventKind::kTokenUsage}) {
    std::vector<BsonPtr> docs;
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].event->kind != kind) continue;
      std::string error;
      BsonPtr doc = make_document(batch[i], error);
      if (!doc) {
        outcome.rejected.emplace_back(i, "not convertible to BSON: " + error);
        continue;
      }
      docs.push_back(std::move(doc));
      positions.push_back(i);
    }
    if (docs.empty()) continue;
    std::vector<const bson_t*> pointers;
    for (const auto& d : docs) pointers.push_back(d.get());
    const char* name = kind == events::EventKind::kGpuMetrics ? "gpu_metrics" : "token_usage";
    Client client(pool_);
    mongoc_collection_t* collection =
        mongoc_client_get_collection(client.get(), settings_.database.c_str(), name);
    // make_document already refused the keys libmongoc's per-document check looks for (12-15%
    // of the processor's CPU in the performance issue's profile).
    BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(false), "validate", BCON_BOOL(false)));
    bson_t reply;
    bson_error_t error;
    const bool ok = mongoc_collection_insert_many(collection, pointers.data(), pointers.size(),
                                                  opts.get(), &reply, &error);
    std::vector<WriteError> errors = write_errors(&reply);
    const bool concern_failed = has_write_concern_error(&reply);
    bson_destroy(&reply);
    if (!ok && errors.empty() && refused_by_client(error)) {
      // Refused whole without a per-document answer (libmongoc checks every document before
      // sending: an empty or $-prefixed key in one event's data refuses the call). Retrying the
      // batch would refuse it forever, and dead-lettering it would lose the valid events: one
      // insert per document tells them apart.
      Result<std::vector<WriteError>> one_by_one = insert_each(collection, pointers);
      mongoc_collection_destroy(collection);
      if (!one_by_one) return one_by_one.error();
      errors = std::move(one_by_one.value());
    } else {
      mongoc_collection_destroy(collection);
      if (!ok && !only_write_errors(error, errors)) return classify(error);
    }
    // Only a document the server refuses for good is dead-lettered. Any other per-document
    // error (transient, or a code nobody classified) retries the whole batch: the ids make the
    // retry idempotent, and an unknown condition never costs valid events.
    for (const auto& e : errors) {
      if (e.code == kDuplicateKey) continue;
      Error verdict =
          classify_write_error(e.code, "code " + std::to_string(e.code) + ": " + e.message);
      const bool known = e.index >= 0 && static_cast<std::size_t>(e.index) < positions.size();
      if (verdict.kind != Error::Kind::kPermanent || !known) {
        verdict.message = "a document was not written, " + verdict.message;
        verdict.kind = Error::Kind::kRetryable;
        return verdict;
      }
    }
    for (const auto& e : errors) {
      const bool known = e.index >= 0 && static_cast<std::size_t>(e.index) < positions.size();
      if (e.code == kDuplicateKey) {
        ++outcome.duplicates;
        if (known) outcome.duplicate_indexes.push_back(positions[e.index]);
      } else {
        outcome.rejected.emplace_back(positions[e.index],
                                      "code " + std::to_string(e.code) + ": " + e.message);
      }
    }
    // Written, but not as durably as asked (majority not reached, a step-down): not done, and
    // the retry is idempotent by _id. (Write errors alone, duplicates and refused documents, are
    // answers; a failed call that is not only those was returned above: part of the batch may
    // not have been tried, and the ids make the retry idempotent.)
    if (concern_failed)
      return Error::retryable("write concern not satisfied: " + std::string(error.message));
    const std::size_t inserted = docs.size() - errors.size();
    (kind == events::EventKind::kGpuMetrics ? outcome.gpu_metrics_inserted
                                            : outcome.token_usage_inserted) += inserted;
    if (kind == events::EventKind::kGpuMetrics) {
      if (auto latest =
              keep_latest(client.get(), settings_.database, batch, docs, positions, errors);
          !latest) {
        return latest.error();
      }
      latest_changed();
    }
  }
  // And marked again once stored, with a new nonce: a roll-up that ran while a slow insert was
  // under way (longer than the settle time) cleared the first mark without these requests.
  if (auto marked = mark_usage(); !marked) return marked.error();
  // Ascending, whichever collection each came from.
  std::sort(outcome.duplicate_indexes.begin(), outcome.duplicate_indexes.end());
  return outcome;
}

Result<std::string> MongoStore::latest_gpu_json(const GpuQuery& query) {
  Result<std::vector<query::LatestSample>> samples = latest_samples();
  if (!samples) return samples.error();
  return query::latest_json_of(samples.value(), query.gpu_uuid, query.host);
}

Result<std::string> MongoStore::gpus_json() {
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpus");
  BsonPtr filter(bson_new());
  BsonPtr opts(BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}"));
  mongoc_cursor_t* cursor =
      mongoc_collection_find_with_opts(collection, filter.get(), opts.get(), nullptr);
  return drain_to_json_array(cursor, collection);
}

// Rolled minutes and requests (mongo_usage_rollup.hpp): the answer costs the rows of the whole
// minutes in the range and the requests of its edges and marked minutes, not all its requests.
Result<std::string> MongoStore::usage_json(const UsageQuery& query) {
  Client client(pool_);
  return usage_answer(client.get(), settings_.database, query);
}

Result<std::size_t> MongoStore::roll_up_usage(std::int64_t marked_before_ms, std::size_t limit) {
  Client client(pool_);
  return roll_up_usage_minutes(client.get(), settings_.database, marked_before_ms, limit);
}

Result<std::vector<query::UsageRollupRow>> MongoStore::usage_minutes(std::int64_t from_ms,
                                                                     std::int64_t to_ms) {
  Client client(pool_);
  return stored_usage_rows(client.get(), settings_.database, false, from_ms, to_ms);
}

Result<std::vector<query::UsageRollupRow>> MongoStore::usage_hours(std::int64_t from_ms,
                                                                   std::int64_t to_ms) {
  Client client(pool_);
  return stored_usage_rows(client.get(), settings_.database, true, from_ms, to_ms);
}

Result<std::vector<std::int64_t>> MongoStore::marked_usage_minutes() {
  Client client(pool_);
  return marked_minutes(client.get(), settings_.database);
}

// FerretDB 1.24, which the tests run against, groups with $sum and $count only: no date
// arithmetic to compute a bucket, no $avg or $max. So the database filters on the
// {gpu_uuid, ts} index and returns only the summarised fields, and the buckets are summed here.
Result<std::string> MongoStore::gpu_series_json(const query::SeriesQuery& query) {
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpu_metrics");
  BsonPtr filter(BCON_NEW("gpu_uuid", BCON_UTF8(query.gpu_uuid.c_str()), "ts", "{", "$gte",
                          BCON_DATE_TIME(unix_ms(query.from)), "$lt",
                          BCON_DATE_TIME(unix_ms(query.to)), "}"));
  BsonPtr opts(bson_new());
  bson_t projection;
  BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "projection", &projection);
  BSON_APPEND_INT32(&projection, "_id", 0);
  BSON_APPEND_INT32(&projection, "ts", 1);
  std::vector<std::string> top_level;  // "activity" once for both of its fields
  for (const auto& field : query::kSeriesFields) {
    const std::string_view path = field.path;
    const std::string name(path.substr(0, path.find('.')));
    if (std::find(top_level.begin(), top_level.end(), name) != top_level.end()) continue;
    BSON_APPEND_INT32(&projection, name.c_str(), 1);
    top_level.push_back(name);
  }
  bson_append_document_end(opts.get(), &projection);
  mongoc_cursor_t* cursor =
      mongoc_collection_find_with_opts(collection, filter.get(), opts.get(), nullptr);
  query::SeriesBuilder builder(query.step_ms);
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t iter;
    if (!bson_iter_init_find(&iter, doc, "ts") || !BSON_ITER_HOLDS_DATE_TIME(&iter)) continue;
    builder.add_sample(bson_iter_date_time(&iter));
    for (std::size_t i = 0; i < query::kSeriesFields.size(); ++i) {
      bson_iter_t field;
      if (bson_iter_init(&iter, doc) &&
          bson_iter_find_descendant(&iter, query::kSeriesFields[i].path, &field) &&
          BSON_ITER_HOLDS_NUMBER(&field)) {
        builder.add_value(i, bson_iter_as_double(&field));
      }
    }
  }
  bson_error_t error;
  const bool failed = mongoc_cursor_error(cursor, &error);
  mongoc_cursor_destroy(cursor);
  if (failed) {
    mongoc_collection_destroy(collection);
    return classify(error);
  }
  std::vector<query::SeriesPoint> points = builder.take();
  if (points.empty()) {
    // An empty range of a known GPU is an empty list; a GPU never stored is "null" (404).
    BsonPtr any_filter(BCON_NEW("gpu_uuid", BCON_UTF8(query.gpu_uuid.c_str())));
    BsonPtr any_opts(
        BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64(1)));
    mongoc_cursor_t* any =
        mongoc_collection_find_with_opts(collection, any_filter.get(), any_opts.get(), nullptr);
    const bool found = mongoc_cursor_next(any, &doc);
    const bool any_failed = mongoc_cursor_error(any, &error);
    mongoc_cursor_destroy(any);
    mongoc_collection_destroy(collection);
    if (any_failed) return classify(error);
    if (!found) return std::string("null");
    return std::string("[]");
  }
  mongoc_collection_destroy(collection);
  return query::series_points_json(points);
}

Result<std::string> MongoStore::devices_json() {
  Result<std::vector<query::LatestSample>> samples = latest_samples();
  if (!samples) return samples.error();
  return query::devices_json_of(samples.value());
}

Result<std::vector<query::LatestSample>> MongoStore::latest_samples() {
  Client client(pool_);
  return latest_samples_of(client.get(), settings_.database);
}

// ---- Cost (docs/cost.md) ----

Result<bool> MongoStore::mark_cost_windows(const std::vector<std::int64_t>& starts_ms,
                                           std::int64_t marked_at_ms, std::int64_t nonce) {
  if (starts_ms.empty()) return true;
  std::vector<Upsert> ops;
  for (const std::int64_t start : std::set<std::int64_t>(starts_ms.begin(), starts_ms.end())) {
    ops.push_back({BsonPtr(BCON_NEW("_id", BCON_INT64(start))),
                   BsonPtr(BCON_NEW("$set", "{", "marked_at", BCON_INT64(marked_at_ms), "nonce",
                                    BCON_INT64(nonce), "}"))});
  }
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "cost_windows");
  Result<bool> result = upsert_all(collection, ops);
  mongoc_collection_destroy(collection);
  return result;
}

namespace {

// Not claimed, or claimed with a lease that ended before now_ms. $or and $exists work on
// FerretDB 1.24 as on MongoDB.
BsonPtr unclaimed_since(std::int64_t now_ms) {
  return BsonPtr(BCON_NEW("$or", "[", "{", "claim_until", "{", "$exists", BCON_BOOL(false), "}",
                          "}", "{", "claim_until", "{", "$lt", BCON_INT64(now_ms), "}", "}", "]"));
}

}  // namespace

Result<std::vector<CostWindowMark>> MongoStore::settled_cost_windows(std::int64_t marked_before_ms,
                                                                     std::int64_t now_ms,
                                                                     std::size_t limit) {
  std::vector<CostWindowMark> marks;
  if (limit == 0) return marks;  // a find's limit 0 means none
  Client client(pool_);
  BsonPtr filter(BCON_NEW("marked_at", "{", "$lte", BCON_INT64(marked_before_ms), "}"));
  bson_concat(filter.get(), unclaimed_since(now_ms).get());
  BsonPtr opts(BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "limit",
                        BCON_INT64(static_cast<std::int64_t>(limit))));
  Result<bool> read = find_each(client.get(), settings_.database, "cost_windows", filter.get(),
                                opts.get(), [&](const bson_t* doc) {
                                  const auto start = int64_at(doc, "_id");
                                  if (!start) return;
                                  marks.push_back({*start, int64_at(doc, "marked_at").value_or(0),
                                                   int64_at(doc, "nonce").value_or(0),
                                                   int64_at(doc, "claim_token").value_or(0)});
                                });
  if (!read) return read.error();
  return marks;
}

Result<bool> MongoStore::claim_cost_window(CostWindowMark& mark, std::int64_t token,
                                           std::int64_t now_ms, std::int64_t until_ms) {
  Client client(pool_);
  BsonPtr filter(BCON_NEW("_id", BCON_INT64(mark.start_ms), "nonce", BCON_INT64(mark.nonce)));
  bson_concat(filter.get(), unclaimed_since(now_ms).get());
  const BsonPtr update(BCON_NEW("$set", "{", "claim_token", BCON_INT64(token), "claim_until",
                                BCON_INT64(until_ms), "}"));
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "cost_windows");
  bson_t reply;
  bson_error_t error;
  const bool ok =
      mongoc_collection_update_one(collection, filter.get(), update.get(), nullptr, &reply, &error);
  mongoc_collection_destroy(collection);
  const bool concern_failed = ok && has_write_concern_error(&reply);
  const std::int64_t matched = ok ? int64_at(&reply, "matchedCount").value_or(0) : 0;
  bson_destroy(&reply);
  if (!ok) return classify(error);
  // Claimed but not durably: another pricer may claim it after a failover, so not ours.
  if (concern_failed) return Error::retryable("write concern not satisfied claiming a window");
  if (matched != 1) return false;  // another pricer holds it, or the mark changed or is gone
  // MongoDB applies the filter and the $set atomically: one of two claimers matches. FerretDB
  // 1.24 reads the document, then replaces it, so two claimers at once can both match (reading
  // the token back does not tell them apart): write_costs then lets only the one whose token
  // is stored write.
  mark.claim_token = token;
  return true;
}

// Three reads: the window's usage documents, the GPU samples from a lookback before it (each
// GPU's energy baseline) and the placements. Sorted here, so that the rows come in one order
// whichever server and plan answered; price_window does not depend on it, readers of the rows
// (tests, logs) do.
Result<cost::WindowInputs> MongoStore::cost_window_inputs(std::int64_t start_ms,
                                                          std::int64_t end_ms,
                                                          std::int64_t lookback_ms) {
  Client client(pool_);
  cost::WindowInputs inputs;

  // usage whole rather than its dotted fields: the gpu_series_json projection keeps to top-level
  // fields too, and the subdocument is small.
  const BsonPtr usage_filter = ts_range(start_ms, end_ms);
  const BsonPtr usage_opts =
      projection_of({"ts", "model", "tenant_id", "deployment", "host", "usage", "gpu_uuids"}, true);
  Result<bool> read =
      find_each(client.get(), settings_.database, "token_usage", usage_filter.get(),
                usage_opts.get(), [&](const bson_t* doc) {
                  cost::UsageRow row;
                  row.id = utf8_at(doc, "_id");
                  row.time_ms = date_at(doc, "ts");
                  row.model = utf8_at(doc, "model");
                  row.tenant_id = utf8_at(doc, "tenant_id");
                  row.deployment = utf8_at(doc, "deployment");
                  row.host = utf8_at(doc, "host");
                  row.input_tokens = int64_at(doc, "usage.input_tokens").value_or(0);
                  row.output_tokens = int64_at(doc, "usage.output_tokens").value_or(0);
                  bson_iter_t iter, uuids;
                  if (bson_iter_init_find(&iter, doc, "gpu_uuids") &&
                      BSON_ITER_HOLDS_ARRAY(&iter) && bson_iter_recurse(&iter, &uuids)) {
                    while (bson_iter_next(&uuids)) {
                      if (BSON_ITER_HOLDS_UTF8(&uuids))
                        row.gpu_uuids.emplace_back(bson_iter_utf8(&uuids, nullptr));
                    }
                  }
                  inputs.usage.push_back(std::move(row));
                });
  if (!read) return read.error();

  // What was priced before: the cost documents of the same usage times (kCostCollection).
  std::map<std::string, cost::StoredCost> stored;
  const BsonPtr cost_opts = projection_of({"cost"}, true);
  read = find_each(client.get(), settings_.database, kCostCollection, usage_filter.get(),
                   cost_opts.get(), [&](const bson_t* doc) {
                     cost::StoredCost& c = stored[utf8_at(doc, "_id")];
                     c.priced = true;
                     c.amortized_usd = double_at(doc, "cost.amortized_usd");
                     c.utilization_usd = double_at(doc, "cost.utilization_usd");
                     c.energy_usd = double_at(doc, "cost.energy_usd");
                     c.gpu_seconds = double_at(doc, "cost.gpu_seconds");
                     c.energy_j = double_at(doc, "cost.energy_j");
                   });
  if (!read) return read.error();
  for (cost::UsageRow& row : inputs.usage) {
    if (const auto it = stored.find(row.id); it != stored.end()) row.stored = it->second;
  }

  const BsonPtr sample_filter = ts_range(start_ms - lookback_ms, end_ms);
  const BsonPtr sample_opts = projection_of(
      {"gpu_uuid", "host", "model_name", "ts", "utilization_gpu_percent", "energy_consumed_mj"},
      false);
  read = find_each(client.get(), settings_.database, "gpu_metrics", sample_filter.get(),
                   sample_opts.get(), [&](const bson_t* doc) {
                     cost::GpuSampleRow row;
                     row.gpu_uuid = utf8_at(doc, "gpu_uuid");
                     row.host = utf8_at(doc, "host");
                     row.model_name = utf8_at(doc, "model_name");
                     row.time_ms = date_at(doc, "ts");
                     row.utilization_gpu_percent = double_at(doc, "utilization_gpu_percent");
                     row.energy_consumed_mj = int64_at(doc, "energy_consumed_mj");
                     inputs.samples.push_back(std::move(row));
                   });
  if (!read) return read.error();

  const BsonPtr placement_filter(BCON_NEW("first_seen", "{", "$lt", BCON_INT64(end_ms), "}"));
  const BsonPtr placement_opts =
      projection_of({"deployment", "target", "first_seen", "last_seen"}, false);
  read =
      find_each(client.get(), settings_.database, "placements", placement_filter.get(),
                placement_opts.get(), [&](const bson_t* doc) {
                  inputs.placements.push_back({utf8_at(doc, "deployment"), utf8_at(doc, "target"),
                                               int64_at(doc, "first_seen").value_or(0),
                                               int64_at(doc, "last_seen").value_or(0)});
                });
  if (!read) return read.error();

  std::sort(inputs.usage.begin(), inputs.usage.end(), [](const auto& a, const auto& b) {
    return std::tie(a.time_ms, a.id) < std::tie(b.time_ms, b.id);
  });
  std::sort(inputs.samples.begin(), inputs.samples.end(), [](const auto& a, const auto& b) {
    return std::tie(a.time_ms, a.gpu_uuid) < std::tie(b.time_ms, b.gpu_uuid);
  });
  std::sort(inputs.placements.begin(), inputs.placements.end(), [](const auto& a, const auto& b) {
    return std::tie(a.deployment, a.target) < std::tie(b.deployment, b.target);
  });
  return inputs;
}

namespace {

// The cost documents of `costs` (kCostCollection), replaced: one delete_many of their ids, then
// unordered inserts. Not updates: FerretDB 1.24 scans the whole collection for every update
// statement (measured: about 2 us per stored document per update, so a window of 20,000 usage
// documents in a collection of 100,000 took over an hour), where one delete_many by $in scans
// it once and inserts do not scan at all. A crash between the two leaves the window's mark in
// place, so the window is priced again.
Result<bool> replace_cost_documents(mongoc_collection_t* collection,
                                    const std::vector<cost::UsageCost>& costs) {
  // Every document is built before anything is deleted: a block that cannot be converted
  // leaves the stored costs as they were.
  BsonPtr filter(bson_new());
  bson_t id, in;
  BSON_APPEND_DOCUMENT_BEGIN(filter.get(), "_id", &id);
  BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
  std::vector<BsonPtr> docs;
  docs.reserve(costs.size());
  std::set<std::string> ids;
  bson_error_t error;
  for (const auto& c : costs) {
    if (!ids.insert(c.id).second) continue;
    const std::string key = std::to_string(ids.size() - 1);
    BSON_APPEND_UTF8(&in, key.c_str(), c.id.c_str());
    const std::string json = cost::cost_block_json(c);
    const BsonPtr block(bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                           static_cast<ssize_t>(json.size()), &error));
    if (!block) {
      return Error::permanent("cost block not convertible to BSON: " + std::string(error.message));
    }
    BsonPtr doc(bson_new());
    BSON_APPEND_UTF8(doc.get(), "_id", c.id.c_str());
    BSON_APPEND_DATE_TIME(doc.get(), "ts", c.time_ms);
    BSON_APPEND_INT64(doc.get(), "window_start", c.window_start_ms);
    BSON_APPEND_UTF8(doc.get(), "model", c.model.c_str());
    BSON_APPEND_UTF8(doc.get(), "tenant_id", c.tenant_id.c_str());
    if (!c.deployment.empty()) BSON_APPEND_UTF8(doc.get(), "deployment", c.deployment.c_str());
    BSON_APPEND_DOCUMENT(doc.get(), "cost", block.get());
    docs.push_back(std::move(doc));
  }
  bson_append_array_end(&id, &in);
  bson_append_document_end(filter.get(), &id);
  bson_t reply;
  const bool deleted =
      mongoc_collection_delete_many(collection, filter.get(), nullptr, &reply, &error);
  const bool concern_failed = has_write_concern_error(&reply);
  bson_destroy(&reply);
  if (!deleted) return classify(error);
  if (concern_failed)
    return Error::retryable("write concern not satisfied: " + std::string(error.message));

  constexpr std::size_t kChunk = 1000;
  for (std::size_t from = 0; from < docs.size(); from += kChunk) {
    std::vector<const bson_t*> pointers;
    for (std::size_t i = from; i < std::min(docs.size(), from + kChunk); ++i) {
      pointers.push_back(docs[i].get());
    }
    const BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(false)));
    bson_t insert_reply;
    const bool ok = mongoc_collection_insert_many(collection, pointers.data(), pointers.size(),
                                                  opts.get(), &insert_reply, &error);
    const std::vector<WriteError> errors = write_errors(&insert_reply);
    const bool insert_concern_failed = has_write_concern_error(&insert_reply);
    bson_destroy(&insert_reply);
    if (!errors.empty()) {
      const WriteError& first = errors.front();
      // A duplicate means another pricer wrote the same document between our delete and
      // insert (only possible when its claim raced ours): price the window again.
      const std::string message = std::to_string(errors.size()) + " of " +
                                  std::to_string(pointers.size()) +
                                  " cost documents not inserted, the first with code " +
                                  std::to_string(first.code) + ": " + first.message;
      return classify_write_error(first.code, message);
    }
    if (insert_concern_failed)
      return Error::retryable("write concern not satisfied: " + std::string(error.message));
    if (!ok) return classify(error);
  }
  return true;
}

}  // namespace

Result<bool> MongoStore::write_costs(const std::vector<cost::UsageCost>& costs,
                                     const std::optional<CostWindowMark>& clear) {
  Client client(pool_);
  mongoc_collection_t* windows =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "cost_windows");
  const auto done = [&](Result<bool> result) {
    mongoc_collection_destroy(windows);
    return result;
  };
  if (clear) {
    // Only while the claim is ours: a pricer whose lease ran out and was taken over writes
    // nothing (the one that took it prices the window whole).
    const BsonPtr claimed(BCON_NEW("_id", BCON_INT64(clear->start_ms), "claim_token",
                                   BCON_INT64(clear->claim_token)));
    bson_error_t error;
    const std::int64_t held = mongoc_collection_count_documents(windows, claimed.get(), nullptr,
                                                                nullptr, nullptr, &error);
    if (held < 0) return done(classify(error));
    if (held == 0) return done(false);
  }
  if (!costs.empty()) {
    // Before the costs, as write() marks before the requests: the minutes they change.
    std::vector<std::int64_t> times;
    for (const auto& c : costs) times.push_back(c.time_ms);
    if (auto marked = mark_usage_minutes(client.get(), settings_.database, times); !marked) {
      return done(marked);
    }
    mongoc_collection_t* collection =
        mongoc_client_get_collection(client.get(), settings_.database.c_str(), kCostCollection);
    Result<bool> replaced = replace_cost_documents(collection, costs);
    mongoc_collection_destroy(collection);
    if (!replaced) return done(replaced);
    // Again once written (as in write()): a roll-up during a slow write cleared the first mark.
    if (auto marked = mark_usage_minutes(client.get(), settings_.database, times); !marked) {
      return done(marked);
    }
  }
  if (clear) {
    // Only the mark that was read: one set again while the window was priced has another nonce
    // and stays, its claim released so that the events stored meanwhile are priced on the next
    // pass (claim_token stays, claim_until 0 is in the past).
    const BsonPtr selector(BCON_NEW("_id", BCON_INT64(clear->start_ms), "nonce",
                                    BCON_INT64(clear->nonce), "claim_token",
                                    BCON_INT64(clear->claim_token)));
    bson_t reply;
    bson_error_t error;
    if (!mongoc_collection_delete_one(windows, selector.get(), nullptr, &reply, &error)) {
      bson_destroy(&reply);
      return done(classify(error));
    }
    const std::int64_t deleted = int64_at(&reply, "deletedCount").value_or(0);
    bson_destroy(&reply);
    if (deleted == 0) {
      const BsonPtr ours(BCON_NEW("_id", BCON_INT64(clear->start_ms), "claim_token",
                                  BCON_INT64(clear->claim_token)));
      const BsonPtr release(BCON_NEW("$set", "{", "claim_until", BCON_INT64(0), "}"));
      if (!mongoc_collection_update_one(windows, ours.get(), release.get(), nullptr, nullptr,
                                        &error)) {
        return done(classify(error));
      }
    }
  }
  return done(true);
}

Result<bool> MongoStore::upsert_placements(const std::vector<cost::PlacementRow>& placements) {
  // One upsert per placement: the same pair twice in a batch is merged here first.
  std::map<std::string, cost::PlacementRow> merged;
  for (const auto& p : placements) {
    const auto [it, inserted] = merged.try_emplace(p.deployment + "\n" + p.target, p);
    if (!inserted) {
      it->second.first_seen_ms = std::min(it->second.first_seen_ms, p.first_seen_ms);
      it->second.last_seen_ms = std::max(it->second.last_seen_ms, p.last_seen_ms);
    }
  }
  if (merged.empty()) return true;
  std::vector<Upsert> ops;
  for (const auto& [id, p] : merged) {
    ops.push_back({BsonPtr(BCON_NEW("_id", BCON_UTF8(id.c_str()))),
                   BsonPtr(BCON_NEW("$set", "{", "deployment", BCON_UTF8(p.deployment.c_str()),
                                    "target", BCON_UTF8(p.target.c_str()), "}", "$min", "{",
                                    "first_seen", BCON_INT64(p.first_seen_ms), "}", "$max", "{",
                                    "last_seen", BCON_INT64(p.last_seen_ms), "}"))});
  }
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "placements");
  Result<bool> result = upsert_all(collection, ops);
  mongoc_collection_destroy(collection);
  return result;
}

// The window starts are computed here from ts alone: FerretDB 1.24 has no date arithmetic to
// group by window in the pipeline.
Result<std::vector<std::int64_t>> MongoStore::usage_window_starts(std::int64_t from_ms,
                                                                  std::int64_t to_ms,
                                                                  std::int64_t window_ms) {
  if (window_ms <= 0) return Error::permanent("window_ms must be positive");
  Client client(pool_);
  std::set<std::int64_t> starts;
  const BsonPtr filter = ts_range(from_ms, to_ms);
  const BsonPtr opts = projection_of({"ts"}, false);
  Result<bool> read =
      find_each(client.get(), settings_.database, "token_usage", filter.get(), opts.get(),
                [&](const bson_t* doc) {
                  bson_iter_t iter;
                  if (bson_iter_init_find(&iter, doc, "ts") && BSON_ITER_HOLDS_DATE_TIME(&iter)) {
                    starts.insert(cost::window_start(bson_iter_date_time(&iter), window_ms));
                  }
                });
  if (!read) return read.error();
  return std::vector<std::int64_t>(starts.begin(), starts.end());
}

}  // namespace telemetryd::mongo
