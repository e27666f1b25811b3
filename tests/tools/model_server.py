#!/usr/bin/env python3
"""A model server's /metrics for the scrape tests, exposed by prometheus_client, the library vLLM
and SGLang themselves use, with their metric names, types, help, labels and histogram buckets
(vLLM v1 vllm/v1/metrics/loggers.py; SGLang python/sglang/srt/metrics/collector.py).

Only the metrics are served; the counters move when the test says so:
  POST /advance?model=M&prompt=N&generation=N[&cached=N][&engine=E]   a request finished
  POST /reset                                   the server restarted: every counter back to zero
  GET  /broken                                  a malformed exposition
  GET  /metrics                                 text 0.0.4, or OpenMetrics when the Accept header
                                                asks (always with --openmetrics)
Prints `listening PORT` once ready (--port 0 picks a free port).
"""

import argparse
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

# vLLM's bucket lists (loggers.py).
VLLM_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
             10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
VLLM_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            20.0, 40.0, 80.0]
VLLM_LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
# SGLang's defaults (collector.py).
SGLANG_TTFT = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400]
SGLANG_ITL = [0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
              0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000]


def build_1_2_5(limit):
    out, exponent = [], 0
    while True:
        for m in (1, 2, 5):
            value = m * 10 ** exponent
            if value > limit:
                return out
            out.append(value)
        exponent += 1


class Vllm:
    labels = ["model_name", "engine"]

    def __init__(self, registry):
        L = self.labels
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", L, registry=registry)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", L, registry=registry)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", L, registry=registry)
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", L, registry=registry)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", L, registry=registry)
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", L, registry=registry)
        self.prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", L, registry=registry)
        self.generation = Counter("vllm:generation_tokens", "Number of generation tokens processed.", L, registry=registry)
        self.success = Counter("vllm:request_success", "Count of successfully processed requests.", L + ["finished_reason"], registry=registry)
        self.req_prompt = Histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", L, buckets=build_1_2_5(32768), registry=registry)
        self.req_generation = Histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", L, buckets=build_1_2_5(32768), registry=registry)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", L, buckets=VLLM_TTFT, registry=registry)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", L, buckets=VLLM_ITL, registry=registry)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", L, buckets=VLLM_LATENCY, registry=registry)
        info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                     ["block_size", "cache_dtype", "enable_prefix_caching", "gpu_memory_utilization"], registry=registry)
        info.labels("16", "auto", "True", "0.9").set(1)

    def advance(self, model, engine, prompt, generation, cached):
        labels = (model, engine)
        self.prompt.labels(*labels).inc(prompt)
        self.generation.labels(*labels).inc(generation)
        self.prefix_queries.labels(*labels).inc(prompt)
        self.prefix_hits.labels(*labels).inc(cached)
        self.success.labels(*labels, "stop").inc()
        self.req_prompt.labels(*labels).observe(prompt)
        self.req_generation.labels(*labels).observe(generation)
        self.ttft.labels(*labels).observe(0.05 + prompt / 100000)
        for _ in range(min(generation, 50)):
            self.itl.labels(*labels).observe(0.02)
        self.e2e.labels(*labels).observe(1.5)
        self.running.labels(*labels).set(3)
        self.waiting.labels(*labels).set(1)
        self.kv.labels(*labels).set(0.42)


class Sglang:
    labels = ["model_name", "tp_rank"]

    def __init__(self, registry):
        L = self.labels
        self.prompt = Counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", L, registry=registry)
        self.generation = Counter("sglang:generation_tokens_total", "Number of generation tokens processed.", L, registry=registry)
        self.cached = Counter("sglang:cached_tokens_total", "Number of cached prompt tokens.", L, registry=registry)
        self.requests = Counter("sglang:num_requests_total", "Number of requests processed.", L, registry=registry)
        self.ttft = Histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", L, buckets=SGLANG_TTFT, registry=registry)
        self.itl = Histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", L, buckets=SGLANG_ITL, registry=registry)
        self.e2e = Histogram("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", L, buckets=VLLM_LATENCY, registry=registry)
        self.running = Gauge("sglang:num_running_reqs", "The number of running requests.", L, registry=registry)
        self.queue = Gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", L, registry=registry)
        self.used = Gauge("sglang:num_used_tokens", "The number of used tokens.", L, registry=registry)
        self.usage = Gauge("sglang:token_usage", "The token usage.", L, registry=registry)
        self.throughput = Gauge("sglang:gen_throughput", "The generation throughput (token/s).", L, registry=registry)
        self.hit_rate = Gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", L, registry=registry)

    def advance(self, model, engine, prompt, generation, cached):
        labels = (model, engine)
        self.prompt.labels(*labels).inc(prompt)
        self.generation.labels(*labels).inc(generation)
        self.cached.labels(*labels).inc(cached)
        self.requests.labels(*labels).inc()
        self.ttft.labels(*labels).observe(0.3)
        for _ in range(min(generation, 50)):
            self.itl.labels(*labels).observe(0.012)
        self.e2e.labels(*labels).observe(2.0)
        self.running.labels(*labels).set(2)
        self.queue.labels(*labels).set(0)
        self.used.labels(*labels).set(4096)
        self.usage.labels(*labels).set(0.25)
        self.throughput.labels(*labels).set(1234.5)
        self.hit_rate.labels(*labels).set(0.5)


class State:
    def __init__(self, kind, openmetrics):
        self.kind = kind
        self.openmetrics = openmetrics
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.registry = CollectorRegistry()
        self.server = (Vllm if self.kind == "vllm" else Sglang)(self.registry)


def handler_for(state):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body, content_type="text/plain; charset=utf-8"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if urllib.parse.urlsplit(self.path).path == "/broken":  # an exposition cut mid-line
                return self.reply(200, b'# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{model_name="x" 1\n')
            if urllib.parse.urlsplit(self.path).path != "/metrics":
                return self.reply(404, b"not found\n")
            accept = self.headers.get("Accept", "")
            if state.openmetrics:  # as a server whose client library answers OpenMetrics
                accept = "application/openmetrics-text; version=1.0.0"
            encoder, content_type = choose_encoder(accept)
            with state.lock:
                body = encoder(state.registry)
            self.reply(200, body, content_type)

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            with state.lock:
                if url.path == "/reset":
                    state.reset()
                elif url.path == "/advance":
                    state.server.advance(query["model"], query.get("engine", "0"), int(query["prompt"]),
                                         int(query["generation"]), int(query.get("cached", "0")))
                else:
                    return self.reply(404, b"not found\n")
            self.reply(200, b"ok\n")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["vllm", "sglang"], required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--openmetrics", action="store_true", help="always answer OpenMetrics text")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(State(args.kind, args.openmetrics)))
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
