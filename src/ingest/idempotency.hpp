#pragma once
// Turns an Idempotency-Key header into the event id, so a client's retry of the same request
// produces the same CloudEvent id and is stored once downstream.

#include <optional>
#include <string>
#include <string_view>

namespace telemetryd::ingest {

/// The key is scoped by the client's name, hashed with SHA-256 and shaped as a version-7 UUID, so
/// the same client and key always give the same id and two clients' keys never collide (a UUID
/// key too: used as it is, one client could make another's events look like duplicates).
std::string event_id_for_key(std::string_view client, std::string_view key);

/// Keys are 1..255 visible ASCII characters; returns an error message otherwise.
std::optional<std::string> check_idempotency_key(std::string_view key);

}  // namespace telemetryd::ingest
