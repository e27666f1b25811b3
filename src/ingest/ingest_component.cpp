// The `ingest` component of the processor role: an HTTP front door to Kafka. POST /metadata takes
// one GPU's metadata, POST /v1/events a batch of CloudEvents of any type; both validate against
// the event contract, publish with acks=all and answer 202 only after the brokers acknowledged,
// so a client that got 202 knows the event is durable and one that got anything else may retry
// (with the same Idempotency-Key) without creating a duplicate. It never writes to a database.

#include <simdjson.h>
#include <boost/asio/io_context.hpp>

// GCC 12 reports -Wmismatched-new-delete inside asio's awaitable frames of coroutines with several
// co_return paths: the frame is allocated and freed by the same awaitable_frame_base operators,
// so this is a false positive (GCC bug 109224), silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>

#include "events/cloudevent.hpp"
#include "events/event_decoder.hpp"
#include "http/bearer_tokens.hpp"
#include "http/router.hpp"
#include "ingest/idempotency.hpp"
#include "ingest/ingest_publisher.hpp"
#include "ingest/metadata_normalizer.hpp"
#include "ingest/rate_limiter.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::ingest {
namespace {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using http::Response;
using Status = beast_http::status;

using http::media_type;

Response with_retry_after(Response response, int seconds) {
  response.set(beast_http::field::retry_after, std::to_string(seconds));
  return response;
}

// DecodeError's detail starts with the field's path ("data.gpu_uuid is required").
std::string field_of(const events::DecodeError& error) {
  std::string_view detail = error.detail;
  std::string_view path = detail.substr(0, detail.find(' '));
  if (path.substr(0, 5) == "data.") path.remove_prefix(5);
  if (path.find_first_of("=:") != std::string_view::npos) return {};
  return std::string(path);
}

struct Item {
  std::size_t index = 0;
  std::string id;
  int status = 0;  // 0 until decided
  std::string code;
  std::string message;
  std::string field;
  std::optional<std::size_t> event;  // index into the events to publish
};

void write_error(JsonWriter& json, std::string_view code, std::string_view message,
                 std::string_view field) {
  json.key("error").begin_object().key("code").value(code).key("message").value(message);
  if (!field.empty()) json.key("field").value(field);
  json.end_object();
}

class IngestComponent final : public Component {
 public:
  explicit IngestComponent(ComponentContext& ctx)
      : config_(ctx.config),
        enabled_(ctx.config.flag("ingest.enabled")),
        limiter_(ctx.config.number("ingest.rate_limit_per_s"),
                 static_cast<double>(ctx.config.integer("ingest.rate_limit_burst"))),
        max_in_flight_(ctx.config.integer("ingest.max_in_flight")),
        max_items_(static_cast<std::size_t>(ctx.config.integer("ingest.max_items"))),
        auth_failures_(ctx.metrics
                           .counter("ingest_auth_failures_total",
                                    "Ingest requests refused for a missing or wrong bearer token.")
                           .with({})),
        rate_limited_(ctx.metrics.counter("ingest_rate_limited_total",
                                          "Ingest requests refused over a client's rate limit.",
                                          {"client"})),
        rejected_(ctx.metrics.counter("ingest_events_rejected_total",
                                      "Ingested items refused as invalid, by reason.", {"reason"})),
        in_flight_(ctx.metrics.gauge("ingest_in_flight", "Events waiting for the brokers' ack.")
                       .with({})) {
    // The role's receivers (OTLP, scrape) publish through the same idempotent acks=all
    // producer, built on first use so a processor without them opens none.
    ctx.inlet.provide(
        [this, &io = ctx.io, &config = ctx.config, &metrics = ctx.metrics]() -> EventInlet& {
          return publisher(io, config, metrics);
        });
    if (!enabled_) return;
    if (ctx.config.str("ingest.auth") == "bearer") {
      if (ctx.config.str("ingest.tokens_file").empty()) {
        throw ConfigError({{ctx.config.source(), 0, 0, "ingest.tokens_file",
                            "is required when ingest.enabled is true and ingest.auth is bearer",
                            "a file of `name token` lines, or ingest.auth: none"}});
      }
      tokens_ =
          http::BearerTokens::load(ctx.config.str("ingest.tokens_file"), "ingest.tokens_file");
    }
    source_prefix_ = events::local_source("ingest") + "/";
    publisher(ctx.io, ctx.config, ctx.metrics);
    ctx.router.add(beast_http::verb::post, "/metadata",
                   [this](const http::RequestContext& rc) { return post_metadata(rc); });
    ctx.router.add(beast_http::verb::post, "/v1/events",
                   [this](const http::RequestContext& rc) { return post_events(rc); });
    if (ctx.config.flag("ingest.ceiling_endpoint")) {
      ctx.router.add(beast_http::verb::post, "/v1/ceiling",
                     [this](const http::RequestContext& rc) { return post_ceiling(rc); });
    }
    log::info("ingest", "ingest API enabled",
              {{"auth", ctx.config.str("ingest.auth")},
               {"clients", static_cast<std::int64_t>(tokens_ ? tokens_->size() : 0)}});
  }

  ~IngestComponent() override {
    if (publisher_) publisher_->shutdown(std::chrono::seconds(2));
  }

  void start() override {}
  void stop() override { stopping_ = true; }

 private:
  IngestPublisher& publisher(asio::io_context& io, const Config& config,
                             metrics::Registry& metrics) {
    if (!publisher_) {
      publisher_ = std::make_unique<IngestPublisher>(
          io, config, metrics, std::chrono::milliseconds(config.integer("ingest.ack_timeout_ms")));
    }
    return *publisher_;
  }

  // Authentication, then the rate limit: a request that is refused costs the client nothing.
  // Returns the response to send instead, or nullopt with `client` set.
  std::optional<Response> admit(const http::Request& request, double cost, std::string& client) {
    if (stopping_) {
      return with_retry_after(
          http::json_error(Status::service_unavailable, "shutting_down", "the server is stopping"),
          1);
    }
    if (tokens_) {
      std::optional<http::TokenClient> token =
          tokens_->authenticate(request[beast_http::field::authorization]);
      if (!token) {
        auth_failures_.Increment();
        return http::bearer_refusal(request);
      }
      client = std::move(token->name);
    } else {
      client = "anonymous";
    }
    int retry_after = 1;
    if (!limiter_.take(client, cost, RateLimiter::Clock::now(), retry_after)) {
      rate_limited_.with({client}).Increment();
      return with_retry_after(
          http::json_error(Status::too_many_requests, "rate_limited",
                           "over the rate limit of " +
                               std::to_string(config_.number("ingest.rate_limit_per_s")) +
                               " events/s for this client; retry after " +
                               std::to_string(retry_after) + " s"),
          retry_after);
    }
    if (publisher_->in_flight() >= max_in_flight_) {
      return with_retry_after(http::json_error(Status::service_unavailable, "overloaded",
                                               "too many events are waiting for Kafka"),
                              1);
    }
    return std::nullopt;
  }

  std::string topic_for(events::EventKind kind) const {
    switch (kind) {
      case events::EventKind::kGpuMetrics:
        return config_.str("ingest.topics.gpu_metrics");
      case events::EventKind::kTokenUsage:
        return config_.str("ingest.topics.token_usage");
      case events::EventKind::kGpuMetadata:
        break;
    }
    return config_.str("ingest.topics.gpu_metadata");
  }

  // The documented partition keys (docs/events.md): GPU UUID, or deployment else model.
  static std::string key_for(const events::DecodedEvent& event) {
    if (event.kind == events::EventKind::kTokenUsage) {
      return event.deployment.empty() ? event.model : event.deployment;
    }
    return event.gpu_uuid;
  }

  Event to_event(const events::DecodedEvent& decoded, std::string payload) const {
    Event event;
    event.topic = topic_for(decoded.kind);
    event.key = key_for(decoded);
    event.id = decoded.id;
    event.payload = std::move(payload);
    event.time = decoded.time;
    return event;
  }

  asio::awaitable<Response> post_ceiling(const http::RequestContext& rc) {
    std::string client;
    if (std::optional<Response> refused = admit(rc.request, 1, client)) co_return *refused;
    co_return http::json_response(Status::accepted, "{\"status\":\"accepted\"}");
  }

  asio::awaitable<Response> post_metadata(const http::RequestContext& rc) {
    std::string client;
    if (std::optional<Response> refused = admit(rc.request, 1, client)) co_return *refused;
    const std::string type = media_type(rc.request);
    if (type != "application/json" && type != "application/cloudevents+json") {
      co_return http::json_error(Status::unsupported_media_type, "unsupported_media_type",
                                 "POST /metadata takes application/json or "
                                 "application/cloudevents+json",
                                 "Content-Type");
    }
    const std::string& body = rc.request.body();
    std::vector<Event> events;
    std::string error_code;
    std::string error_message;
    std::string error_field;
    if (looks_like_cloudevent(body)) {
      events::DecodeResult decoded = events::decode_event(body, parser_);
      if (auto* error = std::get_if<events::DecodeError>(&decoded)) {
        error_code = error->reason;
        error_message = error->detail;
        error_field = field_of(*error);
      } else if (std::get<events::DecodedEvent>(decoded).kind != events::EventKind::kGpuMetadata) {
        error_code = "wrong_type";
        error_message =
            "POST /metadata takes io.telemetryd.gpu.metadata.v1 events; use "
            "POST /v1/events for other types";
        error_field = "type";
      } else {
        events.push_back(to_event(std::get<events::DecodedEvent>(decoded), body));
      }
    } else {
      NormalizeResult normalized = normalize_metadata(body);
      if (auto* error = std::get_if<InputError>(&normalized)) {
        error_code = error->code;
        error_message = error->message;
        error_field = error->field;
      } else {
        const auto& metadata = std::get<NormalizedMetadata>(normalized);
        const std::string_view key = rc.request["Idempotency-Key"];
        std::string id;
        if (!key.empty()) {
          if (std::optional<std::string> bad = check_idempotency_key(key)) {
            co_return http::json_error(Status::bad_request, "invalid_value", *bad,
                                       "Idempotency-Key");
          }
          id = event_id_for_key(client, key);
        } else {
          id = ids_.next(std::chrono::system_clock::now());
        }
        std::string payload =
            events::encode_cloudevent(id, source_prefix_ + client, kGpuMetadataType,
                                      metadata.observed_at, metadata.gpu_uuid, metadata.data_json);
        // What is published must pass the contract, whatever the normaliser let through.
        events::DecodeResult decoded = events::decode_event(payload, parser_);
        if (auto* error = std::get_if<events::DecodeError>(&decoded)) {
          error_code = error->reason;
          error_message = error->detail;
          error_field = field_of(*error);
        } else {
          events.push_back(to_event(std::get<events::DecodedEvent>(decoded), std::move(payload)));
        }
      }
    }
    if (events.empty()) {
      rejected_.with({error_code}).Increment();
      co_return http::json_error(Status::bad_request, error_code, error_message, error_field);
    }
    in_flight_.Increment();
    std::vector<Delivery> deliveries = co_await publisher_->publish(events);
    in_flight_.Decrement();
    const Delivery& delivery = deliveries.front();
    if (!delivery.ok) {
      co_return with_retry_after(
          http::json_error(Status::service_unavailable, "kafka_unavailable",
                           "Kafka did not acknowledge the event (" + delivery.error +
                               "); retry with the same Idempotency-Key"),
          1);
    }
    JsonWriter json;
    json.begin_object()
        .key("id")
        .value(events.front().id)
        .key("status")
        .value("accepted")
        .key("topic")
        .value(events.front().topic)
        .key("partition")
        .value(static_cast<std::int64_t>(delivery.partition))
        .key("offset")
        .value(delivery.offset)
        .end_object();
    co_return http::json_response(Status::accepted, json.take());
  }

  asio::awaitable<Response> post_events(const http::RequestContext& rc) {
    const std::string type = media_type(rc.request);
    const bool ndjson = type == "application/x-ndjson" || type == "application/ndjson";
    const bool array = type == "application/json" || type == "application/cloudevents-batch+json";
    std::vector<std::string> raw_items;
    std::string split_error;
    if (ndjson || array) split_error = split_items(rc.request.body(), ndjson, raw_items);
    std::string client;
    // A batch costs one token per event; one the request refuses anyway (wrong type, bad JSON,
    // too many events) costs one, so it never drains the bucket nor turns a 413 into a 429.
    const bool takeable = (ndjson || array) && split_error.empty() && !raw_items.empty() &&
                          raw_items.size() <= max_items_;
    const double cost = takeable ? static_cast<double>(raw_items.size()) : 1.0;
    if (std::optional<Response> refused = admit(rc.request, cost, client)) co_return *refused;
    if (!ndjson && !array) {
      co_return http::json_error(Status::unsupported_media_type, "unsupported_media_type",
                                 "POST /v1/events takes a JSON array (application/json or "
                                 "application/cloudevents-batch+json) or NDJSON "
                                 "(application/x-ndjson)",
                                 "Content-Type");
    }
    if (!split_error.empty()) {
      co_return http::json_error(Status::bad_request, "invalid_json", split_error);
    }
    if (raw_items.empty()) {
      co_return http::json_error(Status::bad_request, "no_events", "the body holds no event");
    }
    if (raw_items.size() > max_items_) {
      co_return http::json_error(
          Status::payload_too_large, "too_many_events",
          "at most " + std::to_string(max_items_) + " events per request (ingest.max_items)");
    }
    std::vector<Item> items(raw_items.size());
    std::vector<Event> events;
    for (std::size_t i = 0; i < raw_items.size(); ++i) {
      items[i].index = i;
      events::DecodeResult decoded = events::decode_event(raw_items[i], parser_);
      if (auto* error = std::get_if<events::DecodeError>(&decoded)) {
        items[i].status = 400;
        items[i].code = error->reason;
        items[i].message = error->detail;
        items[i].field = field_of(*error);
        rejected_.with({error->reason}).Increment();
        continue;
      }
      const auto& event = std::get<events::DecodedEvent>(decoded);
      items[i].id = event.id;
      items[i].event = events.size();
      events.push_back(to_event(event, std::move(raw_items[i])));
    }
    std::vector<Delivery> deliveries;
    if (!events.empty()) {
      in_flight_.Increment(static_cast<double>(events.size()));
      deliveries = co_await publisher_->publish(events);
      in_flight_.Decrement(static_cast<double>(events.size()));
    }
    std::size_t accepted = 0;
    std::size_t invalid = 0;
    std::size_t failed = 0;
    JsonWriter json;
    json.begin_object().key("items").begin_array();
    for (Item& item : items) {
      if (item.event) {
        const Delivery& delivery = deliveries[*item.event];
        item.status = delivery.ok ? 202 : 503;
        if (!delivery.ok) {
          item.code = "kafka_unavailable";
          item.message = "Kafka did not acknowledge the event (" + delivery.error + ")";
        }
      }
      (item.status == 202 ? accepted : item.status == 400 ? invalid : failed)++;
      json.begin_object().key("index").value(static_cast<std::int64_t>(item.index));
      if (!item.id.empty()) json.key("id").value(item.id);
      json.key("status").value(static_cast<std::int64_t>(item.status));
      if (item.status != 202) write_error(json, item.code, item.message, item.field);
      json.end_object();
    }
    json.end_array()
        .key("accepted")
        .value(static_cast<std::int64_t>(accepted))
        .key("invalid")
        .value(static_cast<std::int64_t>(invalid))
        .key("failed")
        .value(static_cast<std::int64_t>(failed))
        .end_object();
    // All the same: that status; a mix: 207, each item telling its own.
    Status status = Status::multi_status;
    if (accepted == items.size()) status = Status::accepted;
    if (invalid == items.size()) status = Status::bad_request;
    if (failed == items.size()) status = Status::service_unavailable;
    Response res = http::json_response(status, json.take());
    if (failed > 0) res.set(beast_http::field::retry_after, "1");
    co_return res;
  }

  bool looks_like_cloudevent(const std::string& body) {
    simdjson::dom::element root;
    if (parser_.parse(body).get(root) != simdjson::SUCCESS) return false;
    simdjson::dom::object object;
    if (root.get(object) != simdjson::SUCCESS) return false;
    simdjson::dom::element ignored;
    return object.at_key("specversion").get(ignored) == simdjson::SUCCESS;
  }

  // Each item keeps its own bytes (minified for arrays) so it is published as it was validated.
  std::string split_items(const std::string& body, bool ndjson, std::vector<std::string>& out) {
    if (ndjson) {
      std::size_t start = 0;
      while (start < body.size()) {
        std::size_t end = body.find('\n', start);
        if (end == std::string::npos) end = body.size();
        std::string_view line(body.data() + start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") != std::string_view::npos) out.emplace_back(line);
        start = end + 1;
      }
      return {};
    }
    simdjson::dom::element root;
    if (parser_.parse(body).get(root) != simdjson::SUCCESS) return "the body is not valid JSON";
    simdjson::dom::array list;
    if (root.get(list) != simdjson::SUCCESS) return "the body must be a JSON array of CloudEvents";
    for (simdjson::dom::element item : list) out.push_back(simdjson::minify(item));
    return {};
  }

  const Config& config_;
  bool enabled_;
  bool stopping_ = false;
  std::optional<http::BearerTokens> tokens_;
  RateLimiter limiter_;
  std::int64_t max_in_flight_;
  std::size_t max_items_;
  std::string source_prefix_;
  events::UuidV7Generator ids_;
  simdjson::dom::parser parser_;
  metrics::Counter& auth_failures_;
  metrics::Family<metrics::Counter>& rate_limited_;
  metrics::Family<metrics::Counter>& rejected_;
  metrics::Gauge& in_flight_;
  std::unique_ptr<IngestPublisher> publisher_;
};

std::optional<std::string> check_topic(std::string_view text) {
  if (text.empty()) return "a topic name must not be empty";
  return std::nullopt;
}

const ComponentRegistration kRegistration{
    {"ingest",
     {"ingest",
      "HTTP ingest API in front of Kafka: POST /metadata and POST /v1/events (docs/ingest.md).",
      {
          {.name = "enabled",
           .type = ValueType::kBool,
           .description = "Serve the ingest endpoints on the HTTP listener.",
           .default_value = "false"},
          {.name = "auth",
           .description = "bearer: every request needs a token from tokens_file; none: open "
                          "(only behind a trusted proxy or with http.tls_client_ca_file).",
           .default_value = "bearer",
           .allowed = {"bearer", "none"}},
          {.name = "tokens_file",
           .description = "File of `name token` lines (tokens >= 16 characters); read at start.",
           .default_value = ""},
          {.name = "topics.gpu_metadata",
           .description = "Topic of gpu.metadata.v1 events.",
           .default_value = "gpu-metadata",
           .check = check_topic},
          {.name = "topics.gpu_metrics",
           .description = "Topic of gpu.metrics.v1 events.",
           .default_value = "gpu.metrics.v1",
           .check = check_topic},
          {.name = "topics.token_usage",
           .description = "Topic of token.usage.v1 events.",
           .default_value = "token.usage.v1",
           .check = check_topic},
          {.name = "ack_timeout_ms",
           .type = ValueType::kInt,
           .description = "Longest wait for the brokers' acknowledgement before answering 503.",
           .default_value = "10000",
           .min = 100,
           .max = 300000},
          {.name = "max_in_flight",
           .type = ValueType::kInt,
           .description = "Events waiting for acknowledgement at once; more get 503.",
           .default_value = "10000",
           .min = 1,
           .max = 1000000},
          {.name = "max_items",
           .type = ValueType::kInt,
           .description = "Most events in one POST /v1/events; more get 413.",
           .default_value = "1000",
           .min = 1,
           .max = 100000},
          {.name = "rate_limit_per_s",
           .type = ValueType::kDouble,
           .description = "Events per second each client (token) may send; 0 turns the limit "
                          "off.",
           .default_value = "1000",
           .min = 0,
           .max = 10000000},
          {.name = "rate_limit_burst",
           .type = ValueType::kInt,
           .description = "Events a client may send at once above its rate.",
           .default_value = "2000",
           .min = 1,
           .max = 10000000},
          {.name = "ceiling_endpoint",
           .type = ValueType::kBool,
           .description = "Also serve POST /v1/ceiling: authentication and rate limit, then 202 "
                          "without Kafka (the HTTP ceiling for bench/ingest).",
           .default_value = "false"},
      }},
     [](ComponentContext& ctx) { return std::make_unique<IngestComponent>(ctx); }}};

}  // namespace
}  // namespace telemetryd::ingest
