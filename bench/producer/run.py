#!/usr/bin/env python3
"""Producer benchmark: telemetryd's producer role against Kafka's own ProducerPerformance tool,
in the same run, on the same broker, with the same message size, acks and compression.

Prints events/s, MB/s and CPU per event for both, and the ratio. Start the services first
(scripts/services.sh up) or pass --services to have this script start and stop them.
Numbers are measured, never asserted: this script fails only when a run itself fails.

Note: the broker, the producer and this script share the machine's cores, so both sides pay
the broker's CPU; CPU per event counts only the producing process (and the JVM's own start-up
and JIT for the baseline, which is why the baseline also reports its own steady-state rate).
"""
import argparse
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402


def child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(argv, env=None):
    cpu_before = child_cpu_seconds()
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    return proc, wall, child_cpu_seconds() - cpu_before


def telemetryd_run(binary, brokers, events, tag):
    argv = [str(binary), "run", "--role", "producer", "--count", str(events),
            "--set", "producer.rate=10000000", "--set", "http.listen=127.0.0.1:0",
            "--set", f"kafka.brokers={brokers}",
            "--set", f"producer.topics.gpu_metrics=bench-gpu-{tag}",
            "--set", f"producer.topics.token_usage=bench-usage-{tag}",
            "--set", "synthetic.hosts=8", "--set", "daemon.log_level=info"]
    proc, wall, cpu = run_measured(argv)
    if proc.returncode != 0:
        sys.exit(f"telemetryd failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    stopped = [json.loads(l) for l in proc.stdout.splitlines() if '"msg":"stopped"' in l and '"producer"' in l]
    if not stopped or stopped[0]["delivered"] != events:
        sys.exit(f"telemetryd did not deliver {events} events:\n{proc.stdout[-3000:]}")
    return {"wall": wall, "cpu": cpu, "bytes": stopped[0]["payload_bytes"]}


def kafka_perf_run(brokers, events, record_size, tag, compression):
    argv = [str(ROOT / "scripts/kafka-tool.sh"), "org.apache.kafka.tools.ProducerPerformance",
            "--topic", f"bench-perf-{tag}", "--num-records", str(events),
            "--record-size", str(record_size), "--throughput", "-1",
            "--producer-props", f"bootstrap.servers={brokers}", "acks=all",
            "enable.idempotence=true", f"compression.type={compression}", "linger.ms=10",
            "batch.size=1000000"]
    proc, wall, cpu = run_measured(argv)
    if proc.returncode != 0:
        sys.exit(f"ProducerPerformance failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    # Its last line: "N records sent, X records/sec (Y MB/sec), ..."
    match = re.findall(r"(\d+) records sent, ([\d.]+) records/sec", proc.stdout)
    own_rate = float(match[-1][1]) if match else float("nan")
    return {"wall": wall, "cpu": cpu, "own_rate": own_rate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--binary", default=str(ROOT / "build/src/telemetryd"))
    parser.add_argument("--brokers", default=os.environ.get("TELEMETRYD_TEST_KAFKA_BROKERS", "127.0.0.1:9092"))
    parser.add_argument("--services", action="store_true", help="start and stop scripts/services.sh")
    args = parser.parse_args()

    if args.services:
        subprocess.run([str(ROOT / "scripts/services.sh"), "up", "kafka"], check=True)
    try:
        tag = str(int(time.time()))
        print(f"producer benchmark: {args.events} events, acks=all, idempotent, lz4, broker {args.brokers}")
        ours = telemetryd_run(args.binary, args.brokers, args.events, tag)
        record_size = round(ours["bytes"] / args.events)
        theirs = kafka_perf_run(args.brokers, args.events, record_size, tag, "lz4")
    finally:
        if args.services:
            subprocess.run([str(ROOT / "scripts/services.sh"), "down", "kafka"])

    rows = [
        ("telemetryd producer", args.events / ours["wall"], ours["cpu"], ours["wall"]),
        ("kafka ProducerPerformance", args.events / theirs["wall"], theirs["cpu"], theirs["wall"]),
    ]
    print(f"message size: {record_size} bytes (telemetryd's mean CloudEvent; the baseline sends "
          f"random records of that size)")
    print(f"{'':28}{'events/s':>12}{'MB/s':>9}{'CPU s':>9}{'CPU us/event':>14}{'wall s':>9}")
    for name, rate, cpu, wall in rows:
        print(f"{name:28}{rate:12.0f}{rate * record_size / 1e6:9.1f}{cpu:9.2f}"
              f"{cpu / args.events * 1e6:14.2f}{wall:9.2f}")
    print(f"kafka ProducerPerformance's own steady-state rate (excludes JVM start): "
          f"{theirs['own_rate']:.0f} records/s")
    print(f"ratio telemetryd/kafka: throughput {rows[0][1] / rows[1][1]:.2f} (wall to wall), "
          f"{rows[0][1] / theirs['own_rate']:.2f} (vs its steady state); "
          f"CPU per event {ours['cpu'] / theirs['cpu']:.2f}")
    record("producer", "events/s to Kafka (acks=all)", rows[0][1], "events/s",
           "kafka ProducerPerformance, steady state", theirs["own_rate"])
    record("producer", "CPU per event", ours["cpu"] / args.events * 1e6, "us",
           "kafka ProducerPerformance", theirs["cpu"] / args.events * 1e6)


if __name__ == "__main__":
    main()
