// The filesystem store's atomic put, listing and pagination; the S3 store's error
// classification, ListObjectsV2 parsing and endpoint syntax; a closed port is retryable.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "archive/filesystem_store.hpp"
#include "archive/s3_store.hpp"

using namespace telemetryd;
using namespace telemetryd::archive;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/telemetryd-archive-XXXXXX";
    path = mkdtemp(name);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<std::string> files_under(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) out.push_back(entry.path().lexically_relative(root).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("filesystem store: put, overwrite, get leave exactly the object", "[archive][store]") {
  TempDir dir;
  FilesystemStore store(dir.path + "/nested/root");
  REQUIRE(store.put("a/b/one.gz", "first version").ok());
  REQUIRE(store.put("a/b/one.gz", "second").ok());  // a retry replaces, never appends
  auto got = store.get("a/b/one.gz");
  REQUIRE(got.ok());
  CHECK(got.value() == "second");
  // No temp file survives a successful put.
  CHECK(files_under(dir.path + "/nested/root") == std::vector<std::string>{"a/b/one.gz"});

  auto missing = store.get("a/b/none.gz");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == Error::Kind::kPermanent);
  CHECK(missing.error().message.find("NoSuchKey") != std::string::npos);
}

TEST_CASE("filesystem store: a crash's leftover temp file is never listed", "[archive][store]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  REQUIRE(store.put("t/0/x.gz", "x").ok());
  // What a crash between write and rename leaves behind.
  std::ofstream(dir.path + "/t/0/.y.gz.tmp.123.0") << "half an obj";
  fs::create_directories(dir.path + "/t/.hidden");
  std::ofstream(dir.path + "/t/.hidden/z.gz") << "z";
  auto page = store.list("t/", "", 1000);
  REQUIRE(page.ok());
  REQUIRE(page->objects.size() == 1);
  CHECK(page->objects[0].key == "t/0/x.gz");
  CHECK(page->objects[0].size == 1);
}

TEST_CASE("filesystem store: list pages by token and filters by prefix", "[archive][store]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  for (int i = 0; i < 25; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "p/topic/%d/%03d.gz", i % 2, i);
    REQUIRE(store.put(key, std::to_string(i)).ok());
  }
  REQUIRE(store.put("p/topicx/0/000.gz", "other topic").ok());
  REQUIRE(store.put("q/topic/0/000.gz", "other prefix").ok());

  auto all = list_all(store, "p/topic/", 7);  // 25 keys in pages of 7
  REQUIRE(all.ok());
  REQUIRE(all->size() == 25);
  CHECK(std::is_sorted(all->begin(), all->end(),
                       [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; }));
  auto first = store.list("p/topic/", "", 7);
  REQUIRE(first.ok());
  CHECK(first->objects.size() == 7);
  CHECK_FALSE(first->next_token.empty());
  auto partial = list_all(store, "p/topic", 1000);  // a prefix ending mid-name
  REQUIRE(partial.ok());
  CHECK(partial->size() == 26);
  auto none = store.list("nothing/here/", "", 10);
  REQUIRE(none.ok());
  CHECK(none->objects.empty());
}

TEST_CASE("archive keys that could escape the root are refused", "[archive][store]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  for (const char* key : {"", "/abs", "a/../b", "a//b", "./a", "a/", "a\nb"}) {
    auto r = store.put(key, "x");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == Error::Kind::kPermanent);
  }
  CHECK(valid_key("archive/topic/0/x.ndjson.gz"));
}

TEST_CASE("S3 errors are classified by status and S3 code", "[archive][s3]") {
  auto body = [](const char* code) {
    return std::string("<?xml version=\"1.0\"?><Error><Code>") + code +
           "</Code><Message>m &amp; more</Message></Error>";
  };
  const Error denied = classify_s3_error(403, body("SignatureDoesNotMatch"), "PUT k");
  CHECK(denied.kind == Error::Kind::kPermanent);
  CHECK(denied.message == "PUT k: HTTP 403 SignatureDoesNotMatch (m & more)");
  CHECK(classify_s3_error(404, body("NoSuchBucket"), "x").kind == Error::Kind::kPermanent);
  CHECK(classify_s3_error(400, body("InvalidArgument"), "x").kind == Error::Kind::kPermanent);
  CHECK(classify_s3_error(403, "", "x").kind == Error::Kind::kPermanent);
  CHECK(classify_s3_error(503, body("SlowDown"), "x").kind == Error::Kind::kRetryable);
  CHECK(classify_s3_error(500, body("InternalError"), "x").kind == Error::Kind::kRetryable);
  CHECK(classify_s3_error(502, "<html>bad gateway</html>", "x").kind == Error::Kind::kRetryable);
  // S3 sends RequestTimeout as a 400: the code wins over the status.
  const Error timeout = classify_s3_error(400, body("RequestTimeout"), "x");
  CHECK(timeout.kind == Error::Kind::kRetryable);
  CHECK(timeout.message.find("RequestTimeout") != std::string::npos);
  CHECK(classify_s3_error(429, "", "x").kind == Error::Kind::kRetryable);
}

TEST_CASE("ListObjectsV2 answers are parsed with their continuation", "[archive][s3]") {
  const std::string truncated =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
      "<Prefix>a/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
      "<IsTruncated>true</IsTruncated>"
      "<Contents><Key>a/1 &amp; 2.gz</Key><LastModified>2026-01-01T00:00:00Z</LastModified>"
      "<Size>12</Size></Contents>"
      "<Contents><Key>a/&#xe9;x</Key><Size>3</Size></Contents>"
      "<NextContinuationToken>tok/en+=</NextContinuationToken></ListBucketResult>";
  auto page = parse_list_objects_v2(truncated);
  REQUIRE(page.ok());
  REQUIRE(page->objects.size() == 2);
  CHECK(page->objects[0].key == "a/1 & 2.gz");
  CHECK(page->objects[0].size == 12);
  CHECK(page->objects[1].key == "a/\xc3\xa9x");
  CHECK(page->next_token == "tok/en+=");
  auto last = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "<Contents><Key>a/&#233;</Key><Size>1</Size></Contents></ListBucketResult>");
  REQUIRE(last.ok());
  CHECK(last->objects[0].key == "a/\xc3\xa9");
  CHECK(last->next_token.empty());
  CHECK_FALSE(parse_list_objects_v2("<Error><Code>x</Code></Error>").ok());
  CHECK_FALSE(
      parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
          .ok());
}

TEST_CASE("S3 endpoints are scheme://host[:port]", "[archive][s3]") {
  S3Endpoint e;
  std::string error;
  REQUIRE(parse_endpoint("http://127.0.0.1:9070", e, error));
  CHECK_FALSE(e.tls);
  CHECK(e.host == "127.0.0.1");
  CHECK(e.port == 9070);
  REQUIRE(parse_endpoint("https://s3.example.com/", e, error));
  CHECK(e.tls);
  CHECK(e.port == 443);
  REQUIRE(parse_endpoint("http://[::1]:9000", e, error));
  CHECK(e.host == "::1");
  CHECK(e.port == 9000);
  for (const char* bad : {"127.0.0.1:9070", "ftp://h", "http://", "http://h:0", "http://h:70000",
                          "http://h/bucket", "http://u@h"}) {
    CHECK_FALSE(parse_endpoint(bad, e, error));
  }
}

TEST_CASE("S3 store: nothing listening is a retryable connect error", "[archive][s3]") {
  // Port 1 on loopback: nothing listens there and a connection is refused at once.
  S3Settings settings;
  settings.endpoint = {false, "127.0.0.1", 1};
  settings.bucket = "b";
  settings.credentials = {"id", "secret-that-must-not-appear", "us-east-1", "s3"};
  settings.connect_timeout = std::chrono::milliseconds(2000);
  S3Store store(settings);
  auto r = store.put("k/x.gz", "x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == Error::Kind::kRetryable);
  CHECK(r.error().message.find("connect failed") != std::string::npos);
  CHECK(r.error().message.find("secret-that-must-not-appear") == std::string::npos);
  CHECK(store.describe() == "s3://b at http://127.0.0.1:1");
}

TEST_CASE("S3 store: a server that never answers times out, retryable", "[archive][s3]") {
  // A listening socket nobody accepts from: the kernel completes the TCP handshake, the
  // request is written, and no byte ever comes back, like a hung gateway.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 8) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);

  S3Settings settings;
  settings.endpoint = {false, "127.0.0.1", ntohs(addr.sin_port)};
  settings.bucket = "b";
  settings.credentials = {"id", "secret", "us-east-1", "s3"};
  settings.connect_timeout = std::chrono::milliseconds(1000);
  settings.request_timeout = std::chrono::milliseconds(200);
  S3Store store(settings);
  const auto r = store.get("k/x.gz");
  close(fd);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == Error::Kind::kRetryable);
  CHECK(r.error().message == "GET k/x.gz: read failed: timed out");
}
