#include "mongo/mongo_store.hpp"

// libbson declares bson_t 128-byte aligned; smart pointers and vectors of bson_t pointers drop
// that attribute from the template argument, which is harmless for pointers.
#pragma GCC diagnostic ignored "-Wignored-attributes"

#include <algorithm>
#include <array>
#include <map>

#include "mongo/bson_json.hpp"
#include "mongo/mongo_errors.hpp"
#include "mongo/mongo_index.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::mongo {

using processor::EventKind;

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

struct BsonDeleter {
  void operator()(bson_t* b) const { bson_destroy(b); }
};
using BsonPtr = std::unique_ptr<bson_t, BsonDeleter>;

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void append_optional_double(bson_t* doc, const char* key, const std::optional<double>& value) {
  if (value) {
    BSON_APPEND_DOUBLE(doc, key, *value);
  } else {
    BSON_APPEND_NULL(doc, key);
  }
}

// The stored document: the event's data fields at the top level, with _id, ts (a BSON date for
// range queries and TTL), source and, for usage, the cost block.
BsonPtr make_document(const processor::StoredEvent& stored, std::string& error) {
  const auto& e = *stored.event;
  bson_error_t bson_error;
  bson_t* data = bson_new_from_json(reinterpret_cast<const uint8_t*>(e.data_json.data()),
                                    static_cast<ssize_t>(e.data_json.size()), &bson_error);
  if (data == nullptr) {
    error = bson_error.message;
    return nullptr;
  }
  BsonPtr doc(bson_new());
  BSON_APPEND_UTF8(doc.get(), "_id", e.id.c_str());
  BSON_APPEND_DATE_TIME(doc.get(), "ts", to_ms(e.time));
  BSON_APPEND_UTF8(doc.get(), "source", e.source.c_str());
  BSON_APPEND_DATE_TIME(doc.get(), "received_at", to_ms(std::chrono::system_clock::now()));
  bson_concat(doc.get(), data);
  bson_destroy(data);
  if (stored.cost) {
    const auto& c = *stored.cost;
    bson_t cost;
    BSON_APPEND_DOCUMENT_BEGIN(doc.get(), "cost", &cost);
    append_optional_double(&cost, "amount_usd", c.amount_usd);
    append_optional_double(&cost, "cost_per_token", c.cost_per_token);
    BSON_APPEND_DOUBLE(&cost, "price_per_hour_usd", c.price_per_hour_usd);
    BSON_APPEND_DOUBLE(&cost, "window_s", c.window_s);
    BSON_APPEND_INT64(&cost, "tokens_in_window", c.tokens_in_window);
    BSON_APPEND_UTF8(&cost, "gpu_model", c.gpu_model.c_str());
    BSON_APPEND_UTF8(&cost, "basis", c.basis.c_str());
    bson_append_document_end(doc.get(), &cost);
  }
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
  for (const auto& index : indexes) {
    Result<bool> created =
        create_index(client, settings_.database, index.collection, index.name, index.key.get());
    if (!created) return created;
  }
  if (settings_.ttl_days > 0) {
    const BsonPtr ts(BCON_NEW("ts", BCON_INT32(1)));
    for (const char* collection : {"gpu_metrics", "token_usage"}) {
      Result<bool> created = create_index(client, settings_.database, collection, "ts_ttl",
                                          ts.get(), settings_.ttl_days * 86400);
      if (!created) return created;
    }
  }
  return true;
}

Result<bool> MongoStore::prepare(const processor::GpuCatalog& catalog) {
  Client client(pool_);
  if (auto indexes = ensure_indexes(client.get()); !indexes) return indexes.error();
  mongoc_collection_t* gpus =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpus");
  Result<bool> result = true;
  for (const auto& entry : catalog.entries()) {
    BsonPtr selector(BCON_NEW("_id", BCON_UTF8(entry.name.c_str())));
    BsonPtr update(BCON_NEW("$set", "{", "name", BCON_UTF8(entry.name.c_str()), "model_name",
                            BCON_UTF8(entry.model_name.c_str()), "price_per_hour_usd",
                            BCON_DOUBLE(entry.price_per_hour_usd), "}"));
    BsonPtr opts(BCON_NEW("upsert", BCON_BOOL(true)));
    bson_error_t error;
    if (!mongoc_collection_update_one(gpus, selector.get(), update.get(), opts.get(), nullptr,
                                      &error)) {
      result = classify(error);
      break;
    }
  }
  mongoc_collection_destroy(gpus);
  return result;
}

Result<processor::WriteOutcome> MongoStore::write(
    const std::vector<processor::StoredEvent>& batch) {
  processor::WriteOutcome outcome;
  // One unordered insert per collection; batch indexes are kept to map write errors back.
  for (const EventKind kind : {EventKind::kGpuMetrics, EventKind::kTokenUsage}) {
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
    const char* name = kind == EventKind::kGpuMetrics ? "gpu_metrics" : "token_usage";
    Client client(pool_);
    mongoc_collection_t* collection =
        mongoc_client_get_collection(client.get(), settings_.database.c_str(), name);
    BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(false)));
    bson_t reply;
    bson_error_t error;
    const bool ok = mongoc_collection_insert_many(collection, pointers.data(), pointers.size(),
                                                  opts.get(), &reply, &error);
    mongoc_collection_destroy(collection);
    std::size_t write_errors = 0;
    bson_iter_t iter, errors;
    if (bson_iter_init_find(&iter, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&iter) &&
        bson_iter_recurse(&iter, &errors)) {
      while (bson_iter_next(&errors)) {
        bson_iter_t item;
        std::int32_t index = -1, code = 0;
        std::string message;
        if (!bson_iter_recurse(&errors, &item)) continue;
        while (bson_iter_next(&item)) {
          const std::string_view key = bson_iter_key(&item);
          if (key == "index") index = bson_iter_as_int64(&item);
          if (key == "code") code = bson_iter_as_int64(&item);
          if (key == "errmsg") message = bson_iter_utf8(&item, nullptr);
        }
        ++write_errors;
        if (code == 11000) {
          ++outcome.duplicates;
        } else if (index >= 0 && static_cast<std::size_t>(index) < positions.size()) {
          outcome.rejected.emplace_back(positions[index],
                                        "code " + std::to_string(code) + ": " + message);
        }
      }
    }
    const bool concern_failed = has_write_concern_error(&reply);
    bson_destroy(&reply);
    // Written, but not as durably as asked (majority not reached, a step-down): not done, and
    // the retry is idempotent by _id.
    if (concern_failed)
      return Error::retryable("write concern not satisfied: " + std::string(error.message));
    // Write errors alone (duplicates, rejected documents) are answers; a network failure means
    // part of the batch may not have been tried, so the whole batch is retried (ids make the
    // retry idempotent).
    if (!ok && (write_errors == 0 || classify(error).kind == Error::Kind::kRetryable)) {
      return classify(error);
    }
    const std::size_t inserted = docs.size() - write_errors;
    (kind == EventKind::kGpuMetrics ? outcome.gpu_metrics_inserted
                                    : outcome.token_usage_inserted) += inserted;
  }
  return outcome;
}

Result<std::string> MongoStore::latest_gpu_json(const processor::GpuQuery& query) {
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpu_metrics");
  BsonPtr filter(bson_new());
  if (!query.gpu_uuid.empty()) BSON_APPEND_UTF8(filter.get(), "gpu_uuid", query.gpu_uuid.c_str());
  if (!query.host.empty()) BSON_APPEND_UTF8(filter.get(), "host", query.host.c_str());
  BsonPtr opts(BCON_NEW("sort", "{", "ts", BCON_INT32(-1), "}", "limit", BCON_INT64(1)));
  mongoc_cursor_t* cursor =
      mongoc_collection_find_with_opts(collection, filter.get(), opts.get(), nullptr);
  const bson_t* doc = nullptr;
  std::string out = "null";
  if (mongoc_cursor_next(cursor, &doc)) {
    JsonWriter json;
    write_bson_document(json, doc);
    out = json.take();
  }
  bson_error_t error;
  const bool failed = mongoc_cursor_error(cursor, &error);
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(collection);
  if (failed) return classify(error);
  return out;
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

Result<std::string> MongoStore::usage_json(const processor::UsageQuery& query) {
  Client client(pool_);
  BsonPtr match(bson_new());
  if (query.from || query.to) {
    bson_t range;
    BSON_APPEND_DOCUMENT_BEGIN(match.get(), "ts", &range);
    if (query.from) BSON_APPEND_DATE_TIME(&range, "$gte", to_ms(*query.from));
    if (query.to) BSON_APPEND_DATE_TIME(&range, "$lt", to_ms(*query.to));
    bson_append_document_end(match.get(), &range);
  }
  const char* group_field = query.group_by == "tenant" ? "$tenant_id" : "$model";
  // One $group per sum: FerretDB 1.24 answers 0 for every accumulator after the first one of a
  // $group (seen on the test server: requests {$sum: 1} right, then input_tokens
  // {$sum: "$usage.input_tokens"} 0). Four one-accumulator groups are right on both servers.
  constexpr std::array<const char*, 4> kSummed{nullptr, "$usage.input_tokens",
                                               "$usage.output_tokens", "$cost.amount_usd"};
  std::map<std::string, std::array<double, 4>> rows;
  for (std::size_t slot = 0; slot < kSummed.size(); ++slot) {
    BsonPtr pipeline(kSummed[slot] == nullptr
                         ? BCON_NEW("pipeline", "[", "{", "$match", BCON_DOCUMENT(match.get()), "}",
                                    "{", "$group", "{", "_id", BCON_UTF8(group_field), "v", "{",
                                    "$sum", BCON_INT32(1), "}", "}", "}", "]")
                         : BCON_NEW("pipeline", "[", "{", "$match", BCON_DOCUMENT(match.get()), "}",
                                    "{", "$group", "{", "_id", BCON_UTF8(group_field), "v", "{",
                                    "$sum", BCON_UTF8(kSummed[slot]), "}", "}", "}", "]"));
    mongoc_collection_t* collection =
        mongoc_client_get_collection(client.get(), settings_.database.c_str(), "token_usage");
    mongoc_cursor_t* cursor = mongoc_collection_aggregate(collection, MONGOC_QUERY_NONE,
                                                          pipeline.get(), nullptr, nullptr);
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cursor, &doc)) {
      bson_iter_t field;
      std::string id;
      if (bson_iter_init_find(&field, doc, "_id") && BSON_ITER_HOLDS_UTF8(&field)) {
        id = bson_iter_utf8(&field, nullptr);
      }
      double value = 0;
      if (bson_iter_init_find(&field, doc, "v") && BSON_ITER_HOLDS_NUMBER(&field)) {
        value = bson_iter_as_double(&field);
      }
      rows[id][slot] = value;
    }
    bson_error_t error;
    const bool failed = mongoc_cursor_error(cursor, &error);
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(collection);
    if (failed) return classify(error);
  }
  JsonWriter json;
  json.begin_array();
  for (const auto& [id, sums] : rows) {
    json.begin_object()
        .key("_id")
        .value(id)
        .key("requests")
        .value(static_cast<std::int64_t>(sums[0]))
        .key("input_tokens")
        .value(static_cast<std::int64_t>(sums[1]))
        .key("output_tokens")
        .value(static_cast<std::int64_t>(sums[2]))
        .key("cost_usd")
        .value(sums[3])
        .end_object();
  }
  json.end_array();
  return json.take();
}

// FerretDB 1.24, which the tests run against, groups with $sum and $count only: no date
// arithmetic to compute a bucket, no $avg or $max. So the database filters on the
// {gpu_uuid, ts} index and returns only the summarised fields, and the buckets are summed here.
Result<std::string> MongoStore::gpu_series_json(const processor::SeriesQuery& query) {
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpu_metrics");
  BsonPtr filter(BCON_NEW("gpu_uuid", BCON_UTF8(query.gpu_uuid.c_str()), "ts", "{", "$gte",
                          BCON_DATE_TIME(to_ms(query.from)), "$lt", BCON_DATE_TIME(to_ms(query.to)),
                          "}"));
  BsonPtr opts(bson_new());
  bson_t projection;
  BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "projection", &projection);
  BSON_APPEND_INT32(&projection, "_id", 0);
  BSON_APPEND_INT32(&projection, "ts", 1);
  std::vector<std::string> top_level;  // "activity" once for both of its fields
  for (const auto& field : processor::kSeriesFields) {
    const std::string_view path = field.path;
    const std::string name(path.substr(0, path.find('.')));
    if (std::find(top_level.begin(), top_level.end(), name) != top_level.end()) continue;
    BSON_APPEND_INT32(&projection, name.c_str(), 1);
    top_level.push_back(name);
  }
  bson_append_document_end(opts.get(), &projection);
  mongoc_cursor_t* cursor =
      mongoc_collection_find_with_opts(collection, filter.get(), opts.get(), nullptr);
  processor::SeriesBuilder builder(query.step_ms);
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t iter;
    if (!bson_iter_init_find(&iter, doc, "ts") || !BSON_ITER_HOLDS_DATE_TIME(&iter)) continue;
    builder.add_sample(bson_iter_date_time(&iter));
    for (std::size_t i = 0; i < processor::kSeriesFields.size(); ++i) {
      bson_iter_t field;
      if (bson_iter_init(&iter, doc) &&
          bson_iter_find_descendant(&iter, processor::kSeriesFields[i].path, &field) &&
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
  std::vector<processor::SeriesPoint> points = builder.take();
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
  return processor::series_points_json(points);
}

// distinct, then the latest document of each GPU on the {gpu_uuid, ts} index: FerretDB 1.24
// has no $first to take it in one $sort + $group. One query per GPU is bounded by the fleet.
Result<std::string> MongoStore::devices_json() {
  Client client(pool_);
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpu_metrics");
  BsonPtr command(BCON_NEW("distinct", BCON_UTF8("gpu_metrics"), "key", BCON_UTF8("gpu_uuid")));
  bson_t reply;
  bson_error_t error;
  if (!mongoc_collection_read_command_with_opts(collection, command.get(), nullptr, nullptr, &reply,
                                                &error)) {
    bson_destroy(&reply);
    mongoc_collection_destroy(collection);
    return classify(error);
  }
  std::vector<std::string> uuids;
  bson_iter_t iter, values;
  if (bson_iter_init_find(&iter, &reply, "values") && BSON_ITER_HOLDS_ARRAY(&iter) &&
      bson_iter_recurse(&iter, &values)) {
    while (bson_iter_next(&values)) {
      if (BSON_ITER_HOLDS_UTF8(&values)) uuids.emplace_back(bson_iter_utf8(&values, nullptr));
    }
  }
  bson_destroy(&reply);
  std::sort(uuids.begin(), uuids.end());

  BsonPtr opts(bson_new());
  bson_t projection;
  BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "projection", &projection);
  BSON_APPEND_INT32(&projection, "_id", 0);
  for (const char* field : processor::kDeviceFields) BSON_APPEND_INT32(&projection, field, 1);
  bson_append_document_end(opts.get(), &projection);
  bson_t sort;
  BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "sort", &sort);
  BSON_APPEND_INT32(&sort, "ts", -1);
  bson_append_document_end(opts.get(), &sort);
  BSON_APPEND_INT64(opts.get(), "limit", 1);

  JsonWriter json;
  json.begin_array();
  Result<std::string> result = std::string();
  for (const auto& uuid : uuids) {
    BsonPtr filter(BCON_NEW("gpu_uuid", BCON_UTF8(uuid.c_str())));
    mongoc_cursor_t* cursor =
        mongoc_collection_find_with_opts(collection, filter.get(), opts.get(), nullptr);
    const bson_t* doc = nullptr;
    if (mongoc_cursor_next(cursor, &doc)) {
      json.begin_object();
      for (const char* field : processor::kDeviceFields) {
        if (bson_iter_init_find(&iter, doc, field) && !BSON_ITER_HOLDS_NULL(&iter)) {
          json.key(field);
          write_bson_value(json, &iter);
        }
      }
      json.end_object();
    }
    const bool failed = mongoc_cursor_error(cursor, &error);
    mongoc_cursor_destroy(cursor);
    if (failed) {
      result = classify(error);
      break;
    }
  }
  mongoc_collection_destroy(collection);
  if (!result) return result;
  json.end_array();
  return json.take();
}

}  // namespace telemetryd::mongo
