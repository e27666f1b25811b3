#include "kafka/client_properties.hpp"

#include <algorithm>
#include <array>

namespace telemetryd::kafka {
namespace {

bool uses_tls(const std::string& protocol) {
  return protocol == "ssl" || protocol == "sasl_ssl";
}
bool uses_sasl(const std::string& protocol) {
  return protocol == "sasl_plaintext" || protocol == "sasl_ssl";
}

// librdkafka properties that hold secrets: they must come from the secret keys (never echoed,
// readable from files), not from extra_properties.
constexpr std::array<std::string_view, 5> kSecretProperties{"sasl.password", "ssl.key.password",
                                                            "ssl.keystore.password", "ssl.key.pem",
                                                            "sasl.oauthbearer.client.secret"};

std::optional<std::string> check_extra_property(std::string_view item) {
  const auto eq = item.find('=');
  if (eq == std::string_view::npos || eq == 0) return "expected key=value";
  const std::string_view name = item.substr(0, eq);
  if (std::find(kSecretProperties.begin(), kSecretProperties.end(), name) !=
      kSecretProperties.end()) {
    return "'" + std::string(name) +
           "' holds a secret; set it with kafka.sasl_password_file or kafka.sasl_password, not "
           "extra_properties";
  }
  return std::nullopt;
}
// Applied last, so an operator can override any choice here for a setup we did not foresee.
void apply_extra_properties(const Config& config, Properties& p) {
  for (const auto& item : config.list("kafka.extra_properties")) {
    const auto eq = item.find('=');
    p[item.substr(0, eq)] = item.substr(eq + 1);
  }
}
}  // namespace

Properties client_properties(const Config& config) {
  Properties p{{"bootstrap.servers", config.str("kafka.brokers")},
               {"client.id", config.str("kafka.client_id")},
               {"security.protocol", config.str("kafka.security_protocol")}};
  const auto set_if = [&](const char* property, const char* key) {
    if (!config.str(key).empty()) p[property] = config.str(key);
  };
  set_if("ssl.ca.location", "kafka.ssl_ca_file");
  set_if("ssl.certificate.location", "kafka.ssl_certificate_file");
  set_if("ssl.key.location", "kafka.ssl_key_file");
  const std::string& protocol = config.str("kafka.security_protocol");
  if (uses_tls(protocol)) {
    // Check the broker's name against its certificate (librdkafka 2.0's default, made explicit).
    p["ssl.endpoint.identification.algorithm"] = "https";
  }
  if (uses_sasl(protocol)) {
    p["sasl.mechanism"] = config.str("kafka.sasl_mechanism");
    p["sasl.username"] = config.str("kafka.sasl_username");
    p["sasl.password"] = read_secret(config, "kafka.sasl_password");
  }
  apply_extra_properties(config, p);
  return p;
}

Properties producer_properties(const Config& config) {
  Properties p = client_properties(config);
  p["acks"] = config.str("kafka.producer.acks");
  p["enable.idempotence"] = config.flag("kafka.producer.enable_idempotence") ? "true" : "false";
  p["compression.type"] = config.str("kafka.producer.compression");
  p["linger.ms"] = std::to_string(config.integer("kafka.producer.linger_ms"));
  p["batch.size"] = std::to_string(config.integer("kafka.producer.batch_size_bytes"));
  p["batch.num.messages"] = std::to_string(config.integer("kafka.producer.batch_num_messages"));
  p["queue.buffering.max.kbytes"] =
      std::to_string(config.integer("kafka.producer.queue_max_kbytes"));
  p["queue.buffering.max.messages"] =
      std::to_string(config.integer("kafka.producer.queue_max_messages"));
  p["message.timeout.ms"] = std::to_string(config.integer("kafka.producer.message_timeout_ms"));
  p["socket.nagle.disable"] = "true";
  apply_extra_properties(config, p);
  return p;
}

std::vector<KeySpec> kafka_client_keys() {
  return {
      {.name = "security_protocol",
       .description = "plaintext, ssl, sasl_plaintext or sasl_ssl.",
       .default_value = "plaintext",
       .allowed = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"}},
      {.name = "ssl_ca_file",
       .description = "CA bundle (PEM) to verify the brokers with ssl or sasl_ssl; empty uses "
                      "the system's CA store. The file must be readable when the role file loads.",
       .default_value = "",
       .check = check_pem_certificate_file,
       .hint = "a PEM file with the CA certificate(s)"},
      {.name = "ssl_certificate_file",
       .description = "Client certificate (PEM) for brokers that require one (mTLS); needs "
                      "ssl_key_file.",
       .default_value = "",
       .check = check_pem_certificate_file,
       .hint = "a PEM file with the client certificate (and its chain)"},
      {.name = "ssl_key_file",
       .description = "Unencrypted private key (PEM) of ssl_certificate_file; keep it 0600.",
       .default_value = "",
       .check = check_pem_key_file,
       .hint = "a PEM file with the unencrypted private key"},
      {.name = "sasl_mechanism",
       .description = "SASL mechanism when security_protocol is sasl_*.",
       .default_value = "SCRAM-SHA-512",
       .allowed = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}},
      {.name = "sasl_username",
       .description = "SASL user name; required with sasl_plaintext and sasl_ssl.",
       .default_value = ""},
      {.name = "sasl_password",
       .description = "SASL password; prefer sasl_password_file or ${ENV}. Never logged.",
       .default_value = "",
       .secret = true},
      {.name = "sasl_password_file",
       .description = "File whose first line is the SASL password (instead of sasl_password); "
                      "read at start, e.g. from $CREDENTIALS_DIRECTORY.",
       .default_value = "",
       .check = check_readable_file},
      {.name = "extra_properties",
       .type = ValueType::kStringList,
       .description = "More librdkafka properties as key=value; they override the settings above. "
                      "Properties holding secrets are refused: use the keys above.",
       .default_value = "",
       .check = check_extra_property,
       .hint = "key=value, e.g. debug=security,broker",
       // Not echoed in errors: a mistyped item may still be a password.
       .secret = true},
      {.name = "producer.acks",
       .description = "Broker acknowledgement: all waits for every in-sync replica.",
       .default_value = "all",
       .allowed = {"all", "1"}},
      {.name = "producer.enable_idempotence",
       .type = ValueType::kBool,
       .description = "Idempotent producer: retries never duplicate or reorder.",
       .default_value = "true"},
      {.name = "producer.compression",
       .description = "Batch compression codec.",
       .default_value = "lz4",
       .allowed = {"none", "gzip", "snappy", "lz4", "zstd"}},
      {.name = "producer.linger_ms",
       .type = ValueType::kInt,
       .description = "Time a batch may wait to fill; trades latency for throughput.",
       .default_value = "10",
       .min = 0,
       .max = 5000},
      {.name = "producer.batch_size_bytes",
       .type = ValueType::kInt,
       .description = "Largest batch per partition request.",
       .default_value = "1000000",
       .min = 1024,
       .max = 2147483647},
      {.name = "producer.batch_num_messages",
       .type = ValueType::kInt,
       .description = "Most messages per batch.",
       .default_value = "10000",
       .min = 1,
       .max = 1000000},
      {.name = "producer.queue_max_kbytes",
       .type = ValueType::kInt,
       .description = "Local queue bound in KiB; a full queue pauses the source (never drops). "
                      "librdkafka's default is 1 GiB.",
       .default_value = "65536",
       .min = 1024,
       .max = 2097151},
      {.name = "producer.queue_max_messages",
       .type = ValueType::kInt,
       .description = "Local queue bound in messages.",
       .default_value = "100000",
       .min = 1000,
       .max = 10000000},
      {.name = "producer.message_timeout_ms",
       .type = ValueType::kInt,
       .description = "How long a message may wait for delivery; 0 retries until delivered, so "
                      "a broker outage pauses the producer instead of losing events.",
       .default_value = "0",
       .min = 0,
       .max = 2147483647},
  };
}

void check_kafka_client_keys(const Config& config, KeyProblems& problems) {
  const std::string& protocol = config.str("kafka.security_protocol");
  const auto set = [&](const char* key) { return !config.str(key).empty(); };
  const std::string needs_tls = "takes effect only when kafka.security_protocol is ssl or sasl_ssl";
  const std::string needs_sasl =
      "takes effect only when kafka.security_protocol is sasl_plaintext or sasl_ssl";

  for (const char* key :
       {"kafka.ssl_ca_file", "kafka.ssl_certificate_file", "kafka.ssl_key_file"}) {
    if (set(key) && !uses_tls(protocol)) {
      problems.add(key, needs_tls + " (it is " + protocol + ")",
                   "set security_protocol: ssl or sasl_ssl, or remove the key");
    }
  }
  if (set("kafka.ssl_certificate_file") && !set("kafka.ssl_key_file")) {
    problems.add("kafka.ssl_certificate_file", "a client certificate needs kafka.ssl_key_file",
                 "add ssl_key_file: its unencrypted PEM private key");
  } else if (set("kafka.ssl_key_file") && !set("kafka.ssl_certificate_file")) {
    problems.add("kafka.ssl_key_file", "a client key needs kafka.ssl_certificate_file",
                 "add ssl_certificate_file: the PEM certificate of the key");
  } else if (set("kafka.ssl_certificate_file")) {
    if (auto mismatch = check_key_matches_certificate(config.str("kafka.ssl_certificate_file"),
                                                      config.str("kafka.ssl_key_file"))) {
      problems.add("kafka.ssl_key_file", *mismatch, "pair the key with its own certificate");
    }
  }

  if (uses_sasl(protocol)) {
    if (!set("kafka.sasl_username")) {
      problems.add("kafka.sasl_username", "required when kafka.security_protocol is " + protocol,
                   "the SASL user name");
    }
    if (!set("kafka.sasl_password") && !set("kafka.sasl_password_file")) {
      problems.add("kafka.sasl_password", "required when kafka.security_protocol is " + protocol,
                   "set sasl_password_file (preferred) or sasl_password: ${ENV_VAR}");
    }
  } else {
    for (const char* key :
         {"kafka.sasl_username", "kafka.sasl_password", "kafka.sasl_password_file"}) {
      if (set(key)) {
        problems.add(key, needs_sasl + " (it is " + protocol + ")",
                     "set security_protocol: sasl_ssl, or remove the key");
      }
    }
  }
  if (set("kafka.sasl_password") && set("kafka.sasl_password_file")) {
    problems.add("kafka.sasl_password_file", "set only one of sasl_password and sasl_password_file",
                 "keep sasl_password_file");
  }
}

}  // namespace telemetryd::kafka
