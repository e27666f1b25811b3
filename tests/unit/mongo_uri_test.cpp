// The MongoDB connection builder: credentials percent-encoded into the URI and read back intact
// by libmongoc, TLS and authSource options placed after the hosts, errors without secrets.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "app/roles.hpp"
#include "mongo/mongo_uri.hpp"
#include "telemetryd/errors.hpp"

using namespace telemetryd;
using namespace telemetryd::mongo;

namespace {

// Every character a URI gives a meaning to, plus a space, a non-ASCII letter and a '%'.
const std::string kNastyPassword = "p@ss:w/rd%?#[]&= é+";

std::string option(const mongoc_uri_t* uri, const char* name) {
  const char* value = mongoc_uri_get_option_as_utf8(uri, name, nullptr);
  return value == nullptr ? std::string() : std::string(value);
}

}  // namespace

TEST_CASE("percent_encode keeps unreserved characters only", "[mongo_uri]") {
  CHECK(percent_encode("Az09-._~") == "Az09-._~");
  CHECK(percent_encode("p@ss:w/rd%") == "p%40ss%3Aw%2Frd%25");
  CHECK(percent_encode("a b+c") == "a%20b%2Bc");
  CHECK(percent_encode("\xC3\xA9") == "%C3%A9");
  CHECK(percent_encode("") == "");
}

TEST_CASE("connection_string places credentials and options", "[mongo_uri]") {
  MongoConnection c;
  c.uri = "mongodb://db1:27017,db2:27017/";
  CHECK(connection_string(c) == "mongodb://db1:27017,db2:27017/");

  c.username = "svc@telemetry";
  c.password = "p@ss:w/rd%";
  CHECK(connection_string(c) ==
        "mongodb://svc%40telemetry:p%40ss%3Aw%2Frd%25@db1:27017,db2:27017/");

  c.tls = true;
  c.tls_ca_file = "/etc/ssl/my ca.pem";
  c.tls_certificate_key_file = "/etc/telemetryd/client.pem";
  c.auth_source = "admin";
  CHECK(connection_string(c) ==
        "mongodb://svc%40telemetry:p%40ss%3Aw%2Frd%25@db1:27017,db2:27017/"
        "?tls=true&tlsCAFile=%2Fetc%2Fssl%2Fmy%20ca.pem"
        "&tlsCertificateKeyFile=%2Fetc%2Ftelemetryd%2Fclient.pem&authSource=admin");

  SECTION("after a query the URI already has") {
    c.uri = "mongodb://db1/telemetry?replicaSet=rs0";
    c.username.clear();
    c.tls_ca_file.clear();
    c.tls_certificate_key_file.clear();
    CHECK(connection_string(c) ==
          "mongodb://db1/telemetry?replicaSet=rs0&tls=true&authSource=admin");
  }
  SECTION("a URI without the slash after the hosts gets one") {
    c.uri = "mongodb://db1:27017";
    c.username.clear();
    c.tls = false;
    CHECK(connection_string(c) == "mongodb://db1:27017/?authSource=admin");
  }
}

TEST_CASE("make_uri: libmongoc reads back exactly what was configured", "[mongo_uri]") {
  MongoConnection c;
  c.uri = "mongodb://127.0.0.1:27018/telemetry";
  c.tls = true;
  c.tls_ca_file = "/tmp/dir with space/ca.pem";
  c.tls_certificate_key_file = "/tmp/client-combined.pem";
  c.username = "tele:metry";
  c.password = kNastyPassword;
  c.auth_source = "auth_db";
  const UriPtr uri = make_uri(c, 1234);
  REQUIRE(uri);
  CHECK(std::string(mongoc_uri_get_username(uri.get())) == "tele:metry");
  CHECK(std::string(mongoc_uri_get_password(uri.get())) == kNastyPassword);
  CHECK(std::string(mongoc_uri_get_auth_source(uri.get())) == "auth_db");
  CHECK(std::string(mongoc_uri_get_database(uri.get())) == "telemetry");
  CHECK(mongoc_uri_get_tls(uri.get()));
  CHECK(option(uri.get(), MONGOC_URI_TLSCAFILE) == c.tls_ca_file);
  CHECK(option(uri.get(), MONGOC_URI_TLSCERTIFICATEKEYFILE) == c.tls_certificate_key_file);
  CHECK(mongoc_uri_get_option_as_int32(uri.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0) == 1234);
}

TEST_CASE("make_uri keeps the URI's own timeout and TLS off by default", "[mongo_uri]") {
  MongoConnection c;
  c.uri = "mongodb://127.0.0.1/?serverSelectionTimeoutMS=777";
  const UriPtr uri = make_uri(c, 1234);
  CHECK(mongoc_uri_get_option_as_int32(uri.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0) == 777);
  CHECK_FALSE(mongoc_uri_get_tls(uri.get()));
  CHECK(mongoc_uri_get_username(uri.get()) == nullptr);
}

TEST_CASE("make_uri errors never quote the password", "[mongo_uri]") {
  MongoConnection c;
  c.uri = "mongodb://127.0.0.1:notaport/";
  c.username = "u";
  c.password = "hunter2-in-error";
  try {
    make_uri(c, 1000);
    FAIL("expected StartupError");
  } catch (const StartupError& e) {
    const std::string message = e.what();
    CHECK(message.rfind("mongodb.uri: ", 0) == 0);
    CHECK(message.find("hunter2") == std::string::npos);
  }
}

TEST_CASE("connection_from reads the password file only for a user", "[mongo_uri]") {
  char name[] = "/tmp/telemetryd-mongo-pw-XXXXXX";
  close(mkstemp(name));
  std::ofstream(name) << kNastyPassword << "\r\nsecond line is ignored\n";
  const Config with_user = load_config(
      {.role = "processor",
       .overrides = {"mongodb.username=svc", std::string("mongodb.password_file=") + name}},
      app::role_catalog());
  const MongoConnection c = connection_from(with_user);
  CHECK(c.username == "svc");
  CHECK(c.password == kNastyPassword);
  CHECK_FALSE(c.tls);
  unlink(name);
  // Gone after the load: start-up names the key and the file, never a secret.
  try {
    connection_from(with_user);
    FAIL("expected StartupError");
  } catch (const StartupError& e) {
    CHECK(std::string(e.what()).find("mongodb.password_file: cannot open '" + std::string(name)) ==
          0);
  }
}
