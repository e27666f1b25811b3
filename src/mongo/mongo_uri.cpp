#include "mongo/mongo_uri.hpp"

#include "telemetryd/errors.hpp"

namespace telemetryd::mongo {
namespace {

std::optional<std::string> check_uri(std::string_view text) {
  bson_error_t error;
  mongoc_uri_t* uri = mongoc_uri_new_with_error(std::string(text).c_str(), &error);
  if (uri == nullptr) return std::string("invalid MongoDB URI: ") + error.message;
  mongoc_uri_destroy(uri);
  return std::nullopt;
}

bool has_any_option(const mongoc_uri_t* uri, std::initializer_list<const char*> options) {
  for (const char* option : options) {
    if (mongoc_uri_has_option(uri, option)) return true;
  }
  return false;
}

}  // namespace

MongoConnection connection_from(const Config& config) {
  MongoConnection c;
  c.uri = config.str("mongodb.uri");
  c.tls = config.flag("mongodb.tls");
  c.tls_ca_file = config.str("mongodb.tls_ca_file");
  c.tls_certificate_key_file = config.str("mongodb.tls_certificate_key_file");
  c.username = config.str("mongodb.username");
  if (!c.username.empty()) c.password = read_secret(config, "mongodb.password");
  c.auth_source = config.str("mongodb.auth_source");
  return c;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

std::string connection_string(const MongoConnection& connection) {
  std::string uri = connection.uri;
  const auto scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) return uri;  // rejected by make_uri with the reason
  const std::size_t authority = scheme_end + 3;
  if (!connection.username.empty()) {
    std::string userinfo = percent_encode(connection.username);
    if (!connection.password.empty()) userinfo += ":" + percent_encode(connection.password);
    uri.insert(authority, userinfo + "@");
  }

  std::vector<std::string> options;
  if (connection.tls) {
    options.emplace_back("tls=true");
    if (!connection.tls_ca_file.empty()) {
      options.push_back("tlsCAFile=" + percent_encode(connection.tls_ca_file));
    }
    if (!connection.tls_certificate_key_file.empty()) {
      options.push_back("tlsCertificateKeyFile=" +
                        percent_encode(connection.tls_certificate_key_file));
    }
  }
  if (!connection.auth_source.empty()) {
    options.push_back("authSource=" + percent_encode(connection.auth_source));
  }
  if (options.empty()) return uri;

  // Options follow "/" (and the database, if any) after the hosts: mongodb://h:1/db?a=1&b=2.
  const auto query = uri.find('?', authority);
  if (query == std::string::npos) {
    if (uri.find('/', authority) == std::string::npos) uri += '/';
    uri += '?';
  } else if (uri.back() != '?' && uri.back() != '&') {
    uri += '&';
  }
  for (std::size_t i = 0; i < options.size(); ++i) uri += (i == 0 ? "" : "&") + options[i];
  return uri;
}

UriPtr make_uri(const MongoConnection& connection, std::int32_t server_selection_timeout_ms) {
  bson_error_t error;
  UriPtr uri(mongoc_uri_new_with_error(connection_string(connection).c_str(), &error));
  if (!uri) throw StartupError(std::string("mongodb.uri: ") + error.message);
  if (!mongoc_uri_has_option(uri.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
    mongoc_uri_set_option_as_int32(uri.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   server_selection_timeout_ms);
  }
  return uri;
}

std::vector<KeySpec> connection_keys() {
  std::vector<KeySpec> keys{
      {.name = "uri",
       .description = "Connection string; never logged, it may hold a password. Prefer the "
                      "username and password keys below to credentials in the URI.",
       .default_value = "mongodb://127.0.0.1:27017/",
       .check = check_uri,
       .hint = "mongodb://host:port/?options",
       .secret = true},
      {.name = "tls",
       .type = ValueType::kBool,
       .description = "Connect with TLS (the URI's tls=true), verifying the server's certificate "
                      "and host name.",
       .default_value = "false"},
      {.name = "tls_ca_file",
       .description = "CA bundle (PEM) to verify the server with tls: true; empty uses the "
                      "system's CA store.",
       .default_value = "",
       .check = check_pem_certificate_file,
       .hint = "a PEM file with the CA certificate(s)"},
      {.name = "tls_certificate_key_file",
       .description = "Client certificate and its unencrypted private key in one PEM file, for "
                      "servers that require one (mTLS); keep it 0600.",
       .default_value = "",
       .check = check_pem_certificate_and_key_file,
       .hint = "cat client.pem client.key > client-combined.pem"},
      {.name = "username",
       .description = "User to authenticate as (SCRAM); needs password or password_file.",
       .default_value = ""},
  };
  for (auto& key : secret_keys("password", "Password of username")) keys.push_back(std::move(key));
  keys.push_back({.name = "auth_source",
                  .description = "Database holding the user; empty uses the URI's database, else "
                                 "admin.",
                  .default_value = ""});
  return keys;
}

void check_connection_keys(const Config& config, KeyProblems& problems) {
  const auto set = [&](const char* key) { return !config.str(key).empty(); };
  const bool tls = config.flag("mongodb.tls");
  for (const char* key : {"mongodb.tls_ca_file", "mongodb.tls_certificate_key_file"}) {
    if (set(key) && !tls) {
      problems.add(key, "takes effect only with mongodb.tls: true",
                   "set tls: true, or remove the key");
    }
  }

  const bool user = set("mongodb.username");
  const bool password = set("mongodb.password") || set("mongodb.password_file");
  if (user && !password) {
    problems.add("mongodb.password", "required with mongodb.username",
                 "set password_file (preferred) or password: ${ENV_VAR}");
  }
  if (!user) {
    for (const char* key : {"mongodb.password", "mongodb.password_file", "mongodb.auth_source"}) {
      if (set(key)) problems.add(key, "takes effect only with mongodb.username", "add username");
    }
  }
  if (set("mongodb.password") && set("mongodb.password_file")) {
    problems.add("mongodb.password_file", "set only one of password and password_file",
                 "keep password_file");
  }

  // The URI passed its own check; the same thing said twice is refused rather than guessed.
  UriPtr uri(mongoc_uri_new_with_error(config.str("mongodb.uri").c_str(), nullptr));
  if (!uri) return;
  if (user && mongoc_uri_get_username(uri.get()) != nullptr) {
    problems.add("mongodb.username", "mongodb.uri has credentials too",
                 "keep the credentials in one place: the username and password keys");
  }
  if (tls && has_any_option(uri.get(), {MONGOC_URI_TLS, MONGOC_URI_SSL, MONGOC_URI_TLSCAFILE,
                                        MONGOC_URI_TLSCERTIFICATEKEYFILE})) {
    problems.add("mongodb.tls", "mongodb.uri has TLS options too",
                 "set TLS either in the URI or with the tls keys");
  }
  // libmongoc keeps authSource with the credentials, not with the options.
  const bson_t* credentials = mongoc_uri_get_credentials(uri.get());
  if (set("mongodb.auth_source") && credentials != nullptr &&
      bson_has_field(credentials, MONGOC_URI_AUTHSOURCE)) {
    problems.add("mongodb.auth_source", "mongodb.uri has authSource too", "keep one of them");
  }
}

mongoc_client_pool_t* make_store_pool(const MongoConnection& connection,
                                      const std::string& write_concern, const char* appname) {
  const UriPtr uri = make_uri(connection, 3000);
  mongoc_write_concern_t* wc = mongoc_write_concern_new();
  if (write_concern == "majority") {
    mongoc_write_concern_set_wmajority(wc, 10000);
  } else {
    mongoc_write_concern_set_w(wc, 1);
  }
  mongoc_uri_set_write_concern(uri.get(), wc);
  mongoc_write_concern_destroy(wc);
  mongoc_client_pool_t* pool = mongoc_client_pool_new(uri.get());
  if (pool == nullptr) throw StartupError("mongodb: cannot create client pool");
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(pool, appname);
  return pool;
}

}  // namespace telemetryd::mongo
