#!/usr/bin/env python3
"""Sends GenAI telemetry to a telemetryd OTLP/HTTP receiver with the real OpenTelemetry Python SDK.

Used by tests/integration/otlp_itest.cpp (run with the venv scripts/lib/test-tools.sh makes:
opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http from PyPI). Every scenario prints one
JSON object on stdout: what was sent, so the test can compare it with what telemetryd stored.

  spans    SDK spans with GenAI usage attributes (current and older names, cache and reasoning
           buckets, a provider cost, content attributes that must be dropped) plus spans without
           usage, exported with the SDK's OTLPSpanExporter (protobuf) or, with --protocol json,
           the SDK's own encoding of the same spans as OTLP/JSON (hex ids, int64 as strings);
           --repeat N exports the same finished spans N times (a retried export).
  mixed    valid spans and spans with negative or absurd token counts in one request; prints the
           receiver's partial_success.
  metrics  gen_ai.client.token.usage histogram points, delta or cumulative (--temporality),
           exported with the SDK's OTLPMetricExporter.
  body     writes one protobuf export request (the spans scenario's) to --out, for byte-level tests.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.trace import Status, StatusCode

MODELS = ["Qwen/Qwen2.5-7B-Instruct", "gpt-4o-mini-2024-07-18"]  # --model-prefix goes in front


def resource(args):
    return Resource.create({"service.name": args.deployment, "host.name": args.host})


def make_spans(args, count):
    """Finished SDK spans and the totals they carry, per model."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource(args))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("telemetryd-itest", "1.0")
    expected = {}
    for i in range(count):
        model = MODELS[i % 2]
        inputs, outputs = 100 + i * 7, 20 + i * 3
        with tracer.start_as_current_span(f"chat {model}") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", model.split("-2024")[0])
            span.set_attribute("gen_ai.response.model", model)
            span.set_attribute("tenant.id", f"tenant-{i % 3}")
            span.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "content": "SECRET-PROMPT"}]))
            span.set_attribute("gen_ai.output.messages", "SECRET-COMPLETION")
            if i % 4 == 3:  # an older emitter (vLLM's tracing): the v1.36 names
                span.set_attribute("gen_ai.system", "vllm")
                span.set_attribute("gen_ai.usage.prompt_tokens", inputs)
                span.set_attribute("gen_ai.usage.completion_tokens", outputs)
                span.set_attribute("gen_ai.latency.time_to_first_token", 0.125)
            else:
                span.set_attribute("gen_ai.provider.name", "openai")
                span.set_attribute("gen_ai.usage.input_tokens", inputs)
                span.set_attribute("gen_ai.usage.output_tokens", outputs)
                span.set_attribute("gen_ai.usage.cache_read.input_tokens", i % 5)
                span.set_attribute("gen_ai.usage.reasoning.output_tokens", i % 2)
                span.set_attribute("gen_ai.usage.cost", 0.0001 * (i + 1))
            if i % 6 == 5:
                span.set_status(Status(StatusCode.ERROR))
            # A child without usage (a tool call): ignored, counted as without_usage.
            with tracer.start_as_current_span("execute_tool lookup") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
        totals = expected.setdefault(model, {"requests": 0, "input_tokens": 0, "output_tokens": 0})
        totals["requests"] += 1
        totals["input_tokens"] += inputs
        totals["output_tokens"] += outputs
    provider.shutdown()
    return memory.get_finished_spans(), expected


def otlp_json(request):
    """The OTLP/JSON form of a protobuf export request: the proto3 JSON mapping (camelCase keys,
    int64 as decimal strings) except that trace and span ids are hex, as the OTLP spec requires."""
    body = MessageToDict(request)

    def fix(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(body)
    return json.dumps(body).encode()


def post(args, path, body, content_type):
    request = urllib.request.Request(args.endpoint + path, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    if args.token:
        request.add_header("Authorization", "Bearer " + args.token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def headers(args):
    return {"Authorization": "Bearer " + args.token} if args.token else None


def scenario_spans(args):
    spans, expected = make_spans(args, args.count)
    results = []
    for _ in range(args.repeat):
        if args.protocol == "protobuf":
            exporter = OTLPSpanExporter(endpoint=args.endpoint + "/v1/traces", headers=headers(args),
                                        compression=Compression.Gzip if args.gzip else Compression.NoCompression)
            results.append("SUCCESS" if exporter.export(spans) == SpanExportResult.SUCCESS else "FAILURE")
            exporter.shutdown()
        else:
            status, body, content_type = post(args, "/v1/traces", otlp_json(encode_spans(spans)), "application/json")
            results.append(f"{status} {content_type} {body.decode(errors='replace')}")
    print(json.dumps({"exports": results, "spans": len(spans), "models": expected}))


def scenario_mixed(args):
    spans, expected = make_spans(args, args.count)
    request = encode_spans(spans)
    bad = {"negative": -5, "absurd": 10**12}
    for scope in request.resource_spans[0].scope_spans:
        for span in scope.spans:
            for kv in span.attributes:
                if kv.key == "gen_ai.usage.input_tokens" and span.name.endswith(MODELS[0]) and bad:
                    kv.value.int_value = bad.popitem()[1]
                    break
    # The edited spans are refused: what is expected is recomputed from the request itself.
    expected = {}
    for scope in request.resource_spans[0].scope_spans:
        for span in scope.spans:
            attrs = {kv.key: kv.value for kv in span.attributes}
            model = attrs.get("gen_ai.response.model")
            if model is None:
                continue
            model = model.string_value
            ins = attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens")).int_value
            outs = attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens")).int_value
            if ins < 0 or ins > 10**7:
                continue
            totals = expected.setdefault(model, {"requests": 0, "input_tokens": 0, "output_tokens": 0})
            totals["requests"] += 1
            totals["input_tokens"] += ins
            totals["output_tokens"] += outs
    status, body, content_type = post(args, "/v1/traces", request.SerializeToString(), "application/x-protobuf")
    response = ExportTraceServiceResponse()
    response.ParseFromString(body)
    print(json.dumps({
        "status": status,
        "content_type": content_type,
        "rejected_spans": response.partial_success.rejected_spans,
        "error_message": response.partial_success.error_message,
        "models": expected,
    }))


def scenario_metrics(args):
    temporality = AggregationTemporality.DELTA if args.temporality == "delta" else AggregationTemporality.CUMULATIVE
    reader = InMemoryMetricReader(preferred_temporality={Histogram: temporality})
    provider = MeterProvider(resource=resource(args), metric_readers=[reader])
    meter = provider.get_meter("telemetryd-itest")
    histogram = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    exporter = OTLPMetricExporter(endpoint=args.endpoint + "/v1/metrics", headers=headers(args),
                                  preferred_temporality={Histogram: temporality})
    expected = {}
    results = []
    for round_ in range(args.repeat):
        for i in range(args.count):
            model = MODELS[i % 2]
            for token_type, value in (("input", 50 + i + round_), ("output", 7 + i)):
                histogram.record(value, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                         "gen_ai.token.type": token_type, "gen_ai.request.model": model})
                key = f"{model}|{token_type}"
                expected[key] = expected.get(key, 0) + value
        data = reader.get_metrics_data()
        results.append("SUCCESS" if exporter.export(data) == MetricExportResult.SUCCESS else "FAILURE")
    exporter.shutdown()
    provider.shutdown()
    print(json.dumps({"exports": results, "tokens": expected}))


def scenario_body(args):
    spans, expected = make_spans(args, args.count)
    with open(args.out, "wb") as out:
        out.write(encode_spans(spans).SerializeToString())
    with open(args.out + ".json", "wb") as out:
        out.write(otlp_json(encode_spans(spans)))
    print(json.dumps({"spans": len(spans), "models": expected}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["spans", "mixed", "metrics", "body"])
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318")
    parser.add_argument("--token", default="")
    parser.add_argument("--protocol", choices=["protobuf", "json"], default="protobuf")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--temporality", choices=["delta", "cumulative"], default="delta")
    parser.add_argument("--deployment", default="chat-frontend")
    parser.add_argument("--host", default="gpu-node-01")
    parser.add_argument("--out", default="otlp-body.bin")
    parser.add_argument("--model-prefix", default="", help="keeps one run's models apart from another's")
    args = parser.parse_args()
    MODELS[:] = [args.model_prefix + model for model in MODELS]
    {"spans": scenario_spans, "mixed": scenario_mixed, "metrics": scenario_metrics, "body": scenario_body}[args.scenario](args)


if __name__ == "__main__":
    sys.exit(main())
