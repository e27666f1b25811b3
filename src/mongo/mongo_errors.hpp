#pragma once
// One rule for every MongoDB store: is a libmongoc error worth retrying (the server is away,
// stepping down, or did not reach the write concern) or is it an answer (the document is
// refused)? Retrying is what keeps an outage from becoming data loss; a refusal goes to the
// dead-letter topic.

#include <mongoc/mongoc.h>

#include <cstdint>

#include "telemetryd/result.hpp"

namespace telemetryd::mongo {

/// Server error codes that mean "try again": network, elections, shutdown, write concern.
bool is_transient_server_code(std::int64_t code);

/// Retryable for no reply (selection, socket, client), write-concern failures and transient
/// server codes; permanent otherwise. The message is libmongoc's (never a URI or password).
Error classify(const bson_error_t& error);

/// True when an insert/update reply carries writeConcernErrors: written, but not as durably as
/// asked, so not done.
bool has_write_concern_error(const bson_t* reply);

}  // namespace telemetryd::mongo
