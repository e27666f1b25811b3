#include "mongo/mongo_latest_view.hpp"

// libbson declares bson_t 128-byte aligned; vectors of bson_t pointers drop that attribute from
// the template argument, which is harmless for pointers.
#pragma GCC diagnostic ignored "-Wignored-attributes"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include "mongo/bson_json.hpp"
#include "mongo/bson_ptr.hpp"
#include "mongo/collection.hpp"
#include "mongo/find_each.hpp"
#include "mongo/mongo_errors.hpp"
#include "mongo/upsert_bulk.hpp"
#include "query/gpu_series.hpp"
#include "telemetryd/json_writer.hpp"

namespace telemetryd::mongo {

namespace {

// A refused upsert is read back and tried again this often at most: more means another writer
// keeps creating the same GPUs' documents, a condition to retry later, not an answer.
constexpr int kRaceRetries = 6;  // 10 ms doubling between tries: about 0.6 s in all

// Hands the stored sample inside a view document (its `doc` field) to `use`; nothing when it has
// none. A callback, not a returned bson_t: bson_init_static points the bson_t into itself, so a
// copy of it reads freed memory.
template <typename Use>
void with_sample(const bson_t* view_document, Use&& use) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, view_document, "doc") || !BSON_ITER_HOLDS_DOCUMENT(&iter)) {
    return;
  }
  std::uint32_t length = 0;
  const std::uint8_t* data = nullptr;
  bson_iter_document(&iter, &length, &data);
  bson_t sample;
  if (bson_init_static(&sample, data, length)) use(&sample);
}

// Newest-wins upserts: {_id: uuid, ts: {$lt: ts}} matches only an older view document, and where
// none matches the upsert inserts, which a present document (as new or newer) refuses with a
// duplicate key.
std::vector<Upsert> newest_wins(const std::vector<const ViewUpdate*>& samples) {
  std::vector<Upsert> ops;
  for (const ViewUpdate* sample : samples) {
    ops.push_back({BsonPtr(BCON_NEW("_id", BCON_UTF8(sample->gpu_uuid.c_str()), "ts", "{", "$lt",
                                    BCON_DATE_TIME(sample->ts_ms), "}")),
                   BsonPtr(BCON_NEW("$set", "{", "ts", BCON_DATE_TIME(sample->ts_ms), "host",
                                    BCON_UTF8(sample->host.c_str()), "doc",
                                    BCON_DOCUMENT(sample->document), "}"))});
  }
  return ops;
}

// The view's ts of these GPUs (absent: the view holds none).
Result<std::map<std::string, std::int64_t>> stored_times(
    mongoc_collection_t* collection, const std::vector<const ViewUpdate*>& samples) {
  BsonPtr filter(bson_new());
  bson_t id, in;
  BSON_APPEND_DOCUMENT_BEGIN(filter.get(), "_id", &id);
  BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    BSON_APPEND_UTF8(&in, std::to_string(i).c_str(), samples[i]->gpu_uuid.c_str());
  }
  bson_append_array_end(&id, &in);
  bson_append_document_end(filter.get(), &id);
  const BsonPtr opts(BCON_NEW("projection", "{", "ts", BCON_INT32(1), "}"));
  std::map<std::string, std::int64_t> times;
  Result<bool> read = for_each_found(collection, filter.get(), opts.get(), [&](const bson_t* doc) {
    bson_iter_t uuid, ts;
    if (bson_iter_init_find(&uuid, doc, "_id") && BSON_ITER_HOLDS_UTF8(&uuid) &&
        bson_iter_init_find(&ts, doc, "ts") && BSON_ITER_HOLDS_DATE_TIME(&ts)) {
      times[bson_iter_utf8(&uuid, nullptr)] = bson_iter_date_time(&ts);
    }
  });
  if (!read) return read.error();
  return times;
}

}  // namespace

Result<bool> upsert_latest(mongoc_client_t* client, const std::string& database,
                           const std::vector<ViewUpdate>& samples) {
  const Collection latest(client, database, kLatestCollection);
  std::vector<const ViewUpdate*> pending;
  for (const auto& sample : samples) pending.push_back(&sample);
  for (int round = 0; !pending.empty(); ++round) {
    if (round > 1) std::this_thread::sleep_for(std::chrono::milliseconds(10 << (round - 2)));
    Result<std::optional<std::size_t>> refused = run_upserts(latest.get(), newest_wins(pending), 0);
    if (!refused) return refused.error();
    if (!refused.value()) return true;
    if (round == kRaceRetries) {
      return Error::retryable("the latest view kept racing another writer of the same GPUs");
    }
    // A refusal is an older or equal sample (the view is right as it is) or a race with another
    // writer that created the document first. FerretDB 1.24 ends an unordered bulk at its first
    // write error, so the upserts after it may be untried: from the first refused on, read what
    // the view holds and try again only those that are newer.
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(*refused.value()));
    Result<std::map<std::string, std::int64_t>> stored = stored_times(latest.get(), pending);
    if (!stored) return stored.error();
    std::erase_if(pending, [&](const ViewUpdate* sample) {
      const auto it = stored.value().find(sample->gpu_uuid);
      return it != stored.value().end() && it->second >= sample->ts_ms;
    });
  }
  return true;
}

Result<bool> backfill_latest(mongoc_client_t* client, const std::string& database) {
  {
    const Collection latest(client, database, kLatestCollection);
    const BsonPtr any(bson_new());
    const BsonPtr one(
        BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "limit", BCON_INT64(1)));
    bool filled = false;
    Result<bool> probed =
        for_each_found(latest.get(), any.get(), one.get(), [&](const bson_t*) { filled = true; });
    if (!probed) return probed;
    if (filled) return true;
  }
  // One pass over the history's _id, gpu_uuid and ts, then one find of each GPU's newest
  // document by _id. FerretDB 1.24 has no $max or $first to group by, and answers a sorted find
  // per GPU by reading the whole collection each time: one pass costs O(samples) once.
  const Collection metrics(client, database, "gpu_metrics");
  struct Newest {
    std::string id;
    std::int64_t ts_ms = 0;
  };
  std::map<std::string, Newest> newest;  // by gpu_uuid
  const BsonPtr all(bson_new());
  const BsonPtr keys(
      BCON_NEW("projection", "{", "gpu_uuid", BCON_INT32(1), "ts", BCON_INT32(1), "}"));
  Result<bool> scanned =
      for_each_found(metrics.get(), all.get(), keys.get(), [&](const bson_t* doc) {
        bson_iter_t id, uuid, ts;
        if (!bson_iter_init_find(&id, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&id) ||
            !bson_iter_init_find(&uuid, doc, "gpu_uuid") || !BSON_ITER_HOLDS_UTF8(&uuid) ||
            !bson_iter_init_find(&ts, doc, "ts") || !BSON_ITER_HOLDS_DATE_TIME(&ts)) {
          return;
        }
        const std::int64_t ts_ms = bson_iter_date_time(&ts);
        auto [it, added] = newest.try_emplace(bson_iter_utf8(&uuid, nullptr));
        if (added || ts_ms > it->second.ts_ms) it->second = {bson_iter_utf8(&id, nullptr), ts_ms};
      });
  if (!scanned) return scanned;
  if (newest.empty()) return true;

  BsonPtr by_id(bson_new());
  bson_t condition, ids;
  BSON_APPEND_DOCUMENT_BEGIN(by_id.get(), "_id", &condition);
  BSON_APPEND_ARRAY_BEGIN(&condition, "$in", &ids);
  std::size_t index = 0;
  for (const auto& [uuid, entry] : newest) {
    const std::string key = std::to_string(index++);
    BSON_APPEND_UTF8(&ids, key.c_str(), entry.id.c_str());
  }
  bson_append_array_end(&condition, &ids);
  bson_append_document_end(by_id.get(), &condition);
  std::vector<BsonPtr> documents;
  std::vector<ViewUpdate> samples;
  Result<bool> read = for_each_found(metrics.get(), by_id.get(), nullptr, [&](const bson_t* doc) {
    bson_iter_t field;
    ViewUpdate sample;
    if (bson_iter_init_find(&field, doc, "gpu_uuid") && BSON_ITER_HOLDS_UTF8(&field))
      sample.gpu_uuid = bson_iter_utf8(&field, nullptr);
    if (bson_iter_init_find(&field, doc, "ts") && BSON_ITER_HOLDS_DATE_TIME(&field))
      sample.ts_ms = bson_iter_date_time(&field);
    if (bson_iter_init_find(&field, doc, "host") && BSON_ITER_HOLDS_UTF8(&field))
      sample.host = bson_iter_utf8(&field, nullptr);
    documents.emplace_back(bson_copy(doc));
    sample.document = documents.back().get();
    samples.push_back(std::move(sample));
  });
  if (!read) return read;
  return upsert_latest(client, database, samples);
}

Result<std::vector<query::LatestSample>> latest_samples_of(mongoc_client_t* client,
                                                           const std::string& database) {
  const Collection latest(client, database, kLatestCollection);
  const BsonPtr all(bson_new());
  const BsonPtr opts(BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}"));
  std::vector<query::LatestSample> samples;
  Result<bool> read =
      for_each_found(latest.get(), all.get(), opts.get(), [&](const bson_t* view_document) {
        query::LatestSample entry;
        bson_iter_t iter;
        if (bson_iter_init_find(&iter, view_document, "_id") && BSON_ITER_HOLDS_UTF8(&iter))
          entry.gpu_uuid = bson_iter_utf8(&iter, nullptr);
        if (bson_iter_init_find(&iter, view_document, "host") && BSON_ITER_HOLDS_UTF8(&iter))
          entry.host = bson_iter_utf8(&iter, nullptr);
        if (bson_iter_init_find(&iter, view_document, "ts") && BSON_ITER_HOLDS_DATE_TIME(&iter))
          entry.ts_ms = bson_iter_date_time(&iter);
        with_sample(view_document, [&](const bson_t* sample) {
          JsonWriter document;
          write_bson_document(document, sample);
          entry.document_json = document.take();
          JsonWriter device;
          device.begin_object();
          for (const char* field : query::kDeviceFields) {
            if (bson_iter_init_find(&iter, sample, field) && !BSON_ITER_HOLDS_NULL(&iter)) {
              device.key(field);
              write_bson_value(device, &iter);
            }
          }
          device.end_object();
          entry.device_json = device.take();
          samples.push_back(std::move(entry));
        });
      });
  if (!read) return read.error();
  return samples;
}

}  // namespace telemetryd::mongo
