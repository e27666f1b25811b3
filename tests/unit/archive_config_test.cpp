// The archive: section through the real loader (a catalog holding only that section, as the
// worker will attach it), and the factories that turn it into a store and batcher settings.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "archive/archive_config.hpp"
#include "archive/filesystem_store.hpp"
#include "archive/s3_store.hpp"

using namespace telemetryd;
using namespace telemetryd::archive;

namespace {

const RoleCatalog& catalog() {
  static const RoleCatalog c = [] {
    RoleCatalog r;
    r.roles = {"worker"};
    r.sections_for = [](std::string_view role) -> std::optional<std::vector<const SectionSpec*>> {
      if (role != "worker") return std::nullopt;
      return std::vector<const SectionSpec*>{&archive_section()};
    };
    r.all_sections = {&archive_section()};
    return r;
  }();
  return c;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/telemetryd-archive-config-XXXXXX";
    const int fd = mkstemp(name);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { unlink(path.c_str()); }
};

Config load(const std::string& yaml) {
  TempFile file("role: worker\n" + yaml);
  return load_config({.file = file.path}, catalog());
}

std::vector<ConfigProblem> problems(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

}  // namespace

TEST_CASE("archive section defaults", "[archive][config]") {
  const Config config = load_config({.role = "worker"}, catalog());
  CHECK_FALSE(archive_enabled(config));
  CHECK(config.str("archive.store") == "s3");
  CHECK(config.str("archive.s3.region") == "us-east-1");
  const BatcherSettings b = batcher_settings(config);
  CHECK(b.prefix == "archive/");
  CHECK(b.max_records == 10000);
  CHECK(b.max_bytes == 8388608);
  CHECK(b.max_age == std::chrono::milliseconds(60000));
  CHECK(b.retry_backoff_initial == std::chrono::milliseconds(500));
  CHECK(b.retry_backoff_max == std::chrono::milliseconds(30000));
  // Every key has a description (they feed docs/config-reference.md).
  for (const KeySpec& key : archive_keys()) CHECK_FALSE(key.description.empty());
  // A Config without the section (a role that does not archive) is simply disabled.
  CHECK_FALSE(archive_enabled(Config{}));
}

TEST_CASE("archive: filesystem store from config", "[archive][config]") {
  char name[] = "/tmp/telemetryd-archive-fs-XXXXXX";
  const std::string dir = mkdtemp(name);
  const Config config = load(
      "archive:\n  enabled: true\n  store: filesystem\n  prefix: ''\n"
      "  max_records: 50\n  max_age_ms: 250\n  filesystem:\n    path: " +
      dir + "/archive\n");
  CHECK(archive_enabled(config));
  auto store = make_archive_store(config);
  REQUIRE(store);
  CHECK(store->describe() == "file://" + dir + "/archive");
  REQUIRE(store->put("k/x.gz", "x").ok());
  CHECK(std::filesystem::exists(dir + "/archive/k/x.gz"));
  CHECK(batcher_settings(config).max_records == 50);
  CHECK(batcher_settings(config).prefix.empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("archive: s3 settings and secrets", "[archive][config]") {
  TempFile secret("file-secret\n");
  const Config config = load(
      "archive:\n  enabled: true\n  s3:\n    endpoint: https://s3.example.com:8443\n"
      "    bucket: telemetry\n    region: eu-west-1\n    access_key_id: AKID\n"
      "    secret_access_key_file: " +
      secret.path + "\n");
  const S3Settings s = s3_settings(config);
  CHECK(s.endpoint.tls);
  CHECK(s.endpoint.host == "s3.example.com");
  CHECK(s.endpoint.port == 8443);
  CHECK(s.bucket == "telemetry");
  CHECK(s.credentials.region == "eu-west-1");
  CHECK(s.credentials.access_key_id == "AKID");
  CHECK(s.credentials.secret_access_key == "file-secret");  // trailing newline dropped
  auto store = make_archive_store(config);
  CHECK(store->describe() == "s3://telemetry at https://s3.example.com:8443");
}

TEST_CASE("archive: incomplete or contradictory s3 keys name the key", "[archive][config]") {
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  const std::string base = "archive:\n  s3:\n    endpoint: http://h:1\n";
  auto p = problems([] { s3_settings(load("archive:\n  enabled: true\n")); });
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.s3.endpoint");

  p = problems([&] { s3_settings(load(base)); });
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.s3.bucket");

  p = problems([&] { s3_settings(load(base + "    bucket: b\n    access_key_id: a\n")); });
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.s3.secret_access_key");

  TempFile secret("s");
  p = problems([&] {
    s3_settings(load(base +
                     "    bucket: b\n    access_key_id: a\n"
                     "    secret_access_key: inline-secret-value\n"
                     "    secret_access_key_file: " +
                     secret.path + "\n"));
  });
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.s3.secret_access_key_file");
  CHECK(p[0].to_string().find("inline-secret-value") == std::string::npos);

  // The environment fills in what the file leaves out.
  setenv("AWS_ACCESS_KEY_ID", "env-id", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  const S3Settings s = s3_settings(load(base + "    bucket: b\n"));
  CHECK(s.credentials.access_key_id == "env-id");
  CHECK(s.credentials.secret_access_key == "env-secret");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
}

TEST_CASE("archive: bad values are rejected by the loader", "[archive][config]") {
  auto bad = [](const std::string& yaml) { return problems([&] { load(yaml); }); };
  auto p = bad("archive:\n  s3:\n    endpoint: 127.0.0.1:9070\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.s3.endpoint");
  p = bad("archive:\n  store: tape\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.store");
  p = bad("archive:\n  prefix: no-slash\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.prefix");
  p = bad("archive:\n  prefix: a/../b/\n");
  REQUIRE(p.size() == 1);
  p = bad("archive:\n  max_records: 0\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.max_records");
  p = bad("archive:\n  s3:\n    secret_access_key: [1, 2]\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].path == "archive.s3.secret_access_key");
}
