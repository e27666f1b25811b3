#include "archive/archive_batcher.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "archive/gzip.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::archive {
namespace {

constexpr std::string_view kSuffix = ".ndjson.gz";
constexpr std::size_t kOffsetDigits = 20;

std::string partition_prefix(std::string_view prefix, std::string_view topic,
                             std::int32_t partition) {
  std::string out(prefix);
  out.append(topic);
  out.push_back('/');
  out += std::to_string(partition);
  out.push_back('/');
  return out;
}

std::string padded(std::int64_t offset) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%020lld", static_cast<long long>(offset));
  return buffer;
}

}  // namespace

std::string archive_key(std::string_view prefix, std::string_view topic, std::int32_t partition,
                        std::int64_t first_offset, std::int64_t last_offset) {
  return partition_prefix(prefix, topic, partition) + padded(first_offset) + "-" +
         padded(last_offset) + std::string(kSuffix);
}

std::optional<std::int64_t> last_offset_of_key(std::string_view key,
                                               std::string_view partition_prefix_text) {
  if (key.substr(0, partition_prefix_text.size()) != partition_prefix_text) return std::nullopt;
  std::string_view name = key.substr(partition_prefix_text.size());
  if (name.size() != kOffsetDigits * 2 + 1 + kSuffix.size() || name[kOffsetDigits] != '-' ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return std::nullopt;
  }
  const std::string_view first = name.substr(0, kOffsetDigits);
  const std::string_view last = name.substr(kOffsetDigits + 1, kOffsetDigits);
  std::int64_t first_value = 0;
  std::int64_t last_value = 0;
  const auto a = std::from_chars(first.data(), first.data() + first.size(), first_value);
  const auto b = std::from_chars(last.data(), last.data() + last.size(), last_value);
  if (a.ec != std::errc() || a.ptr != first.data() + first.size() || b.ec != std::errc() ||
      b.ptr != last.data() + last.size() || last_value < first_value) {
    return std::nullopt;
  }
  return last_value;
}

ArchiveBatcher::ArchiveBatcher(BatcherSettings settings, ArchiveStore& store, Clock clock)
    : settings_(std::move(settings)), store_(store), clock_(std::move(clock)) {
  settings_.max_records = std::max<std::size_t>(settings_.max_records, 1);
  settings_.max_bytes = std::max<std::size_t>(settings_.max_bytes, 1);
}

std::chrono::steady_clock::time_point ArchiveBatcher::now() const {
  return clock_ ? clock_() : std::chrono::steady_clock::now();
}

Result<std::optional<std::int64_t>> ArchiveBatcher::recover(const std::string& topic,
                                                            std::int32_t partition) {
  const std::string prefix = partition_prefix(settings_.prefix, topic, partition);
  Result<std::vector<ObjectInfo>> objects = list_all(store_, prefix);
  if (!objects) return objects.error();
  std::optional<std::int64_t> highest;
  for (const ObjectInfo& object : objects.value()) {
    // Foreign files under the prefix (a README, a manual copy) are not ours to interpret.
    const auto last = last_offset_of_key(object.key, prefix);
    if (last && (!highest || *last > *highest)) highest = last;
  }
  Partition& p = partitions_[{topic, partition}];
  if (highest && (!p.archived || *highest > *p.archived)) p.archived = highest;
  return highest;
}

bool ArchiveBatcher::add(const ArchiveRecord& record) {
  PartitionId id{std::string(record.topic), record.partition};
  Partition& p = partitions_[id];
  if (p.archived && record.offset <= *p.archived) return false;
  if (p.records > 0 && record.offset <= p.last) return false;
  if (!p.sealed.empty() && record.offset <= p.sealed.back().last) return false;
  if (p.records == 0) {
    p.first = record.offset;
    p.opened = now();
  }
  const std::size_t before = p.ndjson.size();
  // A raw newline in valid JSON can only be insignificant whitespace (inside strings it is
  // escaped), so replacing it keeps the event and keeps one event per line.
  p.ndjson.append(record.payload);
  if (record.payload.find_first_of("\r\n") != std::string_view::npos) {
    std::replace_if(
        p.ndjson.begin() + static_cast<std::ptrdiff_t>(before), p.ndjson.end(),
        [](char c) { return c == '\n' || c == '\r'; }, ' ');
  }
  p.ndjson.push_back('\n');
  buffered_bytes_ += p.ndjson.size() - before;
  ++buffered_records_;
  ++p.records;
  p.last = record.offset;
  if (p.records >= settings_.max_records || p.ndjson.size() >= settings_.max_bytes ||
      now() - p.opened >= settings_.max_age) {
    seal(id, p);
  }
  return true;
}

void ArchiveBatcher::seal(const PartitionId& id, Partition& p) {
  if (p.records == 0) return;
  Sealed s;
  s.key = archive_key(settings_.prefix, id.first, id.second, p.first, p.last);
  s.bytes = gzip_compress(p.ndjson, settings_.gzip_level);
  s.first = p.first;
  s.last = p.last;
  s.records = p.records;
  s.uncompressed = p.ndjson.size();
  buffered_bytes_ = buffered_bytes_ - p.ndjson.size() + s.bytes.size();
  p.sealed.push_back(std::move(s));
  p.ndjson.clear();
  p.ndjson.shrink_to_fit();
  p.records = 0;
  p.first = p.last = -1;
}

Result<FlushReport> ArchiveBatcher::flush(bool force) {
  FlushReport report;
  std::optional<Error> first_error;
  const auto t = now();
  for (auto& [id, p] : partitions_) {
    if (p.records > 0 && (force || t - p.opened >= settings_.max_age)) seal(id, p);
    if (p.sealed.empty()) continue;
    if (!force && p.backoff.count() > 0 && t < p.retry_at) {
      report.waiting += p.sealed.size();
      continue;
    }
    while (!p.sealed.empty()) {
      Sealed& s = p.sealed.front();
      Result<bool> stored = store_.put(s.key, s.bytes);
      if (!stored) {
        const Error& error = stored.error();
        p.backoff = p.backoff.count() == 0 ? settings_.retry_backoff_initial
                                           : std::min(settings_.retry_backoff_max, p.backoff * 2);
        p.retry_at = now() + p.backoff;
        log::warn("archive", "upload failed; the batch is kept",
                  {{"key", s.key},
                   {"error", error.message},
                   {"permanent", error.kind == Error::Kind::kPermanent},
                   {"retry_in_ms", static_cast<std::int64_t>(p.backoff.count())}});
        if (!first_error || (error.kind == Error::Kind::kPermanent &&
                             first_error->kind == Error::Kind::kRetryable)) {
          first_error = error;
        }
        report.waiting += p.sealed.size();
        break;
      }
      p.backoff = std::chrono::milliseconds(0);
      p.archived = s.last;
      report.archived[id] = s.last;
      ++report.objects;
      report.records += s.records;
      report.bytes += s.bytes.size();
      report.uncompressed_bytes += s.uncompressed;
      buffered_bytes_ -= s.bytes.size();
      buffered_records_ -= s.records;
      p.sealed.pop_front();
    }
  }
  if (first_error) return *first_error;
  return report;
}

std::optional<std::int64_t> ArchiveBatcher::archived_through(const std::string& topic,
                                                             std::int32_t partition) const {
  const auto it = partitions_.find({topic, partition});
  return it == partitions_.end() ? std::nullopt : it->second.archived;
}

std::optional<std::int64_t> ArchiveBatcher::lowest_pending(const std::string& topic,
                                                           std::int32_t partition) const {
  const auto it = partitions_.find({topic, partition});
  if (it == partitions_.end()) return std::nullopt;
  const Partition& p = it->second;
  if (!p.sealed.empty()) return p.sealed.front().first;
  if (p.records > 0) return p.first;
  return std::nullopt;
}

std::int64_t ArchiveBatcher::commit_bound(const std::string& topic, std::int32_t partition,
                                          std::int64_t next_offset) const {
  const auto pending = lowest_pending(topic, partition);
  return pending ? std::min(*pending, next_offset) : next_offset;
}

void ArchiveBatcher::abandon(const std::string& topic, std::int32_t partition) {
  const auto it = partitions_.find({topic, partition});
  if (it == partitions_.end()) return;
  Partition& p = it->second;
  buffered_bytes_ -= p.ndjson.size();
  buffered_records_ -= p.records;
  for (const Sealed& s : p.sealed) {
    buffered_bytes_ -= s.bytes.size();
    buffered_records_ -= s.records;
  }
  partitions_.erase(it);
}

std::optional<std::chrono::steady_clock::time_point> ArchiveBatcher::next_due() const {
  std::optional<std::chrono::steady_clock::time_point> due;
  for (const auto& entry : partitions_) {
    const Partition& p = entry.second;
    std::optional<std::chrono::steady_clock::time_point> mine;
    if (!p.sealed.empty()) {
      mine = p.backoff.count() > 0 ? p.retry_at : std::chrono::steady_clock::time_point::min();
    }
    if (p.records > 0) {
      const auto aged = p.opened + settings_.max_age;
      if (!mine || aged < *mine) mine = aged;
    }
    if (mine && (!due || *mine < *due)) due = mine;
  }
  return due;
}

}  // namespace telemetryd::archive
