#pragma once
// Counts documents in FerretDB from tests, with libmongoc.

#include <cstdint>
#include <string>
#include <vector>

namespace test_support {

/// Documents in database.collection that match `filter_json` (a query as JSON; empty: all);
/// -1 when the server did not answer or the filter is not JSON.
std::int64_t count_documents(const std::string& uri, const std::string& database,
                             const std::string& collection, const std::string& filter_json = {});
/// Every document of database.collection that matches `filter_json` (empty: all) as relaxed
/// extended JSON (dates as {"$date": ...}), sorted by _id; empty when the server did not answer.
std::vector<std::string> find_documents_json(const std::string& uri, const std::string& database,
                                             const std::string& collection,
                                             const std::string& filter_json = {});
/// Drops a test database (cleanup; errors ignored).
void drop_database(const std::string& uri, const std::string& database);
/// Drops one collection of a test database (errors ignored).
void drop_collection(const std::string& uri, const std::string& database,
                     const std::string& collection);

}  // namespace test_support
