// Fuzzes the processor's event decoder (src/processor/event_decoder.*) with arbitrary Kafka
// values. Beyond "does not crash", every input must satisfy (docs/fuzzing.md):
//  - a rejection carries one of the six documented reasons and a short, valid UTF-8 detail
//    (both land in metrics labels, dead-letter headers and logs);
//  - an accepted event has a UUIDv7 id, a known type matching its kind, the required fields of
//    that kind non-empty, token counts >= 0, valid UTF-8 strings and a `data_json` that is a
//    JSON object;
//  - the producer's encoder (events::encode_cloudevent) re-encodes an accepted event into one
//    the decoder accepts again with the same fields: what the processor reads, the producer
//    can write.
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/cloudevent.hpp"
#include "events/event_decoder.hpp"
#include "fuzz_invariants.hpp"

namespace {

using fuzz::expect;
using fuzz::utf8;
using fuzz::violated;

using telemetryd::events::DecodedEvent;
using telemetryd::events::DecodeError;
using telemetryd::events::DecodeResult;
using telemetryd::events::EventKind;

void check_error(const telemetryd::events::DecodeError& error) {
  constexpr std::string_view kReasons[] = {"invalid_json",  "bad_envelope", "unknown_type",
                                           "missing_field", "wrong_type",   "out_of_range"};
  bool known = false;
  for (std::string_view reason : kReasons) known = known || error.reason == reason;
  expect(known, "unknown rejection reason", error.reason);
  expect(!error.detail.empty(), "empty rejection detail", error.reason);
  // The longest legitimate detail is the unknown type cut at 100 bytes plus its sentence.
  expect(error.detail.size() <= 200, "rejection detail over 200 bytes", error.detail);
  expect(utf8(error.detail), "rejection detail is not valid UTF-8", error.detail);
}

std::string_view type_of(telemetryd::events::EventKind kind) {
  switch (kind) {
    case telemetryd::events::EventKind::kGpuMetrics:
      return "io.telemetryd.gpu.metrics.v1";
    case telemetryd::events::EventKind::kTokenUsage:
      return "io.telemetryd.token.usage.v1";
    case telemetryd::events::EventKind::kGpuMetadata:
      return "io.telemetryd.gpu.metadata.v1";
  }
  return {};
}

void check_event(const telemetryd::events::DecodedEvent& e) {
  expect(e.id.size() == 36 && e.id[14] == '7', "accepted id is not a UUIDv7", e.id);
  expect(!e.source.empty(), "accepted an empty source");
  expect(e.type == type_of(e.kind), "type does not match the kind", e.type);
  for (const std::string* text : {&e.id, &e.source, &e.subject, &e.type, &e.data_json, &e.gpu_uuid,
                                  &e.host, &e.model_name, &e.model, &e.deployment, &e.tenant_id})
    expect(utf8(*text), "decoded field is not valid UTF-8", *text);
  for (const std::string& uuid : e.gpu_uuids)
    expect(utf8(uuid), "decoded gpu_uuids item is not valid UTF-8", uuid);
  if (e.kind == telemetryd::events::EventKind::kTokenUsage) {
    expect(!e.model.empty() && !e.tenant_id.empty(), "token usage without model or tenant_id");
    expect(e.input_tokens >= 0 && e.output_tokens >= 0, "negative token count");
  } else {
    expect(!e.gpu_uuid.empty() && !e.host.empty() && !e.model_name.empty(),
           "GPU event without gpu_uuid, host or model_name");
  }
  static simdjson::dom::parser data_parser;
  simdjson::dom::element data;
  expect(data_parser.parse(e.data_json).get(data) == simdjson::SUCCESS && data.is_object(),
         "data_json is not a JSON object", e.data_json);
}

void expect_same(const telemetryd::events::DecodedEvent& a,
                 const telemetryd::events::DecodedEvent& b, const std::string& encoded) {
  const auto same = [&](bool equal, const char* field) {
    if (!equal) violated(field, "differs after re-encoding: " + encoded);
  };
  same(a.kind == b.kind, "kind");
  same(a.id == b.id, "id");
  same(a.source == b.source, "source");
  same(a.subject == b.subject, "subject");
  same(a.type == b.type, "type");
  same(a.time == b.time, "time");
  same(a.data_json == b.data_json, "data");
  same(a.gpu_uuid == b.gpu_uuid, "gpu_uuid");
  same(a.host == b.host, "host");
  same(a.model_name == b.model_name, "model_name");
  same(a.model == b.model, "model");
  same(a.deployment == b.deployment, "deployment");
  same(a.tenant_id == b.tenant_id, "tenant_id");
  same(a.input_tokens == b.input_tokens, "input_tokens");
  same(a.output_tokens == b.output_tokens, "output_tokens");
  same(a.gpu_uuids == b.gpu_uuids, "gpu_uuids");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One parser reused across inputs, as the processor does: state must not leak between calls.
  static simdjson::dom::parser parser;
  static simdjson::dom::parser second_parser;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const telemetryd::events::DecodeResult result = telemetryd::events::decode_event(bytes, parser);
  if (const auto* error = std::get_if<telemetryd::events::DecodeError>(&result)) {
    check_error(*error);
    return 0;
  }
  const auto& event = std::get<telemetryd::events::DecodedEvent>(result);
  check_event(event);

  const std::string encoded = telemetryd::events::encode_cloudevent(
      event.id, event.source, event.type, event.time, event.subject, event.data_json);
  const telemetryd::events::DecodeResult again =
      telemetryd::events::decode_event(encoded, second_parser);
  if (const auto* error = std::get_if<telemetryd::events::DecodeError>(&again))
    violated("the re-encoded event is rejected",
             error->reason + ": " + error->detail + ": " + encoded);
  expect_same(event, std::get<telemetryd::events::DecodedEvent>(again), encoded);
  return 0;
}
