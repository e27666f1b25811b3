#pragma once
// One rule for every MongoDB store: is a libmongoc error worth retrying (the server is away,
// stepping down, or did not reach the write concern) or is it an answer (the document is
// refused)? Retrying is what keeps an outage from becoming data loss; a refusal goes to the
// dead-letter topic. Only codes known to be answers are permanent: anything else is retried
// (and marked unclassified, so it is counted and alerts), because taking an unknown server
// condition for a refusal dead-letters valid events.

#include <mongoc/mongoc.h>

#include <cstdint>
#include <string>
#include <vector>

#include "telemetryd/result.hpp"

namespace telemetryd::mongo {

/// Server error codes that mean "try again": network, elections, shutdown, write concern.
bool is_transient_server_code(std::int64_t code);

/// Server codes that refuse the request itself (bad value, a document the server will never
/// take, authorisation): retrying cannot help.
bool is_permanent_server_code(std::int64_t code);

/// Retryable for no reply (selection, socket, client), write-concern failures and transient
/// server codes; permanent for permanent server codes and client-side BSON or argument errors;
/// retryable and unclassified otherwise. The message is libmongoc's (never a URI or password);
/// the code is "mongo:<domain>:<code>".
Error classify(const bson_error_t& error);

/// True when libmongoc refused to send the request (a document it will not encode, such as an
/// empty key): no server saw it, and sending it again changes nothing.
bool refused_by_client(const bson_error_t& error);

/// The same rule for one item of a reply's writeErrors (a per-document answer).
Error classify_write_error(std::int64_t code, std::string message);

/// True when a failed write's error only sums up its per-document `write_errors` (items with a
/// `code`): the server answered each document and the caller reads those. False when the call
/// itself failed (no reply, a dropped connection, or a server error of another part of a batch
/// libmongoc split, such as NotWritablePrimary): part of the batch may not have been tried.
template <typename WriteErrors>
bool only_write_errors(const bson_error_t& error, const WriteErrors& write_errors) {
  const bool server = error.domain == MONGOC_ERROR_SERVER || error.domain == MONGOC_ERROR_QUERY ||
                      error.domain == MONGOC_ERROR_COMMAND;
  for (const auto& e : write_errors) {
    if (server && e.code == static_cast<std::int64_t>(error.code)) return true;
  }
  return false;
}

/// The server's code for a duplicate key (E11000).
inline constexpr std::int64_t kDuplicateKey = 11000;

/// One item of a reply's writeErrors (insert_many, bulk).
struct WriteError {
  std::int64_t index = -1;
  std::int64_t code = 0;
  std::string message;
};

/// The writeErrors of an insert or bulk reply, in the reply's order.
std::vector<WriteError> write_errors(const bson_t* reply);

/// True when an insert/update reply carries writeConcernErrors: written, but not as durably as
/// asked, so not done.
bool has_write_concern_error(const bson_t* reply);

}  // namespace telemetryd::mongo
