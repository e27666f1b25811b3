#pragma once
// GET /gpu/info, /v1/gpus, /v1/usage, /v1/gpus/{uuid}/metrics and /v1/devices over a Store. Queries
// run on the blocking pool so a slow database never stalls /health or /metrics on the io thread.
// Every one of them needs a bearer token from <section>.query.tokens_file unless
// <section>.query.auth is none; a token scoped to tenants sees only their usage (docs/security.md).

#include <boost/asio/thread_pool.hpp>
#include <optional>

#include "http/bearer_tokens.hpp"
#include "http/router.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/metrics.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::processor {

/// query.auth and query.tokens_file, declared in the processor and embedded sections alike;
/// `default_auth` is the section's default (bearer for the processor, none for the all role).
std::vector<KeySpec> query_keys(std::string_view default_auth);
/// The tokens the query routes accept, or nullopt when `<section>.query.auth` is none; reads the
/// file and throws ConfigError (key and line, never a token) when it is wrong or not given.
std::optional<http::BearerTokens> query_tokens_from(const Config& config, std::string_view section);

void add_query_routes(http::Router& router, boost::asio::thread_pool& blocking, Store& store,
                      std::optional<http::BearerTokens> tokens, metrics::Registry& metrics);

}  // namespace telemetryd::processor
