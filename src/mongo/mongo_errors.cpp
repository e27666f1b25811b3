#include "mongo/mongo_errors.hpp"

#include <algorithm>
#include <iterator>

namespace telemetryd::mongo {

bool is_transient_server_code(std::int64_t code) {
  static constexpr std::int64_t kCodes[] = {
      6,      // HostUnreachable
      7,      // HostNotFound
      50,     // MaxTimeMSExpired
      64,     // WriteConcernFailed
      89,     // NetworkTimeout
      91,     // ShutdownInProgress
      100,    // UnsatisfiableWriteConcern (e.g. a replica set member away)
      112,    // WriteConflict
      189,    // PrimarySteppedDown
      262,    // ExceededTimeLimit
      9001,   // SocketException
      10107,  // NotWritablePrimary
      11600,  // InterruptedAtShutdown
      11602,  // InterruptedDueToReplStateChange
      13435,  // NotPrimaryNoSecondaryOk
      13436,  // NotPrimaryOrSecondary
  };
  return std::find(std::begin(kCodes), std::end(kCodes), code) != std::end(kCodes);
}

Error classify(const bson_error_t& error) {
  const bool transient =
      error.domain == MONGOC_ERROR_SERVER_SELECTION || error.domain == MONGOC_ERROR_STREAM ||
      error.domain == MONGOC_ERROR_CLIENT || error.domain == MONGOC_ERROR_WRITE_CONCERN ||
      error.code == MONGOC_ERROR_STREAM_SOCKET ||
      ((error.domain == MONGOC_ERROR_SERVER || error.domain == MONGOC_ERROR_QUERY ||
        error.domain == MONGOC_ERROR_COMMAND) &&
       is_transient_server_code(error.code));
  return transient ? Error::retryable(error.message) : Error::permanent(error.message);
}

bool has_write_concern_error(const bson_t* reply) {
  bson_iter_t iter;
  bson_iter_t errors;
  return bson_iter_init_find(&iter, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&iter) &&
         bson_iter_recurse(&iter, &errors) && bson_iter_next(&errors);
}

}  // namespace telemetryd::mongo
