#pragma once
// The worker's archive: every consumed event, once, in gzip NDJSON objects in an ArchiveStore.
//
// Contract with the worker (one consumer thread; not thread-safe):
//
//  * Exactly once, without transactions. Object keys are deterministic
//    (`<prefix><topic>/<partition>/<first-offset>-<last-offset>.ndjson.gz`, offsets zero-padded
//    to 20 digits so keys sort like offsets) and a sealed batch keeps its bytes until it is
//    stored, so a retried upload overwrites its own object instead of adding a second one.
//    Per partition, batches are uploaded strictly in offset order and an upload failure stops
//    that partition's later uploads: what is archived is always a prefix of the partition's
//    records. That makes `recover()` (the highest archived offset, read from the store's key
//    names) a complete answer after a crash between an upload and the offset commit: the worker
//    skips records at or below it (`add()` does so itself) and nothing is archived twice.
//
//  * Offsets. Kafka offsets must not move past a record that is not archived yet, or a crash
//    would lose it. Before committing offset C (the next one to read) for a partition, the
//    worker bounds it with `commit_bound()`: at most the lowest offset still waiting in memory.
//
//  * Sealing. A partition's open batch is sealed when it reaches max_records or max_bytes (of
//    uncompressed NDJSON), or when its first record is max_age old (checked by add() and
//    flush(); `next_due()` says when to call flush() next). Sealing compresses once; the bytes
//    never change afterwards.
//
//  * Failures never drop data. A failed upload keeps the batch; that partition waits
//    retry_backoff (doubling up to the maximum) before the next attempt, so a down store is not
//    hammered on every poll. flush(force=true), for shutdown and partition revocation, seals
//    every open batch and ignores the backoff. Permanent errors (credentials, missing bucket)
//    are returned like retryable ones, with their kind: the data is still kept, but the worker
//    should report unreadiness loudly rather than expect it to heal. While `backlogged()`, the
//    worker should pause consumption (memory is bounded by max_buffered_bytes that way).
//
//  * Ownership. The archive holds exactly-once only while one worker owns a partition at a
//    time (Kafka's group protocol); on revocation the worker calls abandon() after its last
//    flush and commit. A zombie that still uploads after losing its partition can write an
//    object whose range overlaps the new owner's: readers should de-duplicate by event id.
//    In a versioned bucket a retried put adds a version of the same key, not a second key.
//
// The worker's loop, in order:
//
//    store = make_archive_store(config); batcher(batcher_settings(config), *store)
//    on assign(topic, p):   batcher.recover(topic, p)   (retry while retryable; before add())
//    per message:           batcher.add({topic, p, offset, value})   (false: already archived)
//    after each poll batch: batcher.flush(false)        (cheap when nothing is sealed or due)
//                           pause consuming while batcher.backlogged()
//    before committing C:   C = batcher.commit_bound(topic, p, C)
//    on revoke / shutdown:  batcher.flush(true), commit, then abandon(topic, p) on revoke
//    sleep no longer than:  batcher.next_due()
//
// recover() lists every object of the partition (1,000 keys per request): its cost grows with
// the archive's size, which is why it runs on assignment only.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "archive/archive_store.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::archive {

struct ArchiveRecord {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string_view payload;  // the Kafka message value, one JSON event
};

struct BatcherSettings {
  std::string prefix;  // e.g. "archive/"; may be empty
  std::size_t max_records = 10000;
  std::size_t max_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds max_age{60000};
  std::size_t max_buffered_bytes = 256 * 1024 * 1024;
  std::chrono::milliseconds retry_backoff_initial{500};
  std::chrono::milliseconds retry_backoff_max{30000};
  int gzip_level = 6;
};

using PartitionId = std::pair<std::string, std::int32_t>;

struct FlushReport {
  /// Partitions whose archived offset moved in this call, with the new highest archived offset.
  std::map<PartitionId, std::int64_t> archived;
  std::size_t objects = 0;  // objects stored by this call
  std::size_t records = 0;  // records in them
  std::size_t bytes = 0;    // compressed bytes stored
  std::size_t uncompressed_bytes = 0;
  std::size_t waiting = 0;  // sealed batches left for a later call (backoff or failure)
};

/// `<prefix><topic>/<partition>/<first:020>-<last:020>.ndjson.gz`
std::string archive_key(std::string_view prefix, std::string_view topic, std::int32_t partition,
                        std::int64_t first_offset, std::int64_t last_offset);
/// The last offset of a key made by archive_key for that prefix/topic/partition, or nullopt.
std::optional<std::int64_t> last_offset_of_key(std::string_view key,
                                               std::string_view partition_prefix);

class ArchiveBatcher {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  ArchiveBatcher(BatcherSettings settings, ArchiveStore& store, Clock clock = {});

  /// Reads the store: the highest offset archived for the partition (nullopt when none) and
  /// remembers it, so add() skips records at or below it. Call when a partition is assigned,
  /// before the first add() for it.
  Result<std::optional<std::int64_t>> recover(const std::string& topic, std::int32_t partition);

  /// Takes a record into its partition's open batch (may seal it). False when the record is at
  /// or below what is already archived (after recover(), or a redelivery): the caller treats
  /// it as archived. Offsets must increase within a partition; a lower one than the open batch
  /// holds is ignored the same way.
  bool add(const ArchiveRecord& record);

  /// Seals batches due by age (all open ones when `force`), then uploads sealed batches in
  /// offset order per partition. Ok when no upload failed in this call; on failure, the first
  /// error (permanent when any was permanent), while partitions that did succeed have already
  /// moved (archived_through() and commit_bound() tell).
  Result<FlushReport> flush(bool force = false);

  /// Highest offset durably archived (or skipped as archived) for the partition.
  std::optional<std::int64_t> archived_through(const std::string& topic,
                                               std::int32_t partition) const;
  /// Lowest offset held in memory (open or sealed, not stored yet); nullopt when none.
  std::optional<std::int64_t> lowest_pending(const std::string& topic,
                                             std::int32_t partition) const;
  /// `next_offset` (the offset the worker wants to commit) capped at lowest_pending().
  std::int64_t commit_bound(const std::string& topic, std::int32_t partition,
                            std::int64_t next_offset) const;

  /// Drops everything held for the partition (after revocation); Kafka redelivers it.
  void abandon(const std::string& topic, std::int32_t partition);

  /// When flush() next has work: the oldest open batch's age limit, or the end of a backoff.
  std::optional<std::chrono::steady_clock::time_point> next_due() const;
  std::size_t buffered_bytes() const { return buffered_bytes_; }
  std::size_t buffered_records() const { return buffered_records_; }
  bool backlogged() const { return buffered_bytes_ >= settings_.max_buffered_bytes; }
  const BatcherSettings& settings() const { return settings_; }

 private:
  struct Sealed {
    std::string key;
    std::string bytes;  // gzip, fixed at sealing
    std::int64_t first = 0;
    std::int64_t last = 0;
    std::size_t records = 0;
    std::size_t uncompressed = 0;
  };
  struct Partition {
    std::string ndjson;  // open batch
    std::size_t records = 0;
    std::int64_t first = -1;
    std::int64_t last = -1;
    std::chrono::steady_clock::time_point opened{};
    std::deque<Sealed> sealed;
    std::optional<std::int64_t> archived;
    std::chrono::milliseconds backoff{0};
    std::chrono::steady_clock::time_point retry_at{};
  };

  std::chrono::steady_clock::time_point now() const;
  void seal(const PartitionId& id, Partition& p);

  BatcherSettings settings_;
  ArchiveStore& store_;
  Clock clock_;
  std::map<PartitionId, Partition> partitions_;
  std::size_t buffered_bytes_ = 0;
  std::size_t buffered_records_ = 0;
};

}  // namespace telemetryd::archive
