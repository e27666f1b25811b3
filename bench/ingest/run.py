#!/usr/bin/env python3
"""Ingest benchmark: POST /metadata with acks=all against the HTTP ceiling of the same server.

Starts one processor with the ingest API (bearer auth on, rate limit off) and drives it with wrk
from a second process on loopback, first POST /v1/ceiling (authentication and the rate check,
then 202 without Kafka: what the HTTP layer alone can do), then POST /metadata (validation,
normalisation, publish, 202 only after the brokers' acknowledgement), at each connection count.
Prints requests/s, p50/p99 latency, CPU per request of the daemon, and the ratio. Numbers are
measured, never asserted: the script fails only when a run itself fails or answers errors.

Start the services first (scripts/services.sh up; . .services/env) and build (ninja -C build).
The broker, the daemon and wrk share the machine's cores.
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402
TOKEN = "bench-token-" + uuid.uuid4().hex
BODY = ('{"gpu_uuid":"GPU-bench-0001","host":"bench-node","model_name":"H100 80GB",'
        '"observed_at":"2026-12-01T10:00:00Z","memory_total":"80 GiB","driver_version":"550.54"}')

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def to_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port, path, connections, seconds, script, pid):
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        sys.exit(f"{path} answered errors:\n{out}")
    return {"rate": rate, "p50": p50, "p99": p99, "cpu_us": cpu / max(requests, 1) * 1e6,
            "requests": requests}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run")
    parser.add_argument("--connections", default="8,32", help="comma-separated connection counts")
    parser.add_argument("--build", default=str(ROOT / "build"))
    args = parser.parse_args()
    brokers = os.environ.get("TELEMETRYD_TEST_KAFKA_BROKERS")
    mongo = os.environ.get("TELEMETRYD_TEST_MONGO_URI")
    if not brokers or not mongo:
        sys.exit("source the services' env first: scripts/services.sh up && . .services/env")
    binary = pathlib.Path(args.build) / "src" / "telemetryd"

    with tempfile.TemporaryDirectory() as tmp:
        tokens = pathlib.Path(tmp) / "tokens"
        tokens.write_text(f"bench {TOKEN}\n")
        script = pathlib.Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT % (BODY, TOKEN))
        topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
        log = open(pathlib.Path(tmp) / "daemon.log", "w+")
        daemon = subprocess.Popen(
            [str(binary), "run", "--role", "processor", "--set", "http.listen=127.0.0.1:0",
             "--set", f"kafka.brokers={brokers}", "--set", f"mongodb.uri={mongo}",
             "--set", "ingest.enabled=true", "--set", f"ingest.tokens_file={tokens}",
             "--set", f"processor.query.tokens_file={tokens}",
             "--set", "ingest.rate_limit_per_s=0", "--set", "ingest.ceiling_endpoint=true",
             "--set", f"ingest.topics.gpu_metadata={topic}", "--set", "daemon.log_level=info",
             "--set", "http.max_connections=4096"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            port = None
            for _ in range(200):
                log.seek(0)
                match = re.search(r'"msg":"listening".*"port":(\d+)', log.read())
                if match:
                    port = int(match.group(1))
                    break
                time.sleep(0.05)
            if port is None:
                log.seek(0)
                sys.exit(f"daemon did not start:\n{log.read()[-3000:]}")
            # Warm-up: topic creation and the producer's first connections are not measured.
            run_wrk(port, "/metadata", 4, 2, str(script), daemon.pid)
            print(f"{'endpoint':<16} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'CPU us/req':>10}")
            for connections in [int(c) for c in args.connections.split(",")]:
                ceiling = run_wrk(port, "/v1/ceiling", connections, args.seconds, str(script),
                                  daemon.pid)
                metadata = run_wrk(port, "/metadata", connections, args.seconds, str(script),
                                   daemon.pid)
                for name, r in (("ceiling (202)", ceiling), ("POST /metadata", metadata)):
                    print(f"{name:<16} {connections:>5} {r['rate']:>10.0f} {r['p50']:>8.2f} "
                          f"{r['p99']:>8.2f} {r['cpu_us']:>10.1f}")
                print(f"{'ratio':<16} {connections:>5} {metadata['rate'] / ceiling['rate']:>10.3f}"
                      "  (POST /metadata with acks=all / HTTP ceiling)")
                record("ingest", f"POST /metadata (acks=all), {connections} connections",
                       metadata["rate"], "req/s", "POST /v1/ceiling (auth, 202)", ceiling["rate"])
                record("ingest", f"POST /metadata p99, {connections} connections", metadata["p99"],
                       "ms", "POST /v1/ceiling p99", ceiling["p99"])
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)


if __name__ == "__main__":
    main()
