#pragma once
// The one place a MongoDB connection is put together from the `mongodb:` section: the URI plus
// TLS and credentials from their own keys. The readiness probe and every store (the processor's,
// the worker's) connect through it, so they all use the same security settings.

#include <mongoc/mongoc.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "telemetryd/config.hpp"

namespace telemetryd::mongo {

/// What the `mongodb:` section says about reaching the server. `password` and `uri` are
/// secrets: never log them.
struct MongoConnection {
  std::string uri = "mongodb://127.0.0.1:27017/";
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_certificate_key_file;
  std::string username;
  std::string password;
  std::string auth_source;  // empty: the driver's default (the URI's database, else admin)
};

/// Reads the section; the password from mongodb.password_file when set (throws StartupError
/// naming the key when that file cannot be read).
MongoConnection connection_from(const Config& config);

struct UriDeleter {
  void operator()(mongoc_uri_t* uri) const { mongoc_uri_destroy(uri); }
};
using UriPtr = std::unique_ptr<mongoc_uri_t, UriDeleter>;

/// RFC 3986 percent-encoding of everything but unreserved characters, for user names,
/// passwords and option values inside a connection string.
std::string percent_encode(std::string_view text);

/// The connection string: `connection.uri` with the credentials (percent-encoded) placed after
/// the scheme and the TLS and authSource options appended. A secret: never log it.
std::string connection_string(const MongoConnection& connection);

/// Parses connection_string() and sets serverSelectionTimeoutMS when the URI does not.
/// Throws StartupError with libmongoc's reason, never the URI or the password.
UriPtr make_uri(const MongoConnection& connection, std::int32_t server_selection_timeout_ms);

/// A client pool for a store: the URI from make_uri (3 s server selection), the write concern
/// ("majority" waits up to 10 s, or "1"), libmongoc's error API v2 and the application name the
/// server logs. Throws StartupError as make_uri does; the caller destroys the pool.
mongoc_client_pool_t* make_store_pool(const MongoConnection& connection,
                                      const std::string& write_concern, const char* appname);

/// The `mongodb:` keys for connecting (uri, tls*, username, password*, auth_source), and the
/// rules joining them, for the mongodb component's section.
std::vector<KeySpec> connection_keys();
void check_connection_keys(const Config& config, KeyProblems& problems);

}  // namespace telemetryd::mongo
