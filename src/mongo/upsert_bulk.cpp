#include "mongo/upsert_bulk.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "mongo/mongo_errors.hpp"

namespace telemetryd::mongo {

Result<std::optional<std::size_t>> run_upserts(mongoc_collection_t* collection,
                                               const std::vector<Upsert>& ops, std::size_t from) {
  const BsonPtr bulk_opts(BCON_NEW("ordered", BCON_BOOL(false)));
  const BsonPtr upsert(BCON_NEW("upsert", BCON_BOOL(true)));
  mongoc_bulk_operation_t* bulk =
      mongoc_collection_create_bulk_operation_with_opts(collection, bulk_opts.get());
  bson_error_t error;
  for (std::size_t i = from; i < ops.size(); ++i) {
    if (!mongoc_bulk_operation_update_many_with_opts(bulk, ops[i].selector.get(),
                                                     ops[i].update.get(), upsert.get(), &error)) {
      mongoc_bulk_operation_destroy(bulk);
      return Error::permanent(error.message);  // a malformed update: a bug, not the server
    }
  }
  bson_t reply;
  const bool ok = mongoc_bulk_operation_execute(bulk, &reply, &error) != 0;
  mongoc_bulk_operation_destroy(bulk);
  const std::vector<WriteError> errors = write_errors(&reply);
  const bool concern_failed = has_write_concern_error(&reply);
  bson_destroy(&reply);
  if (concern_failed)
    return Error::retryable("write concern not satisfied: " + std::string(error.message));
  if (ok) return std::optional<std::size_t>();
  // No write error: the server did not answer. Another write error: an answer to pass on.
  if (errors.empty()) return classify(error);
  std::size_t first = ops.size();
  for (const auto& e : errors) {
    if (e.code != kDuplicateKey || e.index < 0 ||
        static_cast<std::size_t>(e.index) >= ops.size() - from) {
      return classify(error);
    }
    first = std::min(first, from + static_cast<std::size_t>(e.index));
  }
  return std::optional<std::size_t>(first);
}

Result<bool> upsert_all(mongoc_collection_t* collection, const std::vector<Upsert>& ops) {
  constexpr int kRaceRetries = 6;  // 10 ms doubling: about 0.6 s in all
  std::size_t from = 0;
  int retries = 0;  // of the upsert at `from`
  while (from < ops.size()) {
    Result<std::optional<std::size_t>> refused = run_upserts(collection, ops, from);
    if (!refused) return refused.error();
    if (!refused.value()) return true;
    const std::size_t first_failed = *refused.value();
    retries = first_failed == from ? retries + 1 : 1;
    if (retries > kRaceRetries) return Error::retryable("upsert kept racing another writer");
    std::this_thread::sleep_for(std::chrono::milliseconds(10) * (1 << (retries - 1)));
    from = first_failed;
  }
  return true;
}

}  // namespace telemetryd::mongo
