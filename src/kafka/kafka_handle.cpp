#include "kafka/kafka_handle.hpp"

#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::kafka {
namespace {

void log_callback(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* message) {
  // librdkafka uses syslog levels.
  const log::Level mapped = level <= 3   ? log::Level::kError
                            : level == 4 ? log::Level::kWarn
                            : level <= 6 ? log::Level::kInfo
                                         : log::Level::kDebug;
  log::write(mapped, "kafka", message, {{"facility", facility}});
}

void error_callback(rd_kafka_t* /*rk*/, int err, const char* reason, void* /*opaque*/) {
  log_client_error(err, reason);
}

}  // namespace

void log_client_error(int err, const char* reason) {
  log::write(err == RD_KAFKA_RESP_ERR__FATAL ? log::Level::kError : log::Level::kWarn, "kafka",
             reason, {{"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))}});
}

rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& properties) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  for (const auto& [key, value] : properties) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw StartupError("kafka: property " + key + ": " + errstr);
    }
  }
  return conf;
}

HandlePtr make_handle(rd_kafka_type_t type, const std::map<std::string, std::string>& properties) {
  return make_handle_from_conf(type, make_conf(properties));
}

HandlePtr make_handle_from_conf(rd_kafka_type_t type, rd_kafka_conf_t* conf,
                                ErrorCallback on_error) {
  char errstr[512];
  rd_kafka_conf_set_log_cb(conf, log_callback);
  rd_kafka_conf_set_error_cb(conf, on_error != nullptr ? on_error : error_callback);
  // On success rd_kafka_new owns conf; on failure the caller still does.
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw StartupError(std::string("kafka: cannot create client: ") + errstr);
  }
  return HandlePtr(rk);
}

}  // namespace telemetryd::kafka
