// The MongoDB error rule: which libmongoc errors are retried and which are answers. An error no
// rule knows must be retried (and marked unclassified), never taken for a refusal of valid events.

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "mongo/mongo_errors.hpp"

using namespace telemetryd;
using telemetryd::mongo::classify;
using telemetryd::mongo::classify_write_error;

namespace {

bson_error_t error_of(std::uint32_t domain, std::uint32_t code, const char* message) {
  bson_error_t error;
  std::memset(&error, 0, sizeof error);
  error.domain = domain;
  error.code = code;
  std::strncpy(error.message, message, sizeof error.message - 1);
  return error;
}

}  // namespace

TEST_CASE("transient libmongoc and server errors are retried", "[mongo]") {
  for (const auto& e : {error_of(MONGOC_ERROR_SERVER_SELECTION, 13053, "No suitable servers"),
                        error_of(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "socket"),
                        error_of(MONGOC_ERROR_SERVER, 11600, "interrupted at shutdown"),
                        error_of(MONGOC_ERROR_QUERY, 91, "shutdown in progress")}) {
    INFO(e.message);
    const Error error = classify(e);
    CHECK(error.kind == Error::Kind::kRetryable);
    CHECK_FALSE(error.unclassified);
    CHECK(error.message == e.message);
  }
  CHECK(classify(error_of(MONGOC_ERROR_SERVER, 11600, "x")).code ==
        "mongo:" + std::to_string(MONGOC_ERROR_SERVER) + ":11600");
}

TEST_CASE("refusals of the request itself are permanent", "[mongo]") {
  for (const auto& e :
       {error_of(MONGOC_ERROR_SERVER, 13, "not authorized"),
        error_of(MONGOC_ERROR_SERVER, 121, "document failed validation"),
        error_of(MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID, "invalid BSON"),
        error_of(MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG, "invalid argument")}) {
    INFO(e.message);
    const Error error = classify(e);
    CHECK(error.kind == Error::Kind::kPermanent);
    CHECK_FALSE(error.unclassified);
  }
}

TEST_CASE("a server code no rule knows is retried and marked unclassified", "[mongo]") {
  // 1 (InternalError) and a code from the future: the server's condition, not the events'.
  for (std::uint32_t code : {1u, 8000u, 424242u}) {
    INFO(code);
    const Error error = classify(error_of(MONGOC_ERROR_SERVER, code, "something went wrong"));
    CHECK(error.kind == Error::Kind::kRetryable);
    CHECK(error.unclassified);
  }
}

TEST_CASE("per-document write errors: only known refusals are permanent", "[mongo]") {
  CHECK(classify_write_error(121, "failed validation").kind == Error::Kind::kPermanent);
  CHECK(classify_write_error(10334, "too large").kind == Error::Kind::kPermanent);
  const Error transient = classify_write_error(112, "write conflict");
  CHECK(transient.kind == Error::Kind::kRetryable);
  CHECK_FALSE(transient.unclassified);
  const Error unknown = classify_write_error(1, "internal error");
  CHECK(unknown.kind == Error::Kind::kRetryable);
  CHECK(unknown.unclassified);
  CHECK(unknown.code == "mongo:write:1");
}

TEST_CASE("a failed write that only sums up its per-document errors is an answer", "[mongo]") {
  struct WriteError {
    std::int64_t code;
  };
  // insert_many with duplicates fails with the first write error as a server error (11000): the
  // write errors are the answer, not a reason to retry the batch.
  const bson_error_t duplicate = error_of(MONGOC_ERROR_SERVER, 11000, "E11000 duplicate key");
  CHECK(mongo::only_write_errors(duplicate, std::vector<WriteError>{{11000}, {11000}}));
  CHECK_FALSE(mongo::only_write_errors(duplicate, std::vector<WriteError>{}));
  // A batch libmongoc split: one part answered duplicates, another met a primary stepping down;
  // that part was not written, so the batch is retried.
  CHECK_FALSE(mongo::only_write_errors(error_of(MONGOC_ERROR_SERVER, 10107, "not writable primary"),
                                       std::vector<WriteError>{{11000}}));
  // A dropped connection mid-batch: part of it may not have been tried, whatever errors came.
  CHECK_FALSE(mongo::only_write_errors(
      error_of(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "socket error"),
      std::vector<WriteError>{{11000}}));
}
