#pragma once
// RAII over librdkafka's C API: a configured handle whose logs and errors go to the JSON log.

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>

namespace telemetryd::kafka {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

/// A conf with these properties set; throws StartupError naming the property librdkafka rejected.
rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& properties);

/// Builds a producer or consumer handle from librdkafka properties. Throws StartupError naming
/// the property librdkafka rejected.
HandlePtr make_handle(rd_kafka_type_t type, const std::map<std::string, std::string>& properties);

/// librdkafka's error callback (rd_kafka_conf_set_error_cb).
using ErrorCallback = void (*)(rd_kafka_t* rk, int err, const char* reason, void* opaque);

/// Completes a conf the caller filled (callbacks, opaque) with the JSON log callbacks and creates
/// the handle; takes ownership of `conf`. `on_error`, when given, replaces the logging error
/// callback (it should call log_client_error itself).
HandlePtr make_handle_from_conf(rd_kafka_type_t type, rd_kafka_conf_t* conf,
                                ErrorCallback on_error = nullptr);

/// The JSON log line of a client error (what the default error callback writes).
void log_client_error(int err, const char* reason);

}  // namespace telemetryd::kafka
