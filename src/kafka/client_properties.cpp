#include "kafka/client_properties.hpp"

#include <fstream>
#include <sstream>

#include "telemetryd/errors.hpp"

namespace telemetryd::kafka {
namespace {
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
  if (protocol == "sasl_plaintext" || protocol == "sasl_ssl") {
    p["sasl.mechanism"] = config.str("kafka.sasl_mechanism");
    p["sasl.username"] = config.str("kafka.sasl_username");
    std::string password = config.str("kafka.sasl_password");
    if (const std::string& file = config.str("kafka.sasl_password_file"); !file.empty()) {
      std::ifstream in(file);
      if (!in) throw StartupError("kafka.sasl_password_file: cannot read " + file);
      std::getline(in, password);
    }
    p["sasl.password"] = password;
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
       .description = "CA bundle (PEM) to verify the brokers.",
       .default_value = ""},
      {.name = "ssl_certificate_file",
       .description = "Client certificate (PEM) for mTLS.",
       .default_value = ""},
      {.name = "ssl_key_file",
       .description = "Client private key (PEM) for mTLS.",
       .default_value = ""},
      {.name = "sasl_mechanism",
       .description = "SASL mechanism when security_protocol is sasl_*.",
       .default_value = "SCRAM-SHA-512",
       .allowed = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}},
      {.name = "sasl_username", .description = "SASL user name.", .default_value = ""},
      {.name = "sasl_password",
       .description = "SASL password; prefer sasl_password_file or ${ENV}.",
       .default_value = "",
       .secret = true},
      {.name = "sasl_password_file",
       .description = "File whose first line is the SASL password (wins over sasl_password).",
       .default_value = ""},
      {.name = "extra_properties",
       .type = ValueType::kStringList,
       .description = "More librdkafka properties as key=value; they override the settings above.",
       .default_value = "",
       .check = [](std::string_view item) -> std::optional<std::string> {
         if (item.find('=') == std::string_view::npos || item.front() == '=') {
           return "expected key=value";
         }
         return std::nullopt;
       }},
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

}  // namespace telemetryd::kafka
