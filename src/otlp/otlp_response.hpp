#pragma once
// Bodies of OTLP/HTTP answers (https://opentelemetry.io/docs/specs/otlp/#otlphttp-response), in
// the request's encoding: the export response on success (with a partial success when some items
// were rejected) and a google.rpc.Status on failure.

#include <cstdint>
#include <string>
#include <string_view>

namespace telemetryd::otlp {

/// ExportTraceServiceResponse (`traces`) or ExportMetricsServiceResponse: partial_success = 1
/// {rejected_spans / rejected_data_points = 1, error_message = 2}. Empty (no partial_success)
/// when nothing was rejected and `message` is empty.
std::string encode_export_response_protobuf(std::int64_t rejected, std::string_view message,
                                            bool traces);
/// The OTLP/JSON form: {} or {"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}
/// ("rejectedDataPoints" for metrics; int64 as a string; fields at their default are omitted).
std::string encode_export_response_json(std::int64_t rejected, std::string_view message,
                                        bool traces);

/// google.rpc.Status (google/rpc/status.proto): code = 1, message = 2.
std::string encode_status_protobuf(int code, std::string_view message);
/// {"code":3,"message":"..."}
std::string encode_status_json(int code, std::string_view message);

}  // namespace telemetryd::otlp
