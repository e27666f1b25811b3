#pragma once
// The worker's transform: one decoded gpu.metadata.v1 event into the documents it stores.
// - flattened: nested objects become top-level fields joined with '_' ({"pci":{"bus_id":..}}
//   is pci_bus_id); arrays are kept as arrays; a flattened name never replaces a field the
//   event has at the top level (that one wins);
// - units: memory fields in other units (suffix _kib _mib _gib _tib, or SI _kb _mb _gb _tb)
//   become <base>_bytes as an integer, unless the event has <base>_bytes already;
// - observed_at is a BSON date (the ordering key of the device state), ts the event time;
// - unknown fields are kept; names MongoDB cannot store ('.' anywhere, '$' first) get '_' there,
//   and data fields named like an envelope field (_id, ts, ...) are kept as data_<name>.
// And the rule that keeps gpu_devices at the newest observation whatever the arrival order.

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#include <bson/bson.h>
#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "events/event_decoder.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::worker {

struct BsonDeleter {
  void operator()(bson_t* b) const { bson_destroy(b); }
};
using BsonPtr = std::unique_ptr<bson_t, BsonDeleter>;
#pragma GCC diagnostic pop

/// What orders two observations of one device: observed_at, then the event id (UUIDv7, compared
/// as text) so that two events observed in the same millisecond still have one winner.
struct DeviceVersion {
  std::int64_t observed_at_ms = 0;
  std::string event_id;
};

/// True when `candidate` must replace `current` as the device's state.
bool is_newer(const DeviceVersion& candidate, const DeviceVersion& current);

struct MetadataDocument {
  std::string event_id;
  std::string gpu_uuid;
  std::string source;
  std::int64_t event_time_ms = 0;
  DeviceVersion version;
  BsonPtr fields;  // the transformed data fields, observed_at a date; no envelope fields
};

/// Transforms a decoded gpu.metadata.v1 event. A permanent error (not storable as BSON) sends
/// the event to the dead-letter topic.
Result<MetadataDocument> transform_metadata(const events::DecodedEvent& event,
                                            simdjson::dom::parser& parser);

/// gpu_metadata: {_id: event id, ts, source, received_at, ...fields}.
BsonPtr log_document(const MetadataDocument& doc, std::int64_t received_at_ms);
/// gpu_devices: {_id: gpu_uuid, event_id, ts, source, updated_at, ...fields}.
BsonPtr device_document(const MetadataDocument& doc, std::int64_t updated_at_ms);
/// The filter under which device_document may replace the stored state: {_id: gpu_uuid, $or:
/// [{observed_at: {$lt: new}}, {observed_at: new, event_id: {$lt: new id}}]}: a newer or equal
/// stored state (also one a concurrent writer just stored) does not match.
BsonPtr device_filter(const MetadataDocument& doc);

std::int64_t to_epoch_ms(std::chrono::system_clock::time_point t);

}  // namespace telemetryd::worker
