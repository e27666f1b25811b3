#pragma once
// Reads whole topics back with librdkafka, for integration tests that count what was delivered.

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace test_support {

struct ConsumedMessage {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;  // in order
};

/// Consumes `topics` from the beginning with a fresh group until `expected` messages arrived or
/// `timeout` passed, then keeps reading for `settle` to catch any extra (duplicate) messages.
std::vector<ConsumedMessage> read_topics(const std::string& brokers,
                                         const std::vector<std::string>& topics,
                                         std::size_t expected, std::chrono::seconds timeout,
                                         std::chrono::seconds settle = std::chrono::seconds(3));

/// The same with librdkafka properties (bootstrap.servers plus TLS/SASL settings) instead of
/// a plaintext broker list.
std::vector<ConsumedMessage> read_topics(const std::map<std::string, std::string>& properties,
                                         const std::vector<std::string>& topics,
                                         std::size_t expected, std::chrono::seconds timeout,
                                         std::chrono::seconds settle = std::chrono::seconds(3));

/// A topic name no earlier run has used.
std::string unique_topic(const std::string& prefix);

}  // namespace test_support
