#pragma once
// Turns an Idempotency-Key header into the event id, so a client's retry of the same request
// produces the same CloudEvent id and is stored once downstream.

#include <optional>
#include <string>
#include <string_view>

namespace telemetryd::ingest {

/// A lowercase UUIDv7 key is used as it is (it is globally unique already). Any other key is
/// scoped by the client's name, hashed with SHA-256 and shaped as a version-7 UUID, so the same
/// client and key always give the same id and two clients' keys never collide.
std::string event_id_for_key(std::string_view client, std::string_view key);

/// Keys are 1..255 visible ASCII characters; returns an error message otherwise.
std::optional<std::string> check_idempotency_key(std::string_view key);

}  // namespace telemetryd::ingest
