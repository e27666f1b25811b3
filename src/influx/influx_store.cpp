#include "influx/influx_store.hpp"

#include <algorithm>

#include "telemetryd/log.hpp"

namespace telemetryd::influx {

using events::EventKind;

namespace {

// InfluxDB reports only the first type conflict of a write (with the total dropped), so a
// partial write is narrowed down by rewriting what is left: the stored points are rewritten
// identically, and the next conflict surfaces. Bounded, then the rest is refused whole.
constexpr int kMaxPartialRounds = 8;

// Where the field set of a line starts: after the first space that is not escaped.
std::size_t fields_start(std::string_view line) {
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\') {
      ++i;
    } else if (line[i] == ' ') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

bool has_field(std::string_view line, std::string_view measurement, std::string_view field) {
  if (!line.starts_with(measurement) || line.size() <= measurement.size()) return false;
  const char after = line[measurement.size()];
  if (after != ',' && after != ' ') return false;
  const std::size_t start = fields_start(line);
  if (start == std::string_view::npos) return false;
  const std::string_view fields = line.substr(start);
  const std::string key = std::string(field) + "=";
  if (fields.starts_with(key)) return true;
  // Our field names need no escaping and string values cannot hold `,name=` unescaped... they
  // can, inside quotes; so only a match outside a quoted string counts.
  bool quoted = false;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const char c = fields[i];
    if (c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == ',' && fields.substr(i + 1).starts_with(key)) {
      return true;
    }
  }
  return false;
}

std::string_view strip_newline(const std::string& line) {
  std::string_view v = line;
  if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
  return v;
}

void count_inserted(WriteOutcome& outcome, events::EventKind kind) {
  if (kind == events::EventKind::kTokenUsage) {
    ++outcome.token_usage_inserted;
  } else {
    ++outcome.gpu_metrics_inserted;
  }
}

}  // namespace

std::uint64_t SlotTracker::hash(std::string_view text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

void SlotTracker::assign(const std::vector<std::size_t>& indices,
                         const std::vector<StoredEvent>& batch, std::vector<std::string>& lines) {
  // Random id offsets collide by the birthday bound when one series has many events in one
  // millisecond (a burst of requests of one tenant and model): the integration test lost 1 point
  // in 18000 to that. So every point's (series, time) slot is remembered for the last
  // kCapacity points, across batches: a slot taken by another event id moves the point to the
  // next free nanosecond (millisecond, at ms precision); an event id seen before gets its slot
  // again, so a retry or a redelivery within the window rewrites the same point. A series lives
  // on one Kafka partition (its key is part of its tags), so one processor sees all its points.
  for (const std::size_t i : indices) {
    std::string& line = lines[i];
    const std::size_t fields = fields_start(line);
    const std::size_t last_space = line.rfind(' ');
    if (fields == std::string_view::npos || last_space == std::string::npos) continue;
    const std::uint64_t id = hash(batch[i].event->id);
    const std::uint64_t series = hash(std::string_view(line).substr(0, fields - 1));
    const std::int64_t base = std::strtoll(line.c_str() + last_space + 1, nullptr, 10);
    std::int64_t time = base;
    if (const auto known = by_id_.find(id);
        known != by_id_.end() && known->second.series == series) {
      time = known->second.time;
    } else {
      for (auto it = slots_.find({series, time}); it != slots_.end() && it->second != id;
           it = slots_.find({series, time})) {
        ++time;
      }
      remember({series, time}, id);
    }
    if (time != base) {
      line.resize(last_space + 1);
      line += std::to_string(time);
      line.push_back('\n');
    }
  }
}

void SlotTracker::remember(Slot slot, std::uint64_t id) {
  slots_[slot] = id;
  by_id_[id] = slot;
  order_.push_back(id);
  while (order_.size() > kCapacity) {
    const std::uint64_t old = order_.front();
    order_.pop_front();
    if (const auto it = by_id_.find(old); it != by_id_.end()) {
      slots_.erase(it->second);
      by_id_.erase(it);
    }
  }
}

std::vector<std::size_t> points_named_by(const PartialWrite& partial,
                                         const std::vector<std::size_t>& indices,
                                         const std::vector<std::string>& lines) {
  std::vector<std::size_t> out;
  for (const std::size_t i : indices) {
    const std::string_view line = strip_newline(lines[i]);
    bool named = std::any_of(partial.unparsable_lines.begin(), partial.unparsable_lines.end(),
                             [&](const std::string& bad) { return bad == line; });
    for (const auto& [measurement, field] : partial.type_conflicts) {
      if (named) break;
      named = has_field(line, measurement, field);
    }
    if (named) out.push_back(i);
  }
  return out;
}

InfluxStore::InfluxStore(StoreSettings settings)
    : settings_(std::move(settings)), writer_(settings_.writer) {}

Result<bool> InfluxStore::create_database() {
  const std::string statement = "CREATE DATABASE \"" + settings_.writer.database + "\"";
  Result<Reply> reply = writer_.query(statement);
  if (!reply) return reply.error();
  const unsigned status = reply->status;
  const std::string message = server_message(reply->body);
  if (status == 200 && reply->body.find("\"error\"") == std::string::npos) return true;
  if (status == 403 || (status == 200 && message.find("requires admin") != std::string::npos)) {
    // A non-admin user may write to an existing database but not create one.
    log::warn("influxdb", "cannot create the database (not an admin); assuming it exists",
              {{"database", settings_.writer.database}});
    return true;
  }
  const std::string text = "CREATE DATABASE answered " + std::to_string(status) + ": " + message;
  if (status == 401) return Error::permanent("influxdb credentials rejected: " + message);
  return status >= 500 || status == 429 ? Error::retryable(text) : Error::permanent(text);
}

Result<bool> InfluxStore::prepare(const events::GpuCatalog&) {
  if (settings_.writer.api == Api::kV1) return create_database();
  const std::string path = "/api/v2/buckets?org=" + url_encode(settings_.writer.org) +
                           "&name=" + url_encode(settings_.writer.bucket);
  Result<Reply> reply = writer_.get(path);
  if (!reply) return reply.error();
  const unsigned status = reply->status;
  if (status == 200) {
    if (reply->body.find("\"name\":\"" + settings_.writer.bucket + "\"") == std::string::npos &&
        reply->body.find("\"name\": \"" + settings_.writer.bucket + "\"") == std::string::npos) {
      return Error::permanent("influxdb bucket '" + settings_.writer.bucket +
                              "' not found in org '" + settings_.writer.org + "'");
    }
    return true;
  }
  if (status == 404) {
    // InfluxDB 1.8's v2 compatibility layer has /api/v2/write but no buckets API: the bucket is
    // database[/retention policy] there, so only reachability can be checked before writing.
    Result<Reply> ping = writer_.get("/ping");
    if (!ping) return ping.error();
    if (ping->status == 204 || ping->status == 200) {
      log::info("influxdb", "no buckets API (InfluxDB 1.8 compatibility); bucket not checked",
                {{"bucket", settings_.writer.bucket}});
      return true;
    }
    return Error::retryable("influxdb /ping answered " + std::to_string(ping->status));
  }
  const std::string text =
      "bucket check answered " + std::to_string(status) + ": " + server_message(reply->body);
  if (status == 401 || status == 403) return Error::permanent("influxdb token rejected: " + text);
  return status >= 500 || status == 429 ? Error::retryable(text) : Error::permanent(text);
}

Result<WriteOutcome> InfluxStore::write(const std::vector<StoredEvent>& batch) {
  WriteOutcome outcome;
  std::vector<std::string> lines(batch.size());
  std::vector<std::size_t> writable;
  writable.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::string error = encode_point(lines[i], batch[i], settings_.writer.precision, parser_);
    if (error.empty()) {
      writable.push_back(i);
    } else {
      outcome.rejected.emplace_back(i, "cannot encode for InfluxDB: " + error);
    }
  }
  slots_.assign(writable, batch, lines);
  for (std::size_t start = 0; start < writable.size(); start += settings_.batch_size) {
    const std::size_t end = std::min(writable.size(), start + settings_.batch_size);
    std::vector<std::size_t> chunk(writable.begin() + static_cast<std::ptrdiff_t>(start),
                                   writable.begin() + static_cast<std::ptrdiff_t>(end));
    // A retryable failure of a later chunk retries the whole batch; the earlier chunks are then
    // rewritten, which InfluxDB treats as overwriting identical points.
    if (Result<bool> r = write_points(std::move(chunk), batch, lines, outcome); !r) {
      return r.error();
    }
  }
  std::sort(outcome.rejected.begin(), outcome.rejected.end());
  return outcome;
}

Result<bool> InfluxStore::write_points(std::vector<std::size_t> indices,
                                       const std::vector<StoredEvent>& batch,
                                       const std::vector<std::string>& lines,
                                       WriteOutcome& outcome) {
  bool created = false;
  for (int round = 0; !indices.empty(); ++round) {
    std::string body;
    for (const std::size_t i : indices) body += lines[i];
    Result<Reply> reply = writer_.write(body);
    if (!reply) return reply.error();
    const unsigned status = reply->status;
    const std::string message = server_message(reply->body);
    const std::string what = "influxdb write answered " + std::to_string(status) + ": " + message;
    switch (classify_write(status, message)) {
      case WriteVerdict::kOk:
        for (const std::size_t i : indices) count_inserted(outcome, batch[i].event->kind);
        return true;
      case WriteVerdict::kRetryable:
        // The database was dropped behind our back: recreate it once, then retry at once.
        if (status == 404 && !created && settings_.writer.api == Api::kV1 &&
            message.find("database not found") != std::string::npos) {
          created = true;
          if (Result<bool> c = create_database(); !c) return c.error();
          --round;
          continue;
        }
        return Error::retryable(what, "http:" + std::to_string(status));
      case WriteVerdict::kPermanent:
        if (status == 413 && indices.size() > 1) {
          // Too large for the server's max-body-size: halve until it fits.
          const auto half = indices.begin() + static_cast<std::ptrdiff_t>(indices.size() / 2);
          if (auto r = write_points({indices.begin(), half}, batch, lines, outcome); !r) return r;
          return write_points({half, indices.end()}, batch, lines, outcome);
        }
        for (const std::size_t i : indices) outcome.rejected.emplace_back(i, what);
        return true;
      case WriteVerdict::kPartial: {
        const PartialWrite partial = parse_partial_write(message);
        const std::vector<std::size_t> named = points_named_by(partial, indices, lines);
        if (named.empty() || round + 1 >= kMaxPartialRounds) {
          // Cannot tell which points were dropped (e.g. beyond the retention policy): all of them
          // are refused, though InfluxDB may hold some; the dead letters keep every one.
          for (const std::size_t i : indices) {
            outcome.rejected.emplace_back(
                i,
                "influxdb partial write, dropped points not identifiable, batch refused "
                "whole (some may be stored): " +
                    message);
          }
          return true;
        }
        for (const std::size_t i : named) outcome.rejected.emplace_back(i, what);
        std::vector<std::size_t> rest;
        std::set_difference(indices.begin(), indices.end(), named.begin(), named.end(),
                            std::back_inserter(rest));
        indices = std::move(rest);
        break;  // rewrite the rest: confirms them and surfaces the next conflict
      }
    }
  }
  return true;
}

Result<std::string> InfluxStore::latest_gpu_json(const GpuQuery&) {
  return Error::permanent("queries are not served from InfluxDB (processor.sinks: [influxdb])");
}
Result<std::string> InfluxStore::gpus_json() {
  return Error::permanent("queries are not served from InfluxDB (processor.sinks: [influxdb])");
}
Result<std::string> InfluxStore::usage_json(const UsageQuery&) {
  return Error::permanent("queries are not served from InfluxDB (processor.sinks: [influxdb])");
}
Result<std::string> InfluxStore::gpu_series_json(const query::SeriesQuery&) {
  return Error::permanent("queries are not served from InfluxDB (processor.sinks: [influxdb])");
}
Result<std::string> InfluxStore::devices_json() {
  return Error::permanent("queries are not served from InfluxDB (processor.sinks: [influxdb])");
}

}  // namespace telemetryd::influx
