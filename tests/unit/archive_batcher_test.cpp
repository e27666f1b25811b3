// The batcher over a real filesystem store: key format, sealing by count, bytes and age (a
// hand-moved clock, no sleeping), gzip NDJSON round trip, byte-identical retries, recovery
// after a crash between upload and commit, and the commit bound.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>

#include "archive/archive_batcher.hpp"
#include "archive/filesystem_store.hpp"
#include "archive/gzip.hpp"

using namespace telemetryd;
using namespace telemetryd::archive;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/telemetryd-batcher-XXXXXX";
    path = mkdtemp(name);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The real filesystem store, with the next `failures` puts refused the way a down server
// would refuse them; every attempted put is recorded.
class FailingPuts final : public ArchiveStore {
 public:
  explicit FailingPuts(ArchiveStore& inner) : inner_(inner) {}
  int failures = 0;
  Error::Kind kind = Error::Kind::kRetryable;
  std::vector<std::pair<std::string, std::string>> attempts;

  Result<bool> put(const std::string& key, std::string_view bytes) override {
    attempts.emplace_back(key, std::string(bytes));
    if (failures > 0) {
      --failures;
      return Error{kind, "injected failure"};
    }
    return inner_.put(key, bytes);
  }
  Result<ListPage> list(const std::string& prefix, const std::string& token,
                        int max_keys) override {
    return inner_.list(prefix, token, max_keys);
  }
  Result<std::string> get(const std::string& key) override { return inner_.get(key); }
  std::string describe() const override { return inner_.describe(); }

 private:
  ArchiveStore& inner_;
};

struct ManualClock {
  std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
  ArchiveBatcher::Clock fn() {
    return [this] { return now; };
  }
};

std::string event(std::int64_t offset) {
  return "{\"id\":\"e-" + std::to_string(offset) + "\",\"n\":" + std::to_string(offset) + "}";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> archived_lines(ArchiveStore& store, const std::string& prefix) {
  std::vector<std::string> lines;
  auto objects = list_all(store, prefix);
  REQUIRE(objects.ok());
  for (const auto& object : objects.value()) {
    auto bytes = store.get(object.key);
    REQUIRE(bytes.ok());
    auto text = gzip_decompress(bytes.value());
    REQUIRE(text.ok());
    for (auto& line : lines_of(text.value())) lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

TEST_CASE("archive keys are zero-padded so they sort like offsets", "[archive][batcher]") {
  CHECK(archive_key("archive/", "gpu-metadata", 3, 0, 41) ==
        "archive/gpu-metadata/3/00000000000000000000-00000000000000000041.ndjson.gz");
  CHECK(archive_key("", "t", 0, 9, 10) < archive_key("", "t", 0, 11, 12));
  CHECK(archive_key("", "t", 0, 99, 99) < archive_key("", "t", 0, 100, 100));
  const std::string key = archive_key("p/", "t", 7, 123, 9223372036854775807LL);
  CHECK(last_offset_of_key(key, "p/t/7/") == 9223372036854775807LL);
  CHECK_FALSE(last_offset_of_key(key, "p/t/8/"));
  CHECK_FALSE(last_offset_of_key("p/t/7/README", "p/t/7/"));
  CHECK_FALSE(last_offset_of_key("p/t/7/00000000000000000009-00000000000000000001.ndjson.gz",
                                 "p/t/7/"));  // last < first
}

TEST_CASE("gzip round trip is exact and deterministic", "[archive][batcher]") {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += event(i) + "\n";
  const std::string a = gzip_compress(text, 6);
  const std::string b = gzip_compress(text, 6);
  CHECK(a == b);  // no timestamp in the header: a retry re-sends the same bytes
  CHECK(a.size() < text.size() / 4);
  REQUIRE(static_cast<unsigned char>(a[0]) == 0x1f);
  REQUIRE(static_cast<unsigned char>(a[1]) == 0x8b);
  auto back = gzip_decompress(a);
  REQUIRE(back.ok());
  CHECK(back.value() == text);
  CHECK(gzip_decompress(gzip_compress("", 6)).value().empty());
  // Concatenated members decode as one stream (what `cat a.gz b.gz | gunzip` gives).
  CHECK(gzip_decompress(gzip_compress("x\n") + gzip_compress("y\n")).value() == "x\ny\n");
  auto truncated = gzip_decompress(a.substr(0, a.size() / 2));
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.error().kind == Error::Kind::kPermanent);
}

TEST_CASE("batches seal by record count", "[archive][batcher]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  ManualClock clock;
  ArchiveBatcher batcher({.prefix = "a/", .max_records = 4, .max_bytes = 1 << 20}, store,
                         clock.fn());
  for (std::int64_t o = 10; o < 20; ++o) {
    const std::string payload = event(o);
    REQUIRE(batcher.add({"t", 0, o, payload}));
  }
  auto report = batcher.flush(false);
  REQUIRE(report.ok());
  CHECK(report->objects == 2);  // 10-13 and 14-17; 18-19 stay open
  CHECK(report->records == 8);
  CHECK(report->archived.at({"t", 0}) == 17);
  CHECK(batcher.archived_through("t", 0) == 17);
  CHECK(batcher.lowest_pending("t", 0) == 18);
  CHECK(batcher.commit_bound("t", 0, 20) == 18);
  CHECK(batcher.commit_bound("t", 0, 15) == 15);
  auto objects = list_all(store, "a/t/0/");
  REQUIRE(objects.ok());
  REQUIRE(objects->size() == 2);
  CHECK(objects->at(0).key == "a/t/0/00000000000000000010-00000000000000000013.ndjson.gz");
  CHECK(objects->at(1).key == "a/t/0/00000000000000000014-00000000000000000017.ndjson.gz");
  auto text = gzip_decompress(store.get(objects->at(0).key).value());
  REQUIRE(text.ok());
  CHECK(lines_of(text.value()) ==
        std::vector<std::string>{event(10), event(11), event(12), event(13)});
  // Forced: the open tail goes too, and nothing is pending afterwards.
  REQUIRE(batcher.flush(true).ok());
  CHECK(batcher.archived_through("t", 0) == 19);
  CHECK_FALSE(batcher.lowest_pending("t", 0));
  CHECK(batcher.commit_bound("t", 0, 20) == 20);
  CHECK(batcher.buffered_bytes() == 0);
  CHECK(batcher.buffered_records() == 0);
}

TEST_CASE("batches seal by uncompressed bytes", "[archive][batcher]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  ManualClock clock;
  const std::string payload(100, 'x');  // 101 bytes per line with the newline
  ArchiveBatcher batcher({.max_records = 1000, .max_bytes = 250}, store, clock.fn());
  for (std::int64_t o = 0; o < 7; ++o) REQUIRE(batcher.add({"t", 1, o, payload}));
  auto report = batcher.flush(false);
  REQUIRE(report.ok());
  CHECK(report->objects == 2);  // 0-2 (303 bytes) and 3-5; 6 stays open
  CHECK(report->uncompressed_bytes == 6 * 101);
  CHECK(batcher.archived_through("t", 1) == 5);
  CHECK(batcher.lowest_pending("t", 1) == 6);
}

TEST_CASE("batches seal by age, and next_due says when", "[archive][batcher]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  ManualClock clock;
  ArchiveBatcher batcher({.max_records = 1000, .max_age = milliseconds(5000)}, store, clock.fn());
  const std::string payload = event(0);
  REQUIRE(batcher.add({"t", 0, 0, payload}));
  CHECK(batcher.next_due() == clock.now + milliseconds(5000));
  clock.now += milliseconds(4999);
  auto report = batcher.flush(false);
  REQUIRE(report.ok());
  CHECK(report->objects == 0);
  CHECK(batcher.lowest_pending("t", 0) == 0);
  clock.now += milliseconds(1);
  report = batcher.flush(false);
  REQUIRE(report.ok());
  CHECK(report->objects == 1);
  CHECK(batcher.archived_through("t", 0) == 0);
  CHECK_FALSE(batcher.next_due());
}

TEST_CASE("a failed upload keeps the batch and retries the same key and bytes",
          "[archive][batcher]") {
  TempDir dir;
  FilesystemStore disk(dir.path);
  FailingPuts store(disk);
  ManualClock clock;
  ArchiveBatcher batcher({.max_records = 3,
                          .retry_backoff_initial = milliseconds(100),
                          .retry_backoff_max = milliseconds(300)},
                         store, clock.fn());
  for (std::int64_t o = 0; o < 6; ++o) {
    const std::string payload = event(o);
    REQUIRE(batcher.add({"t", 0, o, payload}));
  }
  store.failures = 3;
  auto r = batcher.flush(false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == Error::Kind::kRetryable);
  // Only the first batch was tried: a later one must not land before an earlier one.
  REQUIRE(store.attempts.size() == 1);
  CHECK_FALSE(batcher.archived_through("t", 0));
  CHECK(batcher.commit_bound("t", 0, 6) == 0);

  // Within the backoff nothing is attempted.
  r = batcher.flush(false);
  REQUIRE(r.ok());
  CHECK(r->waiting == 2);
  CHECK(store.attempts.size() == 1);
  CHECK(batcher.next_due() == clock.now + milliseconds(100));

  clock.now += milliseconds(100);
  REQUIRE_FALSE(batcher.flush(false).ok());  // failure 2, backoff now 200 ms
  clock.now += milliseconds(199);
  REQUIRE(batcher.flush(false).ok());
  CHECK(store.attempts.size() == 2);
  clock.now += milliseconds(1);
  REQUIRE_FALSE(batcher.flush(false).ok());  // failure 3, backoff capped at 300 ms
  CHECK(batcher.next_due() == clock.now + milliseconds(300));
  // Forced (shutdown) ignores the backoff; the store works again.
  r = batcher.flush(true);
  REQUIRE(r.ok());
  CHECK(r->objects == 2);
  CHECK(batcher.archived_through("t", 0) == 5);

  REQUIRE(store.attempts.size() == 5);
  for (std::size_t i = 1; i < 4; ++i) {
    CHECK(store.attempts[i].first == store.attempts[0].first);
    CHECK(store.attempts[i].second == store.attempts[0].second);  // byte-identical
  }
  CHECK(archived_lines(disk, "t/0/") ==
        std::vector<std::string>{event(0), event(1), event(2), event(3), event(4), event(5)});
}

TEST_CASE("a permanent failure is reported as permanent, the data kept", "[archive][batcher]") {
  TempDir dir;
  FilesystemStore disk(dir.path);
  FailingPuts store(disk);
  ArchiveBatcher batcher({.max_records = 1}, store);
  const std::string payload = event(0);
  REQUIRE(batcher.add({"t", 0, 0, payload}));
  store.failures = 1;
  store.kind = Error::Kind::kPermanent;
  auto r = batcher.flush(false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == Error::Kind::kPermanent);
  CHECK(batcher.lowest_pending("t", 0) == 0);
  REQUIRE(batcher.flush(true).ok());
  CHECK(batcher.archived_through("t", 0) == 0);
}

TEST_CASE("recover after a crash between upload and commit archives each event once",
          "[archive][batcher]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  {
    ArchiveBatcher first({.prefix = "x/", .max_records = 5}, store);
    for (std::int64_t o = 0; o < 12; ++o) {
      const std::string payload = event(o);
      REQUIRE(first.add({"t", 2, o, payload}));
    }
    REQUIRE(first.flush(false).ok());  // 0-4 and 5-9 stored; 10-11 lost with the process
    CHECK(first.archived_through("t", 2) == 9);
    // ... and the process dies before committing any offset.
  }
  ArchiveBatcher second({.prefix = "x/", .max_records = 5}, store);
  auto recovered = second.recover("t", 2);
  REQUIRE(recovered.ok());
  CHECK(recovered.value() == 9);
  auto nothing = second.recover("t", 3);
  REQUIRE(nothing.ok());
  CHECK_FALSE(nothing.value());
  // Kafka redelivers from the last commit (0): what is archived is skipped.
  std::size_t skipped = 0;
  for (std::int64_t o = 0; o < 15; ++o) {
    const std::string payload = event(o);
    if (!second.add({"t", 2, o, payload})) ++skipped;
  }
  CHECK(skipped == 10);
  REQUIRE(second.flush(true).ok());
  std::vector<std::string> expected;
  for (std::int64_t o = 0; o < 15; ++o) expected.push_back(event(o));
  CHECK(archived_lines(store, "x/t/2/") == expected);
}

TEST_CASE("partitions batch separately; redeliveries and abandon", "[archive][batcher]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  ArchiveBatcher batcher({.max_records = 100}, store);
  const std::string payload = "{\n  \"pretty\": true\n}";
  REQUIRE(batcher.add({"t", 0, 5, payload}));
  REQUIRE(batcher.add({"t", 1, 7, payload}));
  REQUIRE(batcher.add({"u", 0, 1, payload}));
  CHECK_FALSE(batcher.add({"t", 0, 5, payload}));  // a redelivered offset
  CHECK(batcher.buffered_records() == 3);
  batcher.abandon("u", 0);  // revoked: Kafka gives it to the next owner
  CHECK(batcher.buffered_records() == 2);
  CHECK_FALSE(batcher.lowest_pending("u", 0));
  auto r = batcher.flush(true);
  REQUIRE(r.ok());
  CHECK(r->objects == 2);
  CHECK(r->archived.size() == 2);
  // A raw newline inside the JSON becomes a space: one event, one line.
  CHECK(archived_lines(store, "t/0/") == std::vector<std::string>{"{   \"pretty\": true }"});
  CHECK(list_all(store, "u/").value().empty());
}

TEST_CASE("backlogged once the buffered bytes pass the limit", "[archive][batcher]") {
  TempDir dir;
  FilesystemStore store(dir.path);
  ArchiveBatcher batcher({.max_records = 1000000, .max_bytes = 1 << 30, .max_buffered_bytes = 1000},
                         store);
  const std::string payload(99, 'y');
  for (std::int64_t o = 0; o < 9; ++o) REQUIRE(batcher.add({"t", 0, o, payload}));
  CHECK_FALSE(batcher.backlogged());
  REQUIRE(batcher.add({"t", 0, 9, payload}));
  CHECK(batcher.backlogged());
  REQUIRE(batcher.flush(true).ok());
  CHECK_FALSE(batcher.backlogged());
}
