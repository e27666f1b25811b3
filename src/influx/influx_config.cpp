#include "influx/influx_config.hpp"

#include "telemetryd/errors.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd::influx {

namespace {

std::optional<std::string> check_url(std::string_view text) {
  std::string error;
  if (!parse_url(text, error)) return "invalid InfluxDB URL: " + error;
  return std::nullopt;
}

}  // namespace

std::vector<KeySpec> influx_keys() {
  return {
      {.name = "url",
       .description = "Base URL of the InfluxDB HTTP API; required when processor.sinks "
                      "includes influxdb.",
       .check = check_url,
       .hint = "http://127.0.0.1:8086 or https://host:8086"},
      {.name = "api",
       .description = "v1: POST /write?db= (InfluxDB 1.x); v2: POST /api/v2/write?org=&bucket= "
                      "with a token (InfluxDB 2.x, 3.x, and 1.8+ compatibility).",
       .default_value = "v1",
       .allowed = {"v1", "v2"}},
      {.name = "database",
       .description = "v1: database to write to; created at start-up when the user may.",
       .default_value = "telemetry"},
      {.name = "retention_policy",
       .description = "v1: retention policy to write to; empty for the database's default.",
       .default_value = ""},
      {.name = "username",
       .description = "v1: user for HTTP Basic authentication; empty for none.",
       .default_value = ""},
      {.name = "password",
       .description = "v1: password; prefer password_file or ${ENV}.",
       .default_value = "",
       .secret = true},
      {.name = "password_file",
       .description = "v1: file holding the password (its first line).",
       .default_value = ""},
      {.name = "org", .description = "v2: organization.", .default_value = ""},
      {.name = "bucket",
       .description = "v2: bucket (on InfluxDB 1.8: database or database/retention_policy).",
       .default_value = ""},
      {.name = "token",
       .description = "v2: API token, sent as 'Authorization: Token ...'; prefer token_file or "
                      "${ENV}. Never logged.",
       .default_value = "",
       .secret = true},
      {.name = "token_file",
       .description = "v2: file holding the API token (its first line).",
       .default_value = ""},
      {.name = "precision",
       .description = "Timestamp precision. ns: the event's millisecond plus a sub-millisecond "
                      "offset from the event id, so distinct events of one series never share "
                      "a timestamp by accident. ms: smaller, but two events of one series in "
                      "the same millisecond overwrite each other.",
       .default_value = "ns",
       .allowed = {"ns", "ms"}},
      {.name = "gzip",
       .type = ValueType::kBool,
       .description = "Compress write bodies (Content-Encoding: gzip).",
       .default_value = "false"},
      {.name = "timeout_ms",
       .type = ValueType::kInt,
       .description = "Timeout of each step of a request: resolve, connect, TLS handshake, send, "
                      "receive.",
       .default_value = "5000",
       .min = 100,
       .max = 120000},
      {.name = "ca_file",
       .description = "https: CA bundle to verify the server with; empty for the system store.",
       .default_value = ""},
      {.name = "batch_size",
       .type = ValueType::kInt,
       .description = "Most points per write request (a processor batch is split into requests "
                      "of this size; InfluxDB advises 5000).",
       .default_value = "5000",
       .min = 1,
       .max = 100000},
      {.name = "check_interval_ms",
       .type = ValueType::kInt,
       .description = "How often /ready re-checks the server (GET /ping).",
       .default_value = "5000",
       .min = 100,
       .max = 300000},
  };
}

std::vector<ConfigProblem> check_influx_config(const Config& config) {
  std::vector<ConfigProblem> problems;
  const std::string chosen_by = SinkRegistry::chosen_by(config);
  const std::string why = "required when " + chosen_by + " writes to InfluxDB";
  auto problem = [&](std::string path, std::string message, std::string hint = {},
                     std::string because_of = {}) {
    if (because_of.empty()) because_of = chosen_by;
    problems.push_back({config.source(), 0, 0, std::move(path), std::move(message), std::move(hint),
                        std::move(because_of)});
  };
  auto empty = [&](const char* path) { return !config.has(path) || config.str(path).empty(); };
  if (empty("influxdb.url")) {
    problem("influxdb.url", "missing: " + why, "http://127.0.0.1:8086");
  }
  if (config.str("influxdb.api") == "v2") {
    if (empty("influxdb.org")) {
      problem("influxdb.org", "missing: required with api: v2", {}, "influxdb.api");
    }
    if (empty("influxdb.bucket")) {
      problem("influxdb.bucket", "missing: required with api: v2", {}, "influxdb.api");
    }
    if (empty("influxdb.token") && empty("influxdb.token_file")) {
      problem("influxdb.token", "missing: api v2 needs token or token_file",
              "token_file: /etc/telemetryd/influx.token", "influxdb.api");
    }
  } else if (empty("influxdb.database")) {
    problem("influxdb.database", "missing: required with api: v1");
  }
  if (!empty("influxdb.token") && !empty("influxdb.token_file")) {
    problem("influxdb.token_file", "token and token_file are both set", "keep one");
  }
  if (!empty("influxdb.password") && !empty("influxdb.password_file")) {
    problem("influxdb.password_file", "password and password_file are both set", "keep one");
  }
  return problems;
}

StoreSettings store_settings_from(const Config& config) {
  StoreSettings s;
  WriterSettings& w = s.writer;
  w.url = config.has("influxdb.url") ? config.str("influxdb.url") : std::string();
  w.api = config.str("influxdb.api") == "v2" ? Api::kV2 : Api::kV1;
  w.database = config.str("influxdb.database");
  w.retention_policy = config.str("influxdb.retention_policy");
  w.username = config.str("influxdb.username");
  // The project's one secret reader: the first line of <key>_file, else the key's value.
  w.password = read_secret(config, "influxdb.password");
  w.org = config.str("influxdb.org");
  w.bucket = config.str("influxdb.bucket");
  w.token = read_secret(config, "influxdb.token");
  w.precision =
      config.str("influxdb.precision") == "ms" ? Precision::kMilliseconds : Precision::kNanoseconds;
  w.gzip = config.flag("influxdb.gzip");
  w.timeout = std::chrono::milliseconds(config.integer("influxdb.timeout_ms"));
  w.ca_file = config.str("influxdb.ca_file");
  s.batch_size = static_cast<std::size_t>(config.integer("influxdb.batch_size"));
  return s;
}

}  // namespace telemetryd::influx
