#pragma once
#include <cstddef>
// Decoders for OTLP/HTTP export request bodies (https://opentelemetry.io/docs/specs/otlp/):
// binary protobuf (application/x-protobuf) and OTLP/JSON (application/json), traces and metrics,
// into the model of otlp_model.hpp.
//
// The protobuf side is a small hand-written wire decoder (protobuf_reader.hpp), not libprotobuf:
// only about a dozen messages are needed, unknown fields have to be skipped anyway, the result
// can point into the body (zero-copy), the container image needs no extra runtime library, and a
// decoder of this size is quick to fuzz (fuzz/fuzz_otlp_decoder.cpp). Field numbers come from
// the official opentelemetry-proto .proto files and are cited where they are used.
//
// Every decoder is total: any input gives a request or a permanent Error (bad data, answered
// with 400), never an exception or a crash. Nesting (AnyValue arrays and kvlists) is limited to
// kMaxValueDepth levels.

#include <simdjson.h>

#include <string_view>

#include "otlp/otlp_model.hpp"
#include "telemetryd/result.hpp"

namespace telemetryd::otlp {

/// Deepest AnyValue nesting accepted (an attribute's value is depth 1, each arrayValue or
/// kvlistValue inside it one more).
inline constexpr int kMaxValueDepth = 32;
/// Spans, attributes and data points one request may hold in all: a body of empty spans (two
/// bytes each) would otherwise cost about 100 bytes of model per body byte. Two million bounds a
/// request's model at about 200 MB, above any real batch (a 20 MiB batch of GenAI spans holds
/// well under a million attributes).
inline constexpr std::size_t kMaxItemsPerRequest = 2'000'000;

/// Permanent errors only (bad data): message says what and where, e.g.
/// "resource_spans[0].scope_spans[1].spans[3]: truncated length-delimited field 1".
Result<TracesRequest> decode_traces_protobuf(std::string_view body);
Result<MetricsRequest> decode_metrics_protobuf(std::string_view body);
/// Views point into `parser`'s buffers (or `body`): valid until the parser is reused.
Result<TracesRequest> decode_traces_json(std::string_view body, simdjson::dom::parser& parser);
Result<MetricsRequest> decode_metrics_json(std::string_view body, simdjson::dom::parser& parser);

}  // namespace telemetryd::otlp
