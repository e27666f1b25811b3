#include "worker/mongo_metadata_store.hpp"

#pragma GCC diagnostic ignored "-Wignored-attributes"
#ifdef __clang__
// The same attribute seen from clang: bson_t is declared 128-byte aligned, which heap bson_t
// from bson_new() are not either; libbson does not rely on it.
#pragma clang diagnostic ignored "-Walign-mismatch"
#endif

#include <algorithm>
#include <chrono>
#include <map>

#include "mongo/mongo_errors.hpp"
#include "mongo/mongo_index.hpp"
#include "telemetryd/errors.hpp"

namespace telemetryd::worker {
namespace {

using mongo::classify;
using mongo::classify_write_error;
using mongo::is_permanent_server_code;
using mongo::only_write_errors;

constexpr std::int64_t kDuplicateKey = 11000;

std::int64_t now_ms() {
  return to_epoch_ms(std::chrono::system_clock::now());
}

struct WriteError {
  std::int64_t index = -1;
  std::int64_t code = 0;
  std::string message;
};

// The writeErrors of an insert_many or bulk reply; true in `concern_failed` when the reply also
// carries a write-concern error (written, but not as durably as asked: not done).
std::vector<WriteError> write_errors(const bson_t* reply, bool& concern_failed) {
  std::vector<WriteError> out;
  bson_iter_t iter, errors;
  concern_failed = mongo::has_write_concern_error(reply);
  if (bson_iter_init_find(&iter, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&iter) &&
      bson_iter_recurse(&iter, &errors)) {
    while (bson_iter_next(&errors)) {
      bson_iter_t item;
      if (!bson_iter_recurse(&errors, &item)) continue;
      WriteError e;
      while (bson_iter_next(&item)) {
        const std::string_view key = bson_iter_key(&item);
        if (key == "index") e.index = bson_iter_as_int64(&item);
        if (key == "code") e.code = bson_iter_as_int64(&item);
        if (key == "errmsg" && BSON_ITER_HOLDS_UTF8(&item))
          e.message = bson_iter_utf8(&item, nullptr);
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

// One unordered insert_many into `name`: the per-document write errors for the caller to sort
// (duplicate, transient, refused), or the error of the call. A write-concern error, or a failed
// call without per-document errors (network, selection: part of the batch may not have been
// tried), fails it whole; the ids make retrying the whole batch idempotent.
Result<std::vector<WriteError>> insert_unordered(mongoc_client_t* client,
                                                 const std::string& database, const char* name,
                                                 const std::vector<BsonPtr>& docs) {
  std::vector<const bson_t*> pointers;
  for (const BsonPtr& doc : docs) pointers.push_back(doc.get());
  mongoc_collection_t* collection = mongoc_client_get_collection(client, database.c_str(), name);
  BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(false)));
  bson_t reply;
  bson_error_t error;
  const bool ok = mongoc_collection_insert_many(collection, pointers.data(), pointers.size(),
                                                opts.get(), &reply, &error);
  mongoc_collection_destroy(collection);
  bool concern_failed = false;
  std::vector<WriteError> errors = write_errors(&reply, concern_failed);
  bson_destroy(&reply);
  if (concern_failed) return Error::retryable(std::string("write concern: ") + error.message);
  if (!ok && !only_write_errors(error, errors)) {
    return classify(error);
  }
  return errors;
}

std::int64_t reply_count(const bson_t* reply, const char* key) {
  bson_iter_t iter;
  return bson_iter_init_find(&iter, reply, key) ? bson_iter_as_int64(&iter) : 0;
}

class PooledClient {
 public:
  explicit PooledClient(mongoc_client_pool_t* pool)
      : pool_(pool), client_(mongoc_client_pool_pop(pool)) {}
  ~PooledClient() { mongoc_client_pool_push(pool_, client_); }
  PooledClient(const PooledClient&) = delete;
  PooledClient& operator=(const PooledClient&) = delete;
  mongoc_client_t* get() const { return client_; }

 private:
  mongoc_client_pool_t* pool_;
  mongoc_client_t* client_;
};

}  // namespace

MongoMetadataStore::MongoMetadataStore(MongoMetadataSettings settings)
    : settings_(std::move(settings)) {
  pool_ =
      mongo::make_store_pool(settings_.connection, settings_.write_concern, "telemetryd-worker");
}

MongoMetadataStore::~MongoMetadataStore() {
  mongoc_client_pool_destroy(pool_);
}

Result<bool> MongoMetadataStore::prepare() {
  PooledClient client(pool_);
  struct Index {
    const char* collection;
    const char* name;
    BsonPtr key;
  };
  std::vector<Index> indexes;
  // A device's history, newest first; the devices of a host. gpu_devices is read by _id.
  indexes.push_back({"gpu_metadata", "gpu_uuid_observed_at",
                     BsonPtr(BCON_NEW("gpu_uuid", BCON_INT32(1), "observed_at", BCON_INT32(-1)))});
  indexes.push_back({"gpu_devices", "host", BsonPtr(BCON_NEW("host", BCON_INT32(1)))});
  for (const auto& index : indexes) {
    Result<bool> created = mongo::create_index(client.get(), settings_.database, index.collection,
                                               index.name, index.key.get());
    if (!created) return created;
  }
  return true;
}

Result<LogOutcome> MongoMetadataStore::insert_log(
    const std::vector<const MetadataDocument*>& batch) {
  LogOutcome outcome;
  if (batch.empty()) return outcome;
  const std::int64_t received = now_ms();
  std::vector<BsonPtr> docs;
  for (const MetadataDocument* doc : batch) docs.push_back(log_document(*doc, received));
  PooledClient client(pool_);
  Result<std::vector<WriteError>> inserted =
      insert_unordered(client.get(), settings_.database, "gpu_metadata", docs);
  if (!inserted) return inserted.error();
  const std::vector<WriteError>& errors = inserted.value();
  for (const WriteError& e : errors) {
    if (e.code == kDuplicateKey) {
      ++outcome.duplicates;
    } else if (!is_permanent_server_code(e.code) || e.index < 0 ||
               static_cast<std::size_t>(e.index) >= batch.size()) {
      // Transient, unclassified, or a refusal that names no document of ours: retried, never
      // dead-lettered nor counted as written (the ids make the retry idempotent).
      return classify_write_error(e.code, "code " + std::to_string(e.code) + ": " + e.message);
    } else {
      outcome.rejected.emplace_back(static_cast<std::size_t>(e.index),
                                    "code " + std::to_string(e.code) + ": " + e.message);
    }
  }
  outcome.inserted = batch.size() - outcome.duplicates - outcome.rejected.size();
  return outcome;
}

// The stored versions of these devices: _id -> (observed_at, event_id).
Result<std::map<std::string, DeviceVersion>> MongoMetadataStore::stored_versions(
    mongoc_client_t* client, const std::vector<const MetadataDocument*>& docs,
    const std::vector<std::size_t>& which) {
  std::map<std::string, DeviceVersion> out;
  BsonPtr filter(bson_new());
  bson_t in, ids;
  BSON_APPEND_DOCUMENT_BEGIN(filter.get(), "_id", &in);
  BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
  for (std::size_t n = 0; n < which.size(); ++n) {
    const std::string index = std::to_string(n);
    BSON_APPEND_UTF8(&ids, index.c_str(), docs[which[n]]->gpu_uuid.c_str());
  }
  bson_append_array_end(&in, &ids);
  bson_append_document_end(filter.get(), &in);
  BsonPtr opts(
      BCON_NEW("projection", "{", "observed_at", BCON_INT32(1), "event_id", BCON_INT32(1), "}"));
  mongoc_collection_t* collection =
      mongoc_client_get_collection(client, settings_.database.c_str(), "gpu_devices");
  mongoc_cursor_t* cursor =
      mongoc_collection_find_with_opts(collection, filter.get(), opts.get(), nullptr);
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor, &doc)) {
    bson_iter_t iter;
    if (!bson_iter_init_find(&iter, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&iter)) continue;
    const std::string id = bson_iter_utf8(&iter, nullptr);
    DeviceVersion version;
    if (bson_iter_init_find(&iter, doc, "observed_at") && BSON_ITER_HOLDS_DATE_TIME(&iter))
      version.observed_at_ms = bson_iter_date_time(&iter);
    if (bson_iter_init_find(&iter, doc, "event_id") && BSON_ITER_HOLDS_UTF8(&iter))
      version.event_id = bson_iter_utf8(&iter, nullptr);
    out[id] = std::move(version);
  }
  bson_error_t error;
  const bool failed = mongoc_cursor_error(cursor, &error);
  mongoc_cursor_destroy(cursor);
  mongoc_collection_destroy(collection);
  if (failed) return classify(error);
  return out;
}

// Upserts that rely on a duplicate key to mean "stale" do not work on FerretDB 1.24, which
// stops an update command at its first write error even when it is unordered (the later
// statements are neither applied nor reported). So stale events are told apart by reading the
// stored versions first, and the writes are ones that normally raise no error: an insert for a
// device not stored yet, and a conditional replace (device_filter, no upsert) for one that is
// older. The filter still guards against a concurrent writer (a rebalance overlap): a replace
// that no longer matches is stale, an insert that meets a duplicate key is tried again as a
// replace in the next round.
Result<StateOutcome> MongoMetadataStore::update_devices(
    const std::vector<const MetadataDocument*>& batch) {
  StateOutcome outcome;
  const std::int64_t updated_at = now_ms();
  std::vector<std::size_t> todo(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) todo[i] = i;
  PooledClient client(pool_);
  for (int round = 0; round < 3 && !todo.empty(); ++round) {
    Result<std::map<std::string, DeviceVersion>> stored =
        stored_versions(client.get(), batch, todo);
    if (!stored) return stored.error();
    std::vector<std::size_t> inserts, replaces, again;
    for (const std::size_t i : todo) {
      const auto it = stored->find(batch[i]->gpu_uuid);
      if (it == stored->end()) {
        inserts.push_back(i);
      } else if (is_newer(batch[i]->version, it->second)) {
        replaces.push_back(i);
      } else {
        ++outcome.stale;
      }
    }
    if (!inserts.empty()) {
      std::vector<BsonPtr> docs;
      for (const std::size_t i : inserts) docs.push_back(device_document(*batch[i], updated_at));
      Result<std::vector<WriteError>> inserted =
          insert_unordered(client.get(), settings_.database, "gpu_devices", docs);
      if (!inserted) return inserted.error();
      const std::vector<WriteError>& errors = inserted.value();
      std::size_t failed = 0;
      for (const WriteError& e : errors) {
        if (e.index < 0 || static_cast<std::size_t>(e.index) >= inserts.size()) {
          // An answer about no document of ours: retry rather than count them all as written.
          return classify_write_error(e.code, "code " + std::to_string(e.code) + ": " + e.message);
        }
        ++failed;
        const std::size_t i = inserts[static_cast<std::size_t>(e.index)];
        if (e.code == kDuplicateKey) {
          again.push_back(i);  // stored meanwhile by another consumer: compare again
        } else if (!is_permanent_server_code(e.code)) {
          // Transient or unclassified: retried, never dead-lettered (the ids make it idempotent).
          return classify_write_error(e.code, "code " + std::to_string(e.code) + ": " + e.message);
        } else {
          outcome.rejected.emplace_back(i, "code " + std::to_string(e.code) + ": " + e.message);
        }
      }
      outcome.updated += inserts.size() - failed;
    }
    if (!replaces.empty()) {
      mongoc_collection_t* collection =
          mongoc_client_get_collection(client.get(), settings_.database.c_str(), "gpu_devices");
      BsonPtr bulk_opts(BCON_NEW("ordered", BCON_BOOL(true)));
      mongoc_bulk_operation_t* bulk =
          mongoc_collection_create_bulk_operation_with_opts(collection, bulk_opts.get());
      std::vector<std::size_t> positions;  // bulk op index -> batch index
      for (const std::size_t i : replaces) {
        BsonPtr filter = device_filter(*batch[i]);
        BsonPtr replacement = device_document(*batch[i], updated_at);
        bson_error_t error;
        if (!mongoc_bulk_operation_replace_one_with_opts(bulk, filter.get(), replacement.get(),
                                                         nullptr, &error)) {
          outcome.rejected.emplace_back(i, error.message);
          continue;
        }
        positions.push_back(i);
      }
      if (!positions.empty()) {
        bson_t reply;
        bson_error_t error;
        const bool ok = mongoc_bulk_operation_execute(bulk, &reply, &error) != 0;
        bool concern_failed = false;
        const std::vector<WriteError> errors = write_errors(&reply, concern_failed);
        const std::int64_t matched = reply_count(&reply, "nMatched");
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
        mongoc_collection_destroy(collection);
        if (concern_failed) return Error::retryable(std::string("write concern: ") + error.message);
        if (!ok && !only_write_errors(error, errors)) {
          return classify(error);
        }
        // Ordered (as FerretDB runs it anyway): everything before the first error ran, the one
        // at the error is refused, and the rest did not run and is tried in the next round.
        std::size_t ran = positions.size();
        if (!errors.empty()) {
          const WriteError& e = errors.front();
          if (!is_permanent_server_code(e.code)) {
            // Transient or unclassified: retried, never dead-lettered (the ids make it idempotent).
            return classify_write_error(e.code,
                                        "code " + std::to_string(e.code) + ": " + e.message);
          }
          ran = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(e.index, 0)),
                                      positions.size());
          if (ran < positions.size()) {
            outcome.rejected.emplace_back(positions[ran],
                                          "code " + std::to_string(e.code) + ": " + e.message);
            for (std::size_t k = ran + 1; k < positions.size(); ++k) again.push_back(positions[k]);
          }
        }
        const std::size_t replaced = std::min<std::size_t>(
            static_cast<std::size_t>(std::max<std::int64_t>(matched, 0)), ran);
        outcome.updated += replaced;
        outcome.stale += ran - replaced;  // overtaken by a concurrent writer since the read
      } else {
        mongoc_bulk_operation_destroy(bulk);
        mongoc_collection_destroy(collection);
      }
    }
    todo = std::move(again);
  }
  if (!todo.empty()) return Error::retryable("device states kept changing under this batch");
  return outcome;
}

}  // namespace telemetryd::worker
