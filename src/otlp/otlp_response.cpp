#include "otlp/otlp_response.hpp"

#include "otlp/protobuf_reader.hpp"
#include "telemetryd/json_writer.hpp"

namespace telemetryd::otlp {

using pb::WireType;

std::string encode_export_response_protobuf(std::int64_t rejected, std::string_view message,
                                            bool /*traces: both messages share one layout*/) {
  if (rejected == 0 && message.empty()) return {};
  // Export{Trace,Metrics}PartialSuccess: rejected_{spans,data_points} = 1 (int64),
  // error_message = 2 (string); proto3 leaves defaults out.
  std::string partial;
  if (rejected != 0) {
    pb::append_tag(partial, 1, WireType::kVarint);
    pb::append_varint(partial, static_cast<std::uint64_t>(rejected));  // negative: 10 bytes
  }
  if (!message.empty()) pb::append_len_field(partial, 2, message);
  std::string out;
  pb::append_len_field(out, 1, partial);  // partial_success = 1
  return out;
}

std::string encode_export_response_json(std::int64_t rejected, std::string_view message,
                                        bool traces) {
  JsonWriter json;
  json.begin_object();
  if (rejected != 0 || !message.empty()) {
    json.key("partialSuccess").begin_object();
    if (rejected != 0)
      json.key(traces ? "rejectedSpans" : "rejectedDataPoints").value(std::to_string(rejected));
    if (!message.empty()) json.key("errorMessage").value(message);
    json.end_object();
  }
  json.end_object();
  return json.take();
}

std::string encode_status_protobuf(int code, std::string_view message) {
  std::string out;
  if (code != 0) {
    pb::append_tag(out, 1, WireType::kVarint);
    // int32: a negative code is sign-extended to ten bytes, as protobuf does.
    pb::append_varint(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(code)));
  }
  if (!message.empty()) pb::append_len_field(out, 2, message);
  return out;
}

std::string encode_status_json(int code, std::string_view message) {
  JsonWriter json;
  json.begin_object().key("code").value(code).key("message").value(message).end_object();
  return json.take();
}

}  // namespace telemetryd::otlp
