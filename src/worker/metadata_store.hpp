#pragma once
// Where the worker keeps GPU metadata: an append-only log of every event (gpu_metadata, _id =
// event id) and one state document per device (gpu_devices, _id = gpu_uuid) that only a newer
// observation replaces. Both writes are idempotent, so a redelivered batch changes nothing.

#include <string>
#include <utility>
#include <vector>

#include "telemetryd/result.hpp"
#include "worker/metadata_document.hpp"

namespace telemetryd::worker {

struct LogOutcome {
  std::size_t inserted = 0;
  std::size_t duplicates = 0;  // already stored under that event id
  /// Index into the batch and reason of documents refused for good (they are dead-lettered).
  std::vector<std::pair<std::size_t, std::string>> rejected;
};

struct StateOutcome {
  std::size_t updated = 0;  // inserted or replaced
  std::size_t stale = 0;    // the stored state is as new or newer
  std::vector<std::pair<std::size_t, std::string>> rejected;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  /// Creates the indexes; retryable while the server is away.
  virtual Result<bool> prepare() = 0;
  /// Inserts every document into the log. A retryable error means nothing may be counted done.
  virtual Result<LogOutcome> insert_log(const std::vector<const MetadataDocument*>& batch) = 0;
  /// Applies each document to its device's state (at most one per device per call).
  virtual Result<StateOutcome> update_devices(
      const std::vector<const MetadataDocument*>& batch) = 0;
};

}  // namespace telemetryd::worker
