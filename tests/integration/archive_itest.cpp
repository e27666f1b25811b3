// The archive against a real S3 server (versitygw from scripts/services.sh): SigV4 accepted,
// listing with continuation, overwrite semantics, error classes with their S3 codes, and a
// batcher run read back from the bucket with every record exactly once.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <iostream>
#include <set>
#include <sstream>

#include "archive/archive_batcher.hpp"
#include "archive/gzip.hpp"
#include "archive/s3_store.hpp"
#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::archive;
using test_support::required_env;

namespace {

S3Settings settings_from_env() {
  S3Settings s;
  std::string error;
  REQUIRE(parse_endpoint(required_env("TELEMETRYD_TEST_S3_ENDPOINT"), s.endpoint, error));
  s.bucket = required_env("TELEMETRYD_TEST_S3_BUCKET");
  s.credentials.access_key_id = required_env("TELEMETRYD_TEST_S3_ACCESS_KEY");
  s.credentials.secret_access_key = required_env("TELEMETRYD_TEST_S3_SECRET_KEY");
  s.connect_timeout = std::chrono::milliseconds(3000);
  s.request_timeout = std::chrono::milliseconds(20000);
  return s;
}

std::string unique_prefix(const std::string& what) {
  return "itest-" + what + "-" + std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "/";
}

// A loopback port nobody listens on: bound by the kernel, then released.
std::uint16_t closed_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("S3: put, get and list with continuation", "[archive][s3][itest]") {
  S3Store store(settings_from_env());
  const std::string prefix = unique_prefix("list");
  std::set<std::string> written;
  for (int i = 0; i < 35; ++i) {
    const std::string key = prefix + "p/" + std::to_string(1000 + i) + ".gz";
    auto put = store.put(key, "object " + std::to_string(i));
    REQUIRE(put.ok());
    written.insert(key);
  }
  // Characters SigV4 must encode in the path: space, $, +, =, and a UTF-8 letter.
  const std::string odd = prefix + "odd/a b$c+d=e \xc3\xa9.gz";
  auto put_odd = store.put(odd, "odd");
  if (!put_odd.ok()) FAIL(put_odd.error().message);
  auto got_odd = store.get(odd);
  REQUIRE(got_odd.ok());
  CHECK(got_odd.value() == "odd");

  auto first = store.list(prefix + "p/", "", 10);
  REQUIRE(first.ok());
  CHECK(first.value().objects.size() == 10);
  CHECK_FALSE(first.value().next_token.empty());
  auto all = list_all(store, prefix + "p/", 10);  // four pages
  REQUIRE(all.ok());
  std::set<std::string> listed;
  for (const auto& object : all.value()) listed.insert(object.key);
  CHECK(listed == written);
  CHECK(all.value().size() == 35);  // no page repeated a key

  auto got = store.get(prefix + "p/1007.gz");
  REQUIRE(got.ok());
  CHECK(got.value() == "object 7");
  auto everything = list_all(store, prefix);
  REQUIRE(everything.ok());
  CHECK(everything.value().size() == 36);
}

TEST_CASE("S3: a second put of a key replaces the object", "[archive][s3][itest]") {
  S3Store store(settings_from_env());
  const std::string key = unique_prefix("overwrite") + "t/0/x.ndjson.gz";
  REQUIRE(store.put(key, gzip_compress("{\"a\":1}\n")).ok());
  REQUIRE(store.put(key, gzip_compress("{\"a\":2}\n")).ok());
  auto listed = list_all(store, key);
  REQUIRE(listed.ok());
  REQUIRE(listed.value().size() == 1);
  auto got = store.get(key);
  REQUIRE(got.ok());
  CHECK(gzip_decompress(got.value()).value() == "{\"a\":2}\n");
  CHECK(listed.value()[0].size == got.value().size());
}

TEST_CASE("S3: errors name the S3 code and say whether to retry", "[archive][s3][itest]") {
  const S3Settings good = settings_from_env();

  S3Settings wrong_secret = good;
  wrong_secret.credentials.secret_access_key = "not-the-secret-" + std::to_string(getpid());
  S3Store bad_key(wrong_secret);
  auto denied = bad_key.put("itest-denied/x.gz", "x");
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.error().kind == Error::Kind::kPermanent);
  CHECK(denied.error().message.find("SignatureDoesNotMatch") != std::string::npos);
  CHECK(denied.error().message.find(wrong_secret.credentials.secret_access_key) ==
        std::string::npos);

  S3Settings wrong_id = good;
  wrong_id.credentials.access_key_id = "nobody";
  auto unknown = S3Store(wrong_id).list("", "", 1);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().kind == Error::Kind::kPermanent);
  // AWS says 403 InvalidAccessKeyId; versitygw says 404 XAdminUserNotFound. Either is final.
  INFO(unknown.error().message);
  CHECK(unknown.error().message.find(": HTTP 4") != std::string::npos);

  S3Settings no_bucket = good;
  no_bucket.bucket = "telemetryd-missing-" + std::to_string(getpid());
  auto missing_bucket = S3Store(no_bucket).put("x.gz", "x");
  REQUIRE_FALSE(missing_bucket.ok());
  CHECK(missing_bucket.error().kind == Error::Kind::kPermanent);
  CHECK(missing_bucket.error().message.find("NoSuchBucket") != std::string::npos);

  auto missing_key = S3Store(good).get(unique_prefix("none") + "nothing.gz");
  REQUIRE_FALSE(missing_key.ok());
  CHECK(missing_key.error().kind == Error::Kind::kPermanent);
  CHECK(missing_key.error().message.find("NoSuchKey") != std::string::npos);

  S3Settings down = good;
  down.endpoint.port = closed_port();
  auto refused = S3Store(down).put("x.gz", "x");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == Error::Kind::kRetryable);
  CHECK(refused.error().message.find("connect failed") != std::string::npos);
}

TEST_CASE("S3: 20,000 records through the batcher, a crash and recovery, each archived once",
          "[archive][s3][itest]") {
  S3Store store(settings_from_env());
  const std::string prefix = unique_prefix("batcher");
  const std::string topic = "gpu-metadata";
  constexpr int kPartitions = 3;
  constexpr std::int64_t kPerPartition = 6667;  // 20,001 records in all
  const BatcherSettings settings{.prefix = prefix, .max_records = 1000, .max_bytes = 256 * 1024};
  const auto payload = [](std::int32_t partition, std::int64_t offset) {
    return "{\"specversion\":\"1.0\",\"type\":\"gpu.metadata.v1\",\"id\":\"p" +
           std::to_string(partition) + "-o" + std::to_string(offset) +
           "\",\"source\":\"itest\",\"data\":{\"gpu_uuid\":\"GPU-" + std::to_string(offset % 64) +
           "\",\"model\":\"NVIDIA H100 80GB HBM3\",\"memory_total_mib\":81559}}";
  };

  std::size_t uncompressed = 0;
  std::size_t compressed = 0;
  std::size_t objects = 0;
  const auto started = std::chrono::steady_clock::now();
  {
    // First life: offsets 0-4499 of each partition, flushed without force, so
    // sealed batches are stored and the open tail dies with the process (no commit either).
    ArchiveBatcher first(settings, store);
    for (std::int64_t o = 0; o < 4500; ++o) {
      for (std::int32_t p = 0; p < kPartitions; ++p) {
        const std::string value = payload(p, o);
        REQUIRE(first.add({topic, p, o, value}));
      }
      if (o % 500 == 0 || o == 4499) {
        auto report = first.flush(false);
        REQUIRE(report.ok());
        uncompressed += report.value().uncompressed_bytes;
        compressed += report.value().bytes;
        objects += report.value().objects;
      }
    }
  }
  // Second life: recover, then Kafka redelivers every partition from offset 0.
  ArchiveBatcher second(settings, store);
  std::size_t skipped = 0;
  for (std::int32_t p = 0; p < kPartitions; ++p) {
    auto recovered = second.recover(topic, p);
    REQUIRE(recovered.ok());
    REQUIRE(recovered.value().has_value());
    CHECK(*recovered.value() == 3999);  // 4000-4499 were still open
  }
  std::size_t flushes_uploaded = 0;
  for (std::int64_t o = 0; o < kPerPartition; ++o) {
    for (std::int32_t p = 0; p < kPartitions; ++p) {
      const std::string value = payload(p, o);
      if (!second.add({topic, p, o, value})) ++skipped;
    }
    if (o % 500 == 0) {
      auto report = second.flush(false);
      REQUIRE(report.ok());
      flushes_uploaded += report.value().objects;
      uncompressed += report.value().uncompressed_bytes;
      compressed += report.value().bytes;
      objects += report.value().objects;
      for (std::int32_t p = 0; p < kPartitions; ++p) {
        // The commit bound never passes what is not stored yet.
        const auto pending = second.lowest_pending(topic, p);
        if (pending) CHECK(second.commit_bound(topic, p, o + 1) <= *pending);
      }
    }
  }
  auto last = second.flush(true);
  REQUIRE(last.ok());
  uncompressed += last.value().uncompressed_bytes;
  compressed += last.value().bytes;
  objects += last.value().objects;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(skipped == 3 * 4000);
  CHECK(flushes_uploaded > 0);

  // Read the bucket back: every (partition, offset) exactly once, in order per partition.
  std::size_t lines_read = 0;
  for (std::int32_t p = 0; p < kPartitions; ++p) {
    CHECK(second.archived_through(topic, p) == kPerPartition - 1);
    auto keys = list_all(store, prefix + topic + "/" + std::to_string(p) + "/", 250);
    REQUIRE(keys.ok());
    std::int64_t expected = 0;
    for (const ObjectInfo& object : keys.value()) {
      auto bytes = store.get(object.key);
      REQUIRE(bytes.ok());
      auto text = gzip_decompress(bytes.value());
      REQUIRE(text.ok());
      std::stringstream lines(text.value());
      for (std::string line; std::getline(lines, line); ++expected, ++lines_read) {
        if (line != payload(p, expected)) {
          FAIL("partition " << p << " offset " << expected << " in " << object.key << ": " << line);
        }
      }
    }
    CHECK(expected == kPerPartition);
  }
  CHECK(lines_read == static_cast<std::size_t>(kPartitions * kPerPartition));
  // A measurement, not an assertion: speed belongs to bench/, this only shows the order.
  std::cout << "archive itest: " << kPartitions * kPerPartition << " records (" << skipped
            << " skipped after recovery), " << objects << " objects, "
            << static_cast<long long>(static_cast<double>(kPartitions * kPerPartition + skipped) /
                                      seconds)
            << " records/s including " << objects << " PUTs to " << store.describe()
            << ", compression " << uncompressed << " -> " << compressed << " bytes ("
            << static_cast<double>(uncompressed) /
                   static_cast<double>(std::max<std::size_t>(1, compressed))
            << "x)\n";
}

TEST_CASE("S3 over https: verified with the CA file, refused without it", "[archive][s3][itest]") {
  S3Settings tls = settings_from_env();
  std::string error;
  REQUIRE(parse_endpoint(required_env("TELEMETRYD_TEST_S3_TLS_ENDPOINT"), tls.endpoint, error));
  REQUIRE(tls.endpoint.tls);
  tls.ca_file = required_env("TELEMETRYD_TEST_S3_CA_FILE");
  S3Store store(tls);
  const std::string key = unique_prefix("tls") + "t/0/x.ndjson.gz";
  const std::string bytes = gzip_compress("{\"over\":\"tls\"}\n");
  auto put = store.put(key, bytes);
  if (!put.ok()) FAIL(put.error().message);
  auto got = store.get(key);
  REQUIRE(got.ok());
  CHECK(got.value() == bytes);
  auto listed = list_all(store, key);
  REQUIRE(listed.ok());
  CHECK(listed.value().size() == 1);

  // The system trust store does not know the test CA: a configuration problem, not a blip.
  S3Settings untrusted = tls;
  untrusted.ca_file.clear();
  auto refused = S3Store(untrusted).get(key);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == Error::Kind::kPermanent);
  CHECK(refused.error().message.find("TLS handshake failed") != std::string::npos);

  // The certificate names 127.0.0.1 (IP SAN) and localhost (DNS SAN): the name path of the
  // host-name check and SNI work too.
  S3Settings by_name = tls;
  by_name.endpoint.host = "localhost";
  auto named = S3Store(by_name).get(key);
  if (!named.ok()) FAIL(named.error().message);
  CHECK(named.value() == bytes);

  // Plain http to the https port: no HTTP answer comes back (the server drops the
  // connection), which is a transport error like any dropped connection.
  S3Settings plain = tls;
  plain.endpoint.tls = false;
  auto garbled = S3Store(plain).get(key);
  REQUIRE_FALSE(garbled.ok());
  INFO(garbled.error().message);
  CHECK(garbled.error().kind == Error::Kind::kRetryable);
  CHECK(garbled.error().message.find("read failed") != std::string::npos);
}
