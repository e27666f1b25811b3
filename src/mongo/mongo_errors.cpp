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

bool is_permanent_server_code(std::int64_t code) {
  static constexpr std::int64_t kCodes[] = {
      2,      // BadValue
      9,      // FailedToParse
      13,     // Unauthorized
      14,     // TypeMismatch
      18,     // AuthenticationFailed
      52,     // DollarPrefixedFieldName
      56,     // EmptyFieldName
      57,     // DottedFieldName
      67,     // CannotCreateIndex
      73,     // InvalidNamespace
      85,     // IndexOptionsConflict (e.g. mongodb.ttl_days changed: drop the index first)
      86,     // IndexKeySpecsConflict
      121,    // DocumentValidationFailure
      10334,  // BSONObjectTooLarge
      17419,  // the document grew past the size limit
  };
  return std::find(std::begin(kCodes), std::end(kCodes), code) != std::end(kCodes);
}

bool refused_by_client(const bson_error_t& error) {
  return error.domain == MONGOC_ERROR_BSON ||
         (error.domain == MONGOC_ERROR_COMMAND && error.code == MONGOC_ERROR_COMMAND_INVALID_ARG);
}

Error classify(const bson_error_t& error) {
  std::string code = "mongo:" + std::to_string(error.domain) + ":" + std::to_string(error.code);
  const bool server_answer = error.domain == MONGOC_ERROR_SERVER ||
                             error.domain == MONGOC_ERROR_QUERY ||
                             error.domain == MONGOC_ERROR_COMMAND;
  const bool transient =
      error.domain == MONGOC_ERROR_SERVER_SELECTION || error.domain == MONGOC_ERROR_STREAM ||
      error.domain == MONGOC_ERROR_CLIENT || error.domain == MONGOC_ERROR_WRITE_CONCERN ||
      error.code == MONGOC_ERROR_STREAM_SOCKET ||
      (server_answer && is_transient_server_code(error.code));
  if (transient) return Error::retryable(error.message, std::move(code));
  // A request libmongoc refused to build or one the server refuses for good.
  const bool refused =
      refused_by_client(error) || (server_answer && is_permanent_server_code(error.code));
  if (refused) return Error::permanent(error.message, std::move(code));
  Error unknown = Error::retryable(error.message, std::move(code));
  unknown.unclassified = true;
  return unknown;
}

Error classify_write_error(std::int64_t code, std::string message) {
  std::string label = "mongo:write:" + std::to_string(code);
  if (is_permanent_server_code(code)) return Error::permanent(std::move(message), std::move(label));
  Error error = Error::retryable(std::move(message), std::move(label));
  error.unclassified = !is_transient_server_code(code);
  return error;
}

bool has_write_concern_error(const bson_t* reply) {
  bson_iter_t iter;
  bson_iter_t errors;
  return bson_iter_init_find(&iter, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&iter) &&
         bson_iter_recurse(&iter, &errors) && bson_iter_next(&errors);
}

std::vector<WriteError> write_errors(const bson_t* reply) {
  std::vector<WriteError> out;
  bson_iter_t iter, errors;
  if (!bson_iter_init_find(&iter, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&iter) ||
      !bson_iter_recurse(&iter, &errors)) {
    return out;
  }
  while (bson_iter_next(&errors)) {
    bson_iter_t item;
    if (!bson_iter_recurse(&errors, &item)) continue;
    WriteError error;
    while (bson_iter_next(&item)) {
      const std::string_view key = bson_iter_key(&item);
      if (key == "index") error.index = bson_iter_as_int64(&item);
      if (key == "code") error.code = bson_iter_as_int64(&item);
      if (key == "errmsg" && BSON_ITER_HOLDS_UTF8(&item))
        error.message = bson_iter_utf8(&item, nullptr);
    }
    out.push_back(std::move(error));
  }
  return out;
}

}  // namespace telemetryd::mongo
