#pragma once
// librdkafka properties from the `kafka:` section: the connection and security settings every
// client shares, and the tuning of producers (sink, dead letters, ingest).

#include <map>
#include <string>

#include "telemetryd/config.hpp"

namespace telemetryd::kafka {

using Properties = std::map<std::string, std::string>;

/// bootstrap.servers, client.id, TLS and SASL: what every client of the role uses, the /ready
/// probe included. Reads kafka.sasl_password_file; throws StartupError when it cannot be read.
/// The result holds the SASL password: never log it.
Properties client_properties(const Config& config);
/// client_properties plus acks, idempotence, compression, batching and queue bounds.
Properties producer_properties(const Config& config);

/// The keys above, for the kafka component's section.
std::vector<KeySpec> kafka_client_keys();
/// The rules joining them (SASL needs a user and a password, a certificate its key, TLS files
/// need a TLS protocol), for the section's cross-key check.
void check_kafka_client_keys(const Config& config, KeyProblems& problems);

}  // namespace telemetryd::kafka
