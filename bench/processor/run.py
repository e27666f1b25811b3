#!/usr/bin/env python3
"""Processor benchmark: consume-to-stored rate, CPU per event and end-to-end latency of the
processor role, next to the raw rate of unordered libmongoc bulk inserts of the same documents
into the same FerretDB, all in one run.

1. drain: N events are produced to fresh topics first, then the processor is started and timed
   until all N are stored (throughput and CPU per event of the processor process).
2. latency: with the processor running, the producer sends at a steady rate; p50/p99 come from
   the processor_end_to_end_latency_seconds histogram (event time to stored).
3. baseline: build/bench/mongo_bulk_insert reads back every document the processor stored and
   inserts exactly those, unordered, in batches of the processor's batch size, into a fresh
   database with the same indexes.

Start the services first (scripts/services.sh up). Measured, never asserted.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402
TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid, field="VmRSS"):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def total(text, name):
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def histogram(text, name):
    buckets = [(float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2)))
               for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M)]
    return sorted(buckets)


def quantile(before, after, q):
    deltas = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    count = deltas[-1][1]
    if count <= 0:
        return float("nan")
    target, prev_le, prev_n = q * count, 0.0, 0.0
    for le, n in deltas:
        if n >= target:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (target - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return float("nan")


def run_producer(binary, brokers, topics, count, rate):
    argv = [binary, "run", "--role", "producer", "--count", str(count), "--set", f"producer.rate={rate}",
            "--set", "http.listen=127.0.0.1:0", "--set", f"kafka.brokers={brokers}",
            "--set", f"producer.topics.gpu_metrics={topics[0]}", "--set", f"producer.topics.token_usage={topics[1]}"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"producer failed:\n{proc.stdout[-2000:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100000)
    p.add_argument("--latency-rate", type=int, default=2000)
    p.add_argument("--latency-seconds", type=int, default=15)
    p.add_argument("--binary", default=str(ROOT / "build/src/telemetryd"))
    p.add_argument("--baseline", default=str(ROOT / "build/bench/mongo_bulk_insert"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="more --set for the processor, e.g. processor.prefetch_max_kbytes=65536")
    p.add_argument("--encode-bench", default=str(ROOT / "build/bench/bson_encode_bench"))
    p.add_argument("--brokers", default=os.environ.get("TELEMETRYD_TEST_KAFKA_BROKERS", "127.0.0.1:9092"))
    p.add_argument("--mongo", default=os.environ.get("TELEMETRYD_TEST_MONGO_URI", "mongodb://127.0.0.1:27017/"))
    args = p.parse_args()

    tag = str(int(time.time()))
    topics = (f"bench-pgpu-{tag}", f"bench-pusage-{tag}")
    print(f"processor benchmark: {args.events} events, batch 500, FerretDB {args.mongo}, broker {args.brokers}")
    run_producer(args.binary, args.brokers, topics, args.events, 10000000)

    port = 18500 + int(tag) % 1000
    argv = [args.binary, "run", "--role", "processor", "--set", f"http.listen=127.0.0.1:{port}",
            "--set", f"kafka.brokers={args.brokers}", "--set", f"mongodb.uri={args.mongo}",
            "--set", f"mongodb.database=bench{tag}", "--set", f"processor.group_id=bench-{tag}",
            "--set", f"processor.topics.gpu_metrics={topics[0]}", "--set", f"processor.topics.token_usage={topics[1]}",
            "--set", "daemon.log_level=warn", "--set", "processor.query.auth=none"]
    for item in args.set:
        argv += ["--set", item]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        first_stored = None
        start_rss = None
        while True:
            time.sleep(0.1)
            if proc.poll() is not None:
                sys.exit("processor exited early")
            try:
                text = scrape(port)
            except OSError:
                continue
            if start_rss is None:
                start_rss = rss_mib(proc.pid)
            done = total(text, "processor_db_writes_total") + total(text, "processor_duplicates_total")
            if done > 0 and first_stored is None:
                first_stored = time.monotonic()
            if done >= args.events:
                break
            if time.monotonic() - started > 600:
                sys.exit(f"only {done} of {args.events} stored after 600 s")
        drain_wall = time.monotonic() - started
        drain_cpu = proc_cpu(proc.pid)
        peak_rss = rss_mib(proc.pid, "VmHWM")
        steady_wall = time.monotonic() - first_stored

        before = histogram(scrape(port), "processor_end_to_end_latency_seconds")
        run_producer(args.binary, args.brokers, topics, args.latency_rate * args.latency_seconds, args.latency_rate)
        time.sleep(2)
        after = histogram(scrape(port), "processor_end_to_end_latency_seconds")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # The same documents the processor stored, with the same indexes, in a fresh database.
    baseline = subprocess.run([args.baseline, args.mongo, f"benchraw{tag}", str(args.events), "500",
                               "--copy-from", f"bench{tag}"], capture_output=True, text=True)
    if baseline.returncode != 0:
        sys.exit(f"baseline failed: {baseline.stderr}")
    raw = json.loads(baseline.stdout)

    encode = json.loads(subprocess.run([args.encode_bench], capture_output=True, text=True,
                                       check=True).stdout)
    print(f"event data -> BSON, in-process CPU per event ({encode['mean_bytes']} B of JSON): "
          f"{encode['simdjson_ns'] / 1000:.2f} us with simdjson (the processor's), "
          f"{encode['libbson_ns'] / 1000:.2f} us with libbson's JSON reader, plus "
          f"{encode['validate_ns'] / 1000:.2f} us for libmongoc's per-document check (skipped)")
    record("processor", "event data -> BSON (CPU)", encode["simdjson_ns"] / 1000, "us",
           "libbson reader + libmongoc check", (encode["libbson_ns"] + encode["validate_ns"]) / 1000)
    ours = args.events / drain_wall
    ours_steady = args.events / steady_wall
    theirs = raw["documents"] / raw["seconds"]
    stored = raw["documents"]
    print(f"{'':44}{'events/s':>10}{'CPU us/event':>14}")
    print(f"{'telemetryd processor (start to all stored)':44}{ours:10.0f}{drain_cpu / args.events * 1e6:14.1f}")
    print(f"{'telemetryd processor (first to last stored)':44}{ours_steady:10.0f}")
    print(f"{'raw insert_many of the same documents':44}{theirs:10.0f}{raw['cpu_seconds'] / stored * 1e6:14.1f}")
    print(f"end-to-end latency at {args.latency_rate} events/s: p50 {quantile(before, after, 0.5) * 1000:.0f} ms, "
          f"p99 {quantile(before, after, 0.99) * 1000:.0f} ms (histogram estimate)")
    print(f"ratio processor/raw insert: {ours / theirs:.2f} (start to end), {ours_steady / theirs:.2f} (steady)")
    print(f"processor RSS: {start_rss:.1f} MiB when it started answering, peak {peak_rss:.1f} MiB while draining")
    p99_ms = quantile(before, after, 0.99) * 1000
    record("processor", "Kafka -> FerretDB, events/s", ours_steady, "events/s",
           "raw insert_many, same documents", theirs, ">= 0.9x raw")
    record("processor", "CPU per event", drain_cpu / args.events * 1e6, "us",
           "raw insert_many, client CPU", raw["cpu_seconds"] / stored * 1e6, "<= 5 us")
    record("processor", f"p99 event -> stored at {args.latency_rate}/s", p99_ms, "ms", goal="<= 250 ms")
    record("processor", "RSS at start / peak draining", peak_rss, "MiB", "RSS at start", start_rss,
           "<= 32 idle, <= 64 peak")


if __name__ == "__main__":
    main()
