// The OTLP receiver's CPU work alone, in-process (driven by bench/otlp/run.py):
//   decode  decode_traces_protobuf() of one ExportTraceServiceRequest of --spans GenAI spans
//   map     GenAiMapper::map() of the decoded request: token.usage.v1 events (ids, CloudEvent JSON)
// The request is built here by a small protobuf encoder, like a real SDK's export: one resource
// (service.name, host.name and the SDK's telemetry.sdk.* attributes), one scope, and spans of
// kind CLIENT with 13 attributes each (operation, provider, request and response model, response
// id, input, output and cache-read tokens, max_tokens, temperature, finish_reasons array,
// tenant.id, server.address) and an OK status. Times are this thread's CPU time
// (per core), not wall time. Prints one JSON object on one line.
//
// --write-body FILE writes the request instead (the body bench/http_load POSTs). Every span's
// trace_id is the 8 bytes "OTLPBNCH" followed by 8 bytes the load client overwrites with a
// per-request number (--patch-marker OTLPBNCH), so every request stores new events.

#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "otlp/genai_mapping.hpp"
#include "otlp/otlp_decode.hpp"

using namespace telemetryd;

namespace {

// ---- a minimal protobuf writer -----------------------------------------------------------------

void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void tag(std::string& out, std::uint32_t field, std::uint32_t wire) {
  varint(out, (static_cast<std::uint64_t>(field) << 3) | wire);
}
void len_field(std::string& out, std::uint32_t field, std::string_view bytes) {
  tag(out, field, 2);
  varint(out, bytes.size());
  out.append(bytes);
}
void varint_field(std::string& out, std::uint32_t field, std::uint64_t v) {
  tag(out, field, 0);
  varint(out, v);
}
void fixed64_field(std::string& out, std::uint32_t field, std::uint64_t v) {
  tag(out, field, 1);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// common.v1.KeyValue { key = 1; AnyValue value = 2 }, AnyValue { string_value = 1,
// int_value = 3, double_value = 4, array_value = 5 }.
std::string kv_string(std::string_view key, std::string_view value) {
  std::string any, kv;
  len_field(any, 1, value);
  len_field(kv, 1, key);
  len_field(kv, 2, any);
  return kv;
}
std::string kv_int(std::string_view key, std::int64_t value) {
  std::string any, kv;
  varint_field(any, 3, static_cast<std::uint64_t>(value));
  len_field(kv, 1, key);
  len_field(kv, 2, any);
  return kv;
}
std::string kv_double(std::string_view key, double value) {
  std::string any, kv;
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  fixed64_field(any, 4, bits);
  len_field(kv, 1, key);
  len_field(kv, 2, any);
  return kv;
}
std::string kv_string_array(std::string_view key, std::string_view element) {
  std::string inner, array, any, kv;
  len_field(inner, 1, element);  // AnyValue{string_value}
  len_field(array, 1, inner);    // ArrayValue{values}
  len_field(any, 5, array);
  len_field(kv, 1, key);
  len_field(kv, 2, any);
  return kv;
}

std::string hex(std::uint64_t v, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kDigits[v & 15];
  return out;
}

std::string build_request(int spans, const std::string& model_prefix) {
  const std::uint64_t now_ns =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  static const char* const kModels[][2] = {{"gpt-4o-mini", "gpt-4o-mini-2024-07-18"},
                                           {"gpt-4o", "gpt-4o-2024-08-06"},
                                           {"Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"},
                                           {"llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"}};
  std::string resource;  // resource.v1.Resource { attributes = 1 }
  len_field(resource, 1, kv_string("service.name", "chat-frontend"));
  len_field(resource, 1, kv_string("host.name", "gpu-node-01"));
  len_field(resource, 1, kv_string("telemetry.sdk.language", "python"));
  len_field(resource, 1, kv_string("telemetry.sdk.name", "opentelemetry"));
  len_field(resource, 1, kv_string("telemetry.sdk.version", "1.45.2"));
  std::string scope;  // InstrumentationScope { name = 1, version = 2 }
  len_field(scope, 1, "opentelemetry.instrumentation.openai_v2");
  len_field(scope, 2, "2.1b0");
  std::string scope_spans;  // ScopeSpans { scope = 1, spans = 2 }
  len_field(scope_spans, 1, scope);
  for (int i = 0; i < spans; ++i) {
    const auto& model = kModels[i % 4];
    const std::string request_model = model_prefix + model[0];
    const std::string response_model = model_prefix + model[1];
    std::string trace_id = "OTLPBNCH";
    for (int b = 0; b < 8; ++b) trace_id.push_back(static_cast<char>((i >> (8 * b)) & 0xff));
    std::string span_id(8, '\0');
    const std::uint64_t sid = 0x5eed000000000000ULL + static_cast<std::uint64_t>(i) + 1;
    for (int b = 0; b < 8; ++b)
      span_id[static_cast<std::size_t>(b)] = static_cast<char>(sid >> (8 * b));
    std::string span;  // trace.v1.Span
    len_field(span, 1, trace_id);
    len_field(span, 2, span_id);
    len_field(span, 5, "chat " + request_model);
    varint_field(span, 6, 3);  // SPAN_KIND_CLIENT
    const std::uint64_t end = now_ns - static_cast<std::uint64_t>(spans - i) * 1'000'000;
    fixed64_field(span, 7, end - 850'000'000);
    fixed64_field(span, 8, end);
    const std::int64_t input = 200 + (i * 37) % 3000, output = 20 + (i * 13) % 700;
    len_field(span, 9, kv_string("gen_ai.operation.name", "chat"));
    len_field(span, 9, kv_string("gen_ai.provider.name", "openai"));
    len_field(span, 9, kv_string("gen_ai.request.model", request_model));
    len_field(span, 9, kv_string("gen_ai.response.model", response_model));
    len_field(span, 9, kv_string("gen_ai.response.id", "chatcmpl-" + hex(sid * 2654435761ULL, 24)));
    len_field(span, 9, kv_int("gen_ai.usage.input_tokens", input));
    len_field(span, 9, kv_int("gen_ai.usage.output_tokens", output));
    len_field(span, 9, kv_int("gen_ai.usage.cache_read.input_tokens", (i % 3) * 64));
    len_field(span, 9, kv_int("gen_ai.request.max_tokens", 1024));
    len_field(span, 9, kv_double("gen_ai.request.temperature", 0.7));
    len_field(span, 9, kv_string_array("gen_ai.response.finish_reasons", "stop"));
    len_field(span, 9, kv_string("tenant.id", "tenant-" + std::to_string(i % 7)));
    len_field(span, 9, kv_string("server.address", "api.openai.com"));
    std::string status;  // Status { code = 3 }: STATUS_CODE_OK
    varint_field(status, 3, 1);
    len_field(span, 15, status);
    len_field(scope_spans, 2, span);
  }
  std::string resource_spans;  // ResourceSpans { resource = 1, scope_spans = 2 }
  len_field(resource_spans, 1, resource);
  len_field(resource_spans, 2, scope_spans);
  std::string request;  // ExportTraceServiceRequest { resource_spans = 1 }
  len_field(request, 1, resource_spans);
  return request;
}

// CPU seconds of this thread: the machine is shared, so wall time would count other
// processes' turns on the core as ours.
double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  int spans = 512;
  long iterations = 200;
  std::string write_body;
  std::string model_prefix;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--spans")
      spans = std::stoi(value);
    else if (flag == "--iterations")
      iterations = std::stol(value);
    else if (flag == "--write-body")
      write_body = value;
    else if (flag == "--model-prefix")
      model_prefix = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const std::string body = build_request(spans, model_prefix);
  if (!write_body.empty()) {
    std::ofstream(write_body, std::ios::binary) << body;
    std::printf("{\"bytes\":%zu,\"spans\":%d}\n", body.size(), spans);
    return 0;
  }

  const otlp::GenAiMapper mapper{otlp::MappingSettings{}};
  {  // Check once that every span decodes and maps to an event.
    Result<otlp::TracesRequest> decoded = otlp::decode_traces_protobuf(body);
    if (!decoded) {
      std::fprintf(stderr, "decode failed: %s\n", decoded.error().message.c_str());
      return 1;
    }
    const otlp::TracesMapping mapped = mapper.map(decoded.value());
    if (mapped.events.size() != static_cast<std::size_t>(spans)) {
      std::fprintf(stderr, "mapped %zu events of %d spans (%zu rejected: %s)\n",
                   mapped.events.size(), spans, mapped.rejected, mapped.rejection_message.c_str());
      return 1;
    }
  }
  // Decode alone, then decode + map (the receiver's work per request, less HTTP and publish).
  std::size_t sink = 0;
  const auto wall_start = std::chrono::steady_clock::now();
  double start = thread_cpu();
  for (long i = 0; i < iterations; ++i) {
    Result<otlp::TracesRequest> decoded = otlp::decode_traces_protobuf(body);
    sink += decoded.value().span_count;
  }
  const double decode_s = thread_cpu() - start;
  start = thread_cpu();
  for (long i = 0; i < iterations; ++i) {
    Result<otlp::TracesRequest> decoded = otlp::decode_traces_protobuf(body);
    const otlp::TracesMapping mapped = mapper.map(decoded.value());
    sink += mapped.events.size() + mapped.events.back().payload.size();
  }
  const double both_s = thread_cpu() - start;
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double total_spans = static_cast<double>(iterations) * spans;
  std::printf(
      "{\"spans\":%d,\"bytes\":%zu,\"iterations\":%ld,\"decode_ns_per_span\":%.1f,"
      "\"map_ns_per_span\":%.1f,\"decode_map_ns_per_span\":%.1f,\"decode_spans_per_s\":%.0f,"
      "\"decode_map_spans_per_s\":%.0f,\"cpu_s\":%.3f,\"wall_s\":%.3f,\"sink\":%zu}\n",
      spans, body.size(), iterations, decode_s / total_spans * 1e9,
      (both_s - decode_s) / total_spans * 1e9, both_s / total_spans * 1e9, total_spans / decode_s,
      total_spans / both_s, decode_s + both_s, wall_s, sink);
  return 0;
}
