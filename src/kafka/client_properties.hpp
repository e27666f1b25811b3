#pragma once
// librdkafka properties from the `kafka:` section: the connection and security settings every
// client shares, and the tuning of producers (sink, dead letters, ingest).

#include <map>
#include <string>

#include "telemetryd/config.hpp"

namespace telemetryd::kafka {

using Properties = std::map<std::string, std::string>;

/// bootstrap.servers, client.id, TLS and SASL. Reads kafka.sasl_password_file; throws
/// StartupError when it cannot be read.
Properties client_properties(const Config& config);
/// client_properties plus acks, idempotence, compression, batching and queue bounds.
Properties producer_properties(const Config& config);

/// The keys above, for the kafka component's section.
std::vector<KeySpec> kafka_client_keys();

}  // namespace telemetryd::kafka
