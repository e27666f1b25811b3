#include "mongo/mongo_index.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <thread>

#include "mongo/mongo_errors.hpp"

namespace telemetryd::mongo {
namespace {

// What a concurrent creator of the same index leaves the loser of the race with: the
// collection (created implicitly by createIndexes) or the index appeared, or is being built,
// under another processor's command. Identical indexes are what every processor asks for, so
// once the winner is done the same command answers ok ("already exists"): it is tried again
// rather than failing the start. DuplicateKey is how FerretDB answers a collection created at
// the same moment; NamespaceExists and IndexBuildAlreadyInProgress are MongoDB's.
bool lost_a_race(const bson_error_t& error) {
  static constexpr std::uint32_t kCodes[] = {
      11000,  // DuplicateKey
      48,     // NamespaceExists
      68,     // IndexAlreadyExists (pre-4.2 servers)
      276,    // IndexBuildAlreadyInProgress
  };
  return std::find(std::begin(kCodes), std::end(kCodes), error.code) != std::end(kCodes);
}

constexpr int kRaceRetries = 6;  // 10 ms doubling: about 0.6 s in all

}  // namespace

Result<bool> create_index(mongoc_client_t* client, const std::string& database,
                          const char* collection, const char* name, const bson_t* key,
                          std::int64_t expire_after_seconds) {
  bson_t index;
  bson_init(&index);
  BSON_APPEND_DOCUMENT(&index, "key", key);
  BSON_APPEND_UTF8(&index, "name", name);
  if (expire_after_seconds > 0)
    BSON_APPEND_INT64(&index, "expireAfterSeconds", expire_after_seconds);
  bson_t* command =
      BCON_NEW("createIndexes", BCON_UTF8(collection), "indexes", "[", BCON_DOCUMENT(&index), "]");
  bson_error_t error;
  bool ok = false;
  auto wait = std::chrono::milliseconds(10);
  for (int attempt = 0;; ++attempt) {
    ok = mongoc_client_command_simple(client, database.c_str(), command, nullptr, nullptr, &error);
    if (ok || !lost_a_race(error) || attempt == kRaceRetries) break;
    std::this_thread::sleep_for(wait);
    wait *= 2;
  }
  bson_destroy(command);
  bson_destroy(&index);
  if (ok) return true;
  // Still racing after the retries: the server is busy with the others' commands, not saying
  // anything about the index. Retryable, so prepare backs off and tries again.
  if (lost_a_race(error)) {
    return Error::retryable(std::string("createIndexes ") + collection + "." + name +
                            " kept conflicting with a concurrent creator: " + error.message);
  }
  return classify(error);
}

}  // namespace telemetryd::mongo
