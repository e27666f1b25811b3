#pragma once
// One unordered bulk of upserts, shared by the MongoDB store's writers (the catalog, cost marks,
// placements, the latest view). Each is an update_many on an _id (so it changes one document at
// most), never an update_one: FerretDB 1.24 (SQLite backend) keeps the query of an update_one
// statement open until its whole update command ends, holding one of the database's 100 pooled
// connections, while each statement's write takes another. A command of about 100 update_one
// statements, or a few such commands at once (three processors writing costs), then waits
// forever for a connection that it holds itself, and every later request to that database waits
// behind it. An update_many statement reads its query to the end, which frees the connection at
// once.

#include <mongoc/mongoc.h>

#include <cstddef>
#include <optional>
#include <vector>

#include "mongo/bson_ptr.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::mongo {

struct Upsert {
  BsonPtr selector;
  BsonPtr update;
};

/// Runs ops[from..] as one unordered bulk: the index (into ops) of the first upsert the server
/// refused with a duplicate key, or nullopt when none was. Any other failure is an error
/// (classified, mongo_errors.hpp). FerretDB 1.24 ends an unordered bulk at its first write error,
/// so the upserts after a refused one may not have been tried.
Result<std::optional<std::size_t>> run_upserts(mongoc_collection_t* collection,
                                               const std::vector<Upsert>& ops, std::size_t from);

/// Runs every op (run_upserts), again from the first one refused with a duplicate key: two
/// processors upserting the same new _id at once can both try the insert, and the loser gets
/// E11000 (MongoDB retries that itself for an equality on _id; FerretDB never). Tried again, the
/// upsert finds the document and updates it, so a race never fails the batch. Two things seen
/// on the test server (FerretDB 1.24) shape the retry:
/// - an unordered update batch ends at its first write error (the upserts after it are not
///   applied), so the retry runs from the first failed upsert to the end (every upsert is
///   idempotent);
/// - the same upsert keeps failing while the winner's update command runs (tens of milliseconds
///   for 20 upserts), so a retry waits, longer each time. Still failing after a few retries
///   (about 0.6 s), it is a retryable error: a conflict, not an answer about the documents.
Result<bool> upsert_all(mongoc_collection_t* collection, const std::vector<Upsert>& ops);

}  // namespace telemetryd::mongo
