// The `otlp` component: an OTLP/HTTP receiver (POST /v1/traces, POST /v1/metrics) for the
// GenAI telemetry that model servers, gateways and SDKs already emit (docs/otlp.md). Spans with
// token usage become token.usage.v1 events handed to the role's inlet (Kafka with acks=all, or
// the embedded queue) before the 200; gen_ai.client.token.usage points feed counters on
// /metrics. The answers follow the OTLP/HTTP contract, so exporters retry exactly what is
// worth retrying: 400 (never retried) for bad data, 413 over the size limit, 429/503 with
// Retry-After when the pipeline cannot take more, 200 with partial_success for a partial accept.

// GCC 12 reports -Wmismatched-new-delete inside asio's awaitable frames of coroutines with several
// co_return paths (GCC bug 109224; see ingest_component.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <simdjson.h>
#include <boost/asio/io_context.hpp>

#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>

#include "archive/gzip.hpp"
#include "events/cloudevent.hpp"
#include "http/bearer_tokens.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "otlp/genai_mapping.hpp"
#include "otlp/genai_metrics.hpp"
#include "otlp/otlp_decode.hpp"
#include "otlp/otlp_response.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::otlp {
namespace {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using http::Response;
using Status = beast_http::status;

// google.rpc.Code values used in Status bodies.
constexpr int kInvalidArgument = 3;
constexpr int kResourceExhausted = 8;
constexpr int kUnauthenticated = 16;
constexpr int kUnavailable = 14;

enum class Encoding { kProtobuf, kJson };
enum class Signal { kTraces, kMetrics };

using http::media_type;

Response answer(Status status, Encoding encoding, std::string body) {
  Response res{status, 11};
  res.set(beast_http::field::content_type,
          encoding == Encoding::kJson ? "application/json" : "application/x-protobuf");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response status_answer(Status status, Encoding encoding, int code, std::string_view message) {
  return answer(status, encoding,
                encoding == Encoding::kJson ? encode_status_json(code, message)
                                            : encode_status_protobuf(code, message));
}

Response retry_later(Status status, Encoding encoding, std::string_view message, int seconds) {
  Response res = status_answer(status, encoding, kUnavailable, message);
  res.set(beast_http::field::retry_after, std::to_string(seconds));
  return res;
}

MappingSettings mapping_settings(const Config& config, std::string topic) {
  MappingSettings settings;
  settings.tenant_keys = config.list("otlp.tenant_attributes");
  settings.default_tenant = config.str("otlp.default_tenant");
  settings.deployment_keys = config.list("otlp.deployment_attributes");
  settings.host_keys = config.list("otlp.host_attributes");
  settings.max_tokens = config.integer("otlp.max_tokens_per_span");
  settings.source = events::local_source("otlp");
  settings.topic = std::move(topic);
  return settings;
}

class OtlpComponent final : public Component {
 public:
  explicit OtlpComponent(ComponentContext& ctx)
      : inlet_(ctx.inlet.get()),
        mapper_(mapping_settings(ctx.config, inlet_.token_usage_topic())),
        token_metrics_(ctx.metrics,
                       static_cast<std::size_t>(ctx.config.integer("otlp.max_metric_series"))),
        body_limit_(static_cast<std::size_t>(ctx.config.integer("otlp.body_limit_bytes"))),
        max_in_flight_(ctx.config.integer("otlp.max_in_flight")),
        requests_(ctx.metrics.counter("otlp_requests_total",
                                      "OTLP/HTTP export requests, by signal and HTTP status.",
                                      {"signal", "status"})),
        spans_(ctx.metrics.counter(
            "otlp_spans_total",
            "Spans received, by outcome: usage (became a token.usage.v1 event), "
            "without_usage (ignored), rejected (bad usage values).",
            {"outcome"})),
        points_(ctx.metrics.counter("otlp_metric_points_total",
                                    "Metric data points received, by outcome: counted "
                                    "(gen_ai.client.token.usage), rejected, untracked (a "
                                    "cumulative series past otlp.max_metric_series), other "
                                    "(ignored).",
                                    {"outcome"})) {
    if (ctx.config.str("otlp.auth") == "bearer") {
      tokens_ = http::BearerTokens::load(ctx.config.str("otlp.tokens_file"), "otlp.tokens_file");
    }
    http::Router& router = ctx.config.str("otlp.listen").empty() ? ctx.router : own_router_;
    router.add(beast_http::verb::post, "/v1/traces",
               [this](const http::RequestContext& rc) { return handle(rc, Signal::kTraces); });
    router.add(beast_http::verb::post, "/v1/metrics",
               [this](const http::RequestContext& rc) { return handle(rc, Signal::kMetrics); });
    if (!ctx.config.str("otlp.listen").empty()) {
      http::ServerOptions options;
      options.name = "otlp";
      options.listen_key = "otlp.listen";
      options.listen = ctx.config.str("otlp.listen");
      options.read_timeout = std::chrono::milliseconds(ctx.config.integer("http.read_timeout_ms"));
      options.write_timeout =
          std::chrono::milliseconds(ctx.config.integer("http.write_timeout_ms"));
      options.body_limit = body_limit_;
      options.max_connections =
          static_cast<std::size_t>(ctx.config.integer("http.max_connections"));
      if (!ctx.config.str("http.tls_cert_file").empty()) {
        options.tls = http::TlsOptions{.cert_file = ctx.config.str("http.tls_cert_file"),
                                       .key_file = ctx.config.str("http.tls_key_file"),
                                       .client_ca_file = ctx.config.str("http.tls_client_ca_file")};
      }
      server_.emplace(ctx.io, std::move(options), own_router_, ctx.metrics);
    }
    const std::string& listen = ctx.config.str("otlp.listen").empty()
                                    ? ctx.config.str("http.listen")
                                    : ctx.config.str("otlp.listen");
    if (!tokens_ && !http::is_loopback_listen(listen)) {
      log::warn("otlp", "the OTLP receiver takes usage without a token on a non-loopback address",
                {{"listen", listen}, {"hint", "otlp.auth: bearer with otlp.tokens_file"}});
    }
    log::info("otlp", "OTLP/HTTP receiver enabled",
              {{"listen", listen}, {"auth", ctx.config.str("otlp.auth")}});
  }

  void start() override {
    if (server_) server_->start();
  }
  void stop() override {
    stopping_ = true;
    if (server_) server_->stop();
  }

 private:
  asio::awaitable<Response> handle(const http::RequestContext& rc, Signal signal) {
    Response res = co_await respond(rc, signal);
    requests_
        .with({signal == Signal::kTraces ? "traces" : "metrics", std::to_string(res.result_int())})
        .Increment();
    co_return res;
  }

  asio::awaitable<Response> respond(const http::RequestContext& rc, Signal signal) {
    const std::string type = media_type(rc.request);
    const Encoding encoding = type == "application/json" ? Encoding::kJson : Encoding::kProtobuf;
    if (stopping_) {
      co_return retry_later(Status::service_unavailable, encoding, "the server is stopping", 1);
    }
    if (tokens_ && !tokens_->authenticate(rc.request[beast_http::field::authorization])) {
      Response res = status_answer(Status::unauthorized, encoding, kUnauthenticated,
                                   "an Authorization: Bearer <token> header with a valid token "
                                   "is required");
      res.set(beast_http::field::www_authenticate, "Bearer realm=\"telemetryd\"");
      co_return res;
    }
    if (type != "application/json" && type != "application/x-protobuf") {
      co_return status_answer(Status::unsupported_media_type, encoding, kInvalidArgument,
                              "Content-Type must be application/x-protobuf or application/json");
    }
    std::string inflated;
    std::string_view body = rc.request.body();
    const std::string_view content_encoding = rc.request[beast_http::field::content_encoding];
    if (content_encoding == "gzip") {
      bool too_large = false;
      Result<std::string> result = archive::gzip_decompress(body, body_limit_, &too_large);
      if (!result) {
        if (too_large) {
          co_return status_answer(Status::payload_too_large, encoding, kResourceExhausted,
                                  "the body inflates past otlp.body_limit_bytes (" +
                                      std::to_string(body_limit_) + " bytes)");
        }
        co_return status_answer(Status::bad_request, encoding, kInvalidArgument,
                                "Content-Encoding gzip: " + result.error().message);
      }
      inflated = std::move(result.value());
      body = inflated;
    } else if (!content_encoding.empty() && content_encoding != "identity") {
      co_return status_answer(Status::unsupported_media_type, encoding, kInvalidArgument,
                              "Content-Encoding must be gzip or identity");
    }
    if (signal == Signal::kMetrics) co_return receive_metrics(body, encoding);
    // Refused before decoding when the pipeline is already full: a 503 should cost little.
    if (inlet_.in_flight() >= std::min(max_in_flight_, inlet_.capacity())) {
      co_return busy(encoding, "the pipeline is full");
    }

    Result<TracesRequest> decoded = encoding == Encoding::kJson ? decode_traces_json(body, parser_)
                                                                : decode_traces_protobuf(body);
    if (!decoded) {
      co_return status_answer(Status::bad_request, encoding, kInvalidArgument,
                              "the export request cannot be decoded: " + decoded.error().message);
    }
    TracesMapping mapped = mapper_.map(decoded.value());
    // A batch larger than the limit still passes when nothing else waits, or it never would.
    if (!mapped.events.empty() && inlet_.in_flight() > 0 &&
        inlet_.in_flight() + static_cast<std::int64_t>(mapped.events.size()) > max_in_flight_) {
      co_return busy(encoding, "too many events are waiting for the pipeline");
    }
    if (!mapped.events.empty()) {
      const std::vector<Event> events = std::move(mapped.events);
      std::vector<Delivery> deliveries = co_await inlet_.publish(events);
      for (const Delivery& delivery : deliveries) {
        if (delivery.ok) continue;
        // Some may have been taken: the retry's duplicates carry the same ids, stored once.
        co_return busy(encoding, "the pipeline did not take the events (" + delivery.error +
                                     "); retry the export");
      }
      spans_.with({"usage"}).Increment(static_cast<double>(events.size()));
    }
    spans_.with({"without_usage"}).Increment(static_cast<double>(mapped.without_usage));
    if (mapped.rejected > 0) {
      spans_.with({"rejected"}).Increment(static_cast<double>(mapped.rejected));
      log::warn("otlp", "spans rejected",
                {{"rejected", static_cast<std::int64_t>(mapped.rejected)},
                 {"reason", mapped.rejection_message}});
    }
    const auto rejected = static_cast<std::int64_t>(mapped.rejected);
    co_return answer(
        Status::ok, encoding,
        encoding == Encoding::kJson
            ? encode_export_response_json(rejected, mapped.rejection_message, true)
            : encode_export_response_protobuf(rejected, mapped.rejection_message, true));
  }

  // 503 with Retry-After; logged at most every 10 s with the count since, so that a full
  // pipeline under load does not flood the log with one line per export.
  Response busy(Encoding encoding, const std::string& why) {
    ++busy_since_log_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_busy_log_ >= std::chrono::seconds(10)) {
      log::warn("otlp", "exports refused for now (503, Retry-After)",
                {{"reason", why}, {"refused", busy_since_log_}});
      last_busy_log_ = now;
      busy_since_log_ = 0;
    }
    return retry_later(Status::service_unavailable, encoding, why, 1);
  }

  Response receive_metrics(std::string_view body, Encoding encoding) {
    Result<MetricsRequest> decoded = encoding == Encoding::kJson
                                         ? decode_metrics_json(body, parser_)
                                         : decode_metrics_protobuf(body);
    if (!decoded) {
      return status_answer(Status::bad_request, encoding, kInvalidArgument,
                           "the export request cannot be decoded: " + decoded.error().message);
    }
    const MetricsOutcome outcome = token_metrics_.observe(decoded.value());
    points_.with({"counted"}).Increment(static_cast<double>(outcome.counted));
    points_.with({"rejected"}).Increment(static_cast<double>(outcome.rejected));
    points_.with({"untracked"}).Increment(static_cast<double>(outcome.untracked));
    const std::size_t seen = outcome.counted + outcome.rejected + outcome.untracked;
    points_.with({"other"}).Increment(
        static_cast<double>(outcome.points - std::min(outcome.points, seen)));
    const auto rejected = static_cast<std::int64_t>(outcome.rejected);
    return answer(
        Status::ok, encoding,
        encoding == Encoding::kJson
            ? encode_export_response_json(rejected, outcome.rejection_message, false)
            : encode_export_response_protobuf(rejected, outcome.rejection_message, false));
  }

  EventInlet& inlet_;
  GenAiMapper mapper_;
  TokenUsageMetrics token_metrics_;
  std::size_t body_limit_;
  std::int64_t max_in_flight_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& spans_;
  metrics::Family<metrics::Counter>& points_;
  std::optional<http::BearerTokens> tokens_;
  // Decoding and mapping run on the io thread before any co_await: one parser serves all.
  simdjson::dom::parser parser_;
  http::Router own_router_;
  std::optional<http::Server> server_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point last_busy_log_{};
  std::int64_t busy_since_log_ = 0;
};

std::vector<ConfigProblem> check_otlp(const Config& config) {
  if (!config.flag("otlp.enabled") || config.str("otlp.auth") != "bearer" ||
      !config.str("otlp.tokens_file").empty()) {
    return {};
  }
  return {{.file = config.source(),
           .path = "otlp.tokens_file",
           .message = "is required when otlp.enabled is true and otlp.auth is bearer",
           .hint = "a file of `name token` lines (the ingest API's format), or otlp.auth: none "
                   "on a loopback listener"}};
}

const ComponentRegistration kRegistration{
    {"otlp",
     {"otlp",
      "OTLP/HTTP receiver for GenAI spans and metrics: POST /v1/traces and /v1/metrics, "
      "protobuf or JSON, optional gzip (docs/otlp.md).",
      {
          {.name = "enabled",
           .type = ValueType::kBool,
           .description = "Run the receiver.",
           .default_value = "false"},
          {.name = "listen",
           .description = "Its own listener (host:port; TLS when http.tls_cert_file is set); "
                          "empty serves the routes on http.listen.",
           .default_value = "0.0.0.0:4318",
           .check = [](std::string_view text) -> std::optional<std::string> {
             if (text.empty()) return std::nullopt;
             return check_host_port(text);
           }},
          {.name = "auth",
           .description = "bearer: every export needs a token from tokens_file; none: open "
                          "(a loopback listener, or behind a trusted proxy).",
           .default_value = "bearer",
           .allowed = {"bearer", "none"}},
          {.name = "tokens_file",
           .description = "File of `name token` lines (tokens >= 16 characters), the ingest "
                          "API's format; read at start.",
           .default_value = ""},
          {.name = "body_limit_bytes",
           .type = ValueType::kInt,
           .description = "Largest body after gzip decompression; larger gets 413.",
           .default_value = "20971520",
           .min = 1024,
           .max = 1073741824},
          {.name = "max_in_flight",
           .type = ValueType::kInt,
           .description = "Events waiting for the pipeline's acknowledgement at once; an export "
                          "that would pass it gets 503 with Retry-After.",
           .default_value = "20000",
           .min = 1,
           .max = 10000000},
          {.name = "max_tokens_per_span",
           .type = ValueType::kInt,
           .description = "A span with more tokens in one bucket is refused as absurd "
                          "(partial_success).",
           .default_value = "10000000",
           .min = 1,
           .max = 1000000000000},
          {.name = "tenant_attributes",
           .type = ValueType::kStringList,
           .description = "Span or resource attributes naming the tenant, first present wins.",
           .default_value = "tenant.id,user.id"},
          {.name = "default_tenant",
           .description = "tenant_id of a span that names none.",
           .default_value = "unattributed"},
          {.name = "deployment_attributes",
           .type = ValueType::kStringList,
           .description = "Attributes naming the deployment, first present wins.",
           .default_value = "k8s.deployment.name,service.name"},
          {.name = "host_attributes",
           .type = ValueType::kStringList,
           .description = "Attributes naming the host whose GPUs served the request.",
           .default_value = "k8s.node.name,host.name"},
          {.name = "max_metric_series",
           .type = ValueType::kInt,
           .description = "gen_ai.client.token.usage series (and models) tracked at most.",
           .default_value = "10000",
           .min = 1,
           .max = 1000000},
      }},
     [](ComponentContext& ctx) -> std::unique_ptr<Component> {
       if (!ctx.config.flag("otlp.enabled")) return std::make_unique<DisabledComponent>();
       return std::make_unique<OtlpComponent>(ctx);
     },
     nullptr,
     check_otlp}};

}  // namespace
}  // namespace telemetryd::otlp
