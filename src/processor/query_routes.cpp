#include "processor/query_routes.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>

#include "processor/latest_view.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::processor {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;

namespace {

// Default-constructible, as co_spawn's completion needs, unlike Result.
struct QueryOutcome {
  bool ok = false;
  std::string body;
  std::string error;
};

// Runs `query` on the pool and resumes the awaiting coroutine on its own executor. GCC 12
// relocates class-type temporaries that live across a co_await with a plain memory copy, which
// corrupts std::string's small-buffer pointer (ASan caught it freeing a non-heap address). So
// this is not a coroutine, and callers capture their query by reference to a named coroutine
// local, which stays in place while the coroutine is suspended.
template <typename Query>
asio::awaitable<QueryOutcome> on_pool(asio::thread_pool& pool, Query query) {
  return asio::async_initiate<const asio::use_awaitable_t<>, void(QueryOutcome)>(
      [&pool](auto handler, Query q) {
        auto resume_on = asio::get_associated_executor(handler);
        asio::post(pool, [handler = std::move(handler), resume_on, q = std::move(q)]() mutable {
          Result<std::string> result = q();
          QueryOutcome outcome = result ? QueryOutcome{true, std::move(result.value()), {}}
                                        : QueryOutcome{false, {}, result.error().message};
          asio::post(resume_on,
                     [handler = std::move(handler), outcome = std::move(outcome)]() mutable {
                       std::move(handler)(std::move(outcome));
                     });
        });
      },
      asio::use_awaitable, std::move(query));
}

http::Response unavailable(const QueryOutcome& outcome) {
  http::Response res =
      http::json_error(beast_http::status::service_unavailable, "store_unavailable",
                       "the database did not answer: " + outcome.error);
  res.set(beast_http::field::retry_after, "5");
  return res;
}

std::optional<std::string> query_param(const http::RequestContext& ctx, std::string_view name) {
  const auto it = ctx.query.find(name);
  if (it == ctx.query.end()) return std::nullopt;
  return it->second;
}

// Write-only sinks (processor.sinks: [influxdb]) have nothing to answer queries from: 501 says
// so for good, where 503 would invite retries.
http::Response not_supported() {
  return http::json_error(beast_http::status::not_implemented, "not_supported",
                          "queries need a sink that serves them in processor.sinks (mongodb, "
                          "postgresql); with influxdb query InfluxDB itself");
}

http::Response invalid(std::string message, std::string_view field) {
  return http::json_error(beast_http::status::bad_request, "invalid_parameter", message, field);
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF) without
// control characters (C0 including NUL, DEL, C1): MongoDB's BCON_UTF8 would stop at a NUL and
// match another GPU's uuid.
bool valid_gpu_uuid(std::string_view uuid) {
  if (uuid.empty() || uuid.size() > query::kMaxGpuUuidBytes) return false;
  std::size_t i = 0;
  while (i < uuid.size()) {
    const auto byte = static_cast<unsigned char>(uuid[i]);
    if (byte < 0x80) {
      if (byte < 0x20 || byte == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    std::uint32_t min = 0;
    if ((byte & 0xe0) == 0xc0) {
      length = 2, code = byte & 0x1fu, min = 0x80;
    } else if ((byte & 0xf0) == 0xe0) {
      length = 3, code = byte & 0x0fu, min = 0x800;
    } else if ((byte & 0xf8) == 0xf0) {
      length = 4, code = byte & 0x07u, min = 0x10000;
    } else {
      return false;  // a continuation byte or 0xf8..0xff where a sequence starts
    }
    if (uuid.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(uuid[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3fu);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
    if (code >= 0x80 && code <= 0x9f) return false;  // C1 controls
    i += length;
  }
  return true;
}

// Reads from, to and step of /v1/gpus/{uuid}/metrics into `query`; the 400 answer when one is
// wrong. Not a coroutine, so its temporaries never live across a co_await (see on_pool).
std::optional<http::Response> parse_series_query(const http::RequestContext& ctx,
                                                 query::SeriesQuery& query) {
  query.gpu_uuid = ctx.params.at("uuid");
  if (!valid_gpu_uuid(query.gpu_uuid)) {
    return invalid("the GPU uuid must be 1 to " + std::to_string(query::kMaxGpuUuidBytes) +
                       " bytes of UTF-8 without control characters",
                   "uuid");
  }
  constexpr std::chrono::system_clock::time_point kEpoch{};
  std::optional<std::chrono::system_clock::time_point> from, to;
  for (const char* name : {"from", "to"}) {
    if (auto text = query_param(ctx, name)) {
      std::chrono::system_clock::time_point t;
      if (!events::parse_rfc3339(*text, t))
        return invalid(std::string(name) + " must be an RFC 3339 time", name);
      // Keeps `to - 1h` and the bucket arithmetic far from the clock's minimum.
      if (t < kEpoch) return invalid(std::string(name) + " must not be before 1970-01-01", name);
      (std::string_view(name) == "from" ? from : to) = t;
    }
  }
  query.to = to.value_or(std::chrono::system_clock::now());
  query.from = from.value_or(query.to - query::kDefaultSeriesRange);
  if (query.from < kEpoch) {
    return invalid("from (by default 1 h before to) must not be before 1970-01-01", "from");
  }
  if (unix_ms(query.to) <= unix_ms(query.from)) {
    return invalid("from must be earlier than to", "from");
  }
  if (query.to - query.from > query::kMaxSeriesRange) {
    return invalid("the range from..to must not be longer than " +
                       std::to_string(query::kMaxSeriesRange.count()) + " days",
                   "from");
  }
  if (auto text = query_param(ctx, "step")) {
    if (!query::parse_step(*text, query.step_ms)) {
      return invalid(
          "step must be a positive whole number of ms, s, m, h or d (500ms, 10s, 1m), "
          "or of seconds",
          "step");
    }
  } else {
    query.step_ms = query::default_step(unix_ms(query.from), unix_ms(query.to));
  }
  if (const auto points =
          query::bucket_count(unix_ms(query.from), unix_ms(query.to), query.step_ms);
      points > query::kMaxSeriesPoints) {
    return invalid("step " + query::format_step(query.step_ms) + " gives " +
                       std::to_string(points) + " points over this range, more than " +
                       std::to_string(query::kMaxSeriesPoints) +
                       ": ask for a larger step or a shorter range",
                   "step");
  }
  return std::nullopt;
}

// Who may ask: every query route admits a request first. Without tokens (query.auth: none) every
// request reads every tenant. Shared by the routes' handlers, which outlive any one request.
class QueryGuard {
 public:
  QueryGuard(std::optional<http::BearerTokens> tokens, metrics::Registry& metrics)
      : tokens_(std::move(tokens)),
        refused_(metrics.counter("processor_query_unauthorized_total",
                                 "Query API requests refused, by reason: missing_token and "
                                 "invalid_token (401), forbidden_tenant (403).",
                                 {"reason"})) {}

  // The 401 (or the store's 501) to send, or nullopt with `client` set to the token's client.
  // The token comes first: a client without one learns nothing, not even the store kind.
  std::optional<http::Response> admit(const http::Request& request, const Store& store,
                                      http::TokenClient& client) const {
    std::optional<http::TokenClient> token;
    if (tokens_) token = tokens_->authenticate(request[beast_http::field::authorization]);
    if (!tokens_ || token) {
      if (token) client = std::move(*token);
      if (!store.supports_queries()) return not_supported();
      return std::nullopt;
    }
    http::Response res = http::bearer_refusal(request);
    refused_
        .with(
            {request[beast_http::field::authorization].empty() ? "missing_token" : "invalid_token"})
        .Increment();
    return res;
  }

  http::Response forbidden(const http::TokenClient& client, const std::string& tenant) const {
    refused_.with({"forbidden_tenant"}).Increment();
    return http::json_error(beast_http::status::forbidden, "forbidden_tenant",
                            "the token of client " + client.name + " may not read tenant " + tenant,
                            "tenant");
  }

 private:
  std::optional<http::BearerTokens> tokens_;
  metrics::Family<metrics::Counter>& refused_;
};

// Reads group_by, from, to and tenant of /v1/usage into `query`, narrowed to the client's
// tenants; the 400 or 403 answer when one is wrong. Not a coroutine (see on_pool).
std::optional<http::Response> parse_usage_query(const http::RequestContext& ctx,
                                                const QueryGuard& guard,
                                                const http::TokenClient& client,
                                                UsageQuery& query) {
  query.group_by = query_param(ctx, "group_by").value_or("model");
  if (query.group_by != "model" && query.group_by != "tenant" && query.group_by != "deployment") {
    return invalid("group_by must be model, tenant or deployment", "group_by");
  }
  for (const char* name : {"from", "to"}) {
    if (auto text = query_param(ctx, name)) {
      std::chrono::system_clock::time_point t;
      if (!events::parse_rfc3339(*text, t))
        return invalid(std::string(name) + " must be an RFC 3339 time", name);
      (std::string_view(name) == "from" ? query.from : query.to) = t;
    }
  }
  // The filter goes into the store's query, so a scoped token never reads another tenant's rows.
  if (auto tenant = query_param(ctx, "tenant")) {
    if (!client.may_read(*tenant)) return guard.forbidden(client, *tenant);
    query.tenants = std::vector<std::string>{*tenant};
  } else if (!client.all_tenants()) {
    query.tenants = client.tenants;
  }
  return std::nullopt;
}

std::string series_body(const query::SeriesQuery& query, const std::string& points) {
  JsonWriter json;
  json.begin_object()
      .key("gpu_uuid")
      .value(query.gpu_uuid)
      .key("from")
      .value(rfc3339_utc(query.from))
      .key("to")
      .value(rfc3339_utc(query.to))
      .key("step")
      .value(query::format_step(query.step_ms))
      .key("step_ms")
      .value(query.step_ms)
      .key("points")
      .raw(points)
      .end_object();
  return json.take();
}

}  // namespace

std::vector<KeySpec> query_keys(std::string_view default_auth) {
  return {
      {.name = "query.auth",
       .description = "bearer: the query routes (/gpu/info, /v1/gpus, /v1/usage, /v1/devices, "
                      "/v1/gpus/{uuid}/metrics) need a token from query.tokens_file; none: open "
                      "(a loopback listener, or behind a trusted proxy). /health, /ready and "
                      "/metrics stay open.",
       .default_value = std::string(default_auth),
       .allowed = {"bearer", "none"}},
      {.name = "query.tokens_file",
       .description = "File of `name token` (every tenant) or `name token tenants=a,b` lines "
                      "(tokens >= 16 characters; tenants=* is every tenant); read at start.",
       .default_value = ""},
  };
}

std::optional<http::BearerTokens> query_tokens_from(const Config& config,
                                                    std::string_view section) {
  const std::string prefix = std::string(section) + ".query.";
  if (config.str(prefix + "auth") == "none") {
    if (!http::is_loopback_listen(config.str("http.listen"))) {
      log::warn("query", "the query API answers without a token on a non-loopback address",
                {{"listen", config.str("http.listen")},
                 {"hint", prefix + "auth: bearer with " + prefix + "tokens_file"}});
    }
    return std::nullopt;
  }
  // Checked here, when the role starts, as ingest.tokens_file is: check-config passes a file
  // that leaves the key to the environment or --set.
  if (config.str(prefix + "tokens_file").empty()) {
    throw ConfigError({{config.source(), 0, 0, prefix + "tokens_file",
                        "is required when " + prefix + "auth is bearer",
                        "a file of `name token [tenants=a,b]` lines, or " + prefix +
                            "auth: none on a loopback listener",
                        prefix + "auth"}});
  }
  return http::BearerTokens::load(config.str(prefix + "tokens_file"), prefix + "tokens_file");
}

namespace {

// The query routes' handlers run after the guard admitted the request, with the token's client.
using GuardedHandler = std::function<asio::awaitable<http::Response>(const http::RequestContext&,
                                                                     const http::TokenClient&)>;

void add_guarded(http::Router& router, const char* path,
                 const std::shared_ptr<const QueryGuard>& guard, const Store& store,
                 GuardedHandler handler) {
  router.add(beast_http::verb::get, path,
             [guard, &store, handler = std::move(handler)](
                 const http::RequestContext& ctx) -> asio::awaitable<http::Response> {
               http::TokenClient client;
               if (auto refused = guard->admit(ctx.request, store, client)) {
                 co_return std::move(*refused);
               }
               co_return co_await handler(ctx, client);
             });
}

// How long a copy of the latest view serves /gpu/info and /v1/devices before it is read again,
// when this process stored nothing since: the bound on how far behind another processor's
// writes to the same database those answers may be.
constexpr std::chrono::milliseconds kLatestViewMaxAge{1000};

// A list route's answer without a database round trip (nullopt: ask `query` on the pool).
using CachedList = std::function<std::optional<std::string>()>;
using ListQuery = std::function<Result<std::string>()>;

http::Response list_response(const std::string& key, const std::string& list) {
  return http::json_response(beast_http::status::ok, "{\"" + key + "\":" + list + "}");
}

// GET /v1/gpus and /v1/devices: one list, under `key`.
void add_list_route(http::Router& router, const char* path, std::string key,
                    const std::shared_ptr<const QueryGuard>& guard, const Store& store,
                    asio::thread_pool& blocking, CachedList cached, ListQuery query) {
  add_guarded(
      router, path, guard, store,
      [&blocking, key = std::move(key), cached = std::move(cached), query = std::move(query)](
          const http::RequestContext&,
          const http::TokenClient&) -> asio::awaitable<http::Response> {
        if (const std::optional<std::string> list = cached()) {
          co_return list_response(key, *list);
        }
        const QueryOutcome outcome = co_await on_pool(blocking, [&query] { return query(); });
        if (!outcome.ok) co_return unavailable(outcome);
        co_return list_response(key, outcome.body);
      });
}

http::Response latest_response(const std::string& body) {
  if (body == "null") {
    return http::json_error(beast_http::status::not_found, "not_found",
                            "no GPU metrics stored for this filter");
  }
  return http::json_response(beast_http::status::ok, body);
}

}  // namespace

void add_query_routes(http::Router& router, asio::thread_pool& blocking, Store& store,
                      std::optional<http::BearerTokens> tokens, metrics::Registry& metrics) {
  const auto guard = std::make_shared<const QueryGuard>(std::move(tokens), metrics);
  // A store that keeps the latest view answers /gpu/info and /v1/devices from memory.
  const std::shared_ptr<LatestViewCache> latest =
      store.keeps_latest_view() ? std::make_shared<LatestViewCache>(store, kLatestViewMaxAge)
                                : nullptr;
  add_guarded(
      router, "/gpu/info", guard, store,
      [&blocking, &store, latest](const http::RequestContext& ctx,
                                  const http::TokenClient&) -> asio::awaitable<http::Response> {
        GpuQuery query{query_param(ctx, "gpu_uuid").value_or(""),
                       query_param(ctx, "host").value_or("")};
        if (latest) {
          if (const std::optional<std::string> body = latest->cached_latest_json(query)) {
            co_return latest_response(*body);
          }
        }
        const QueryOutcome outcome = co_await on_pool(blocking, [&store, &latest, &query] {
          return latest ? latest->latest_json(query) : store.latest_gpu_json(query);
        });
        if (!outcome.ok) co_return unavailable(outcome);
        co_return latest_response(outcome.body);
      });
  add_list_route(
      router, "/v1/gpus", "gpus", guard, store, blocking,
      [] { return std::optional<std::string>(); }, [&store] { return store.gpus_json(); });
  add_guarded(router, "/v1/usage", guard, store,
              [&blocking, &store, guard](
                  const http::RequestContext& ctx,
                  const http::TokenClient& client) -> asio::awaitable<http::Response> {
                UsageQuery query;
                if (auto refused = parse_usage_query(ctx, *guard, client, query)) {
                  co_return std::move(*refused);
                }
                const QueryOutcome outcome = co_await on_pool(
                    blocking, [&store, &query] { return store.usage_json(query); });
                if (!outcome.ok) co_return unavailable(outcome);
                co_return http::json_response(
                    beast_http::status::ok,
                    "{\"group_by\":\"" + query.group_by + "\",\"groups\":" + outcome.body + "}");
              });
  add_guarded(
      router, "/v1/gpus/{uuid}/metrics", guard, store,
      [&blocking, &store](const http::RequestContext& ctx,
                          const http::TokenClient&) -> asio::awaitable<http::Response> {
        query::SeriesQuery query;
        if (auto refused = parse_series_query(ctx, query)) co_return std::move(*refused);
        const QueryOutcome outcome =
            co_await on_pool(blocking, [&store, &query] { return store.gpu_series_json(query); });
        if (!outcome.ok) co_return unavailable(outcome);
        if (outcome.body == "null") {
          co_return http::json_error(beast_http::status::not_found, "not_found",
                                     "no GPU metrics stored for gpu_uuid " + query.gpu_uuid);
        }
        co_return http::json_response(beast_http::status::ok, series_body(query, outcome.body));
      });
  add_list_route(
      router, "/v1/devices", "devices", guard, store, blocking,
      [latest] { return latest ? latest->cached_devices_json() : std::optional<std::string>(); },
      [&store, latest] { return latest ? latest->devices_json() : store.devices_json(); });
}

}  // namespace telemetryd::processor
