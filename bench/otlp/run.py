#!/usr/bin/env python3
"""OTLP receiver benchmark: POST /v1/traces (binary protobuf, 512 GenAI spans per export) against
decode+map alone and against the HTTP ceiling of the same server, in the same run.

Rows, each measured for --seconds with bench/http_load (C++, keep-alive, --threads connections)
as the client on loopback:
  decode+map, in-process  bench/otlp_bench: decode_traces_protobuf + GenAiMapper::map of the same
                          request body, CPU time of one thread (spans/s per core)
  all role                POST /v1/traces into the embedded SQLite pipeline; the stored count
                          (/v1/usage) must grow by every span answered 200
  all role, GET /health   the same daemon's trivial route, same client: the HTTP ceiling
  processor role, Kafka   POST /v1/traces published with acks=all (needs the services: skipped
                          when TELEMETRYD_TEST_KAFKA_BROKERS is unset); stored count from MongoDB
  processor, /v1/ceiling  POST of the same body to the ingest API's ceiling route (auth none,
                          rate limit off: 202 without Kafka) on the same daemon

Every export is the same body, made by `otlp_bench --write-body`, except that the client writes a
number unique to each request into the spans' trace ids (`--patch-marker`): event ids come from
trace + span id, so an unchanged body would be stored once and then only deduplicated. Model names
carry a per-run prefix (and the processor a per-run MongoDB database) so the stored count counts
this run only. CPU per span is the daemon's
utime+stime (/proc/PID/stat) over the measurement divided by the spans answered 200; the client,
the broker and the daemon share the machine's cores. Numbers are measured, never asserted: the
script fails only when a run itself fails. Builds nothing:
ninja -C build src/telemetryd bench/http_load bench/otlp_bench.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402
MARKER = "OTLPBNCH"


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Daemon:
    def __init__(self, binary, workdir, name, argv, topic=None):
        self.log_path = pathlib.Path(workdir) / f"{name}.log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([str(binary), "run", *argv], cwd=workdir, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.ports = {}
        self.topic = topic
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(self.ports) < 2:
            for line in self.text().splitlines():
                if '"msg":"listening"' in line:
                    entry = json.loads(line)
                    self.ports["otlp" if entry.get("listener") == "otlp" else "http"] = entry["port"]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if "otlp" not in self.ports or "http" not in self.ports:
            self.stop()
            sys.exit(f"telemetryd ({name}) did not start listening:\n{self.text()[-3000:]}")

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def problems(self):
        """warn and error log lines, counted by message."""
        counts = {}
        for line in self.text().splitlines():
            if '"level":"warn"' in line or '"level":"error"' in line:
                match = re.search(r'"msg":"([^"]*)"', line)
                key = match.group(1) if match else line[:80]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def get(self, path):
        url = f"http://127.0.0.1:{self.ports['http']}{path}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode()

    def metric(self, name, labels=""):
        total = 0.0
        for line in self.get("/metrics").splitlines():
            if line.startswith(name + ("{" if labels else "")) and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def stored(self, prefix):
        if self.topic:
            # The processor role reads the topic back (same process): every event Kafka
            # acknowledged is consumed. Storing into FerretDB lags far behind (bench/processor
            # measures it), and its $group is too slow to poll while documents are written.
            return self.metric("processor_messages_consumed_total", f'topic="{self.topic}"')
        groups = json.loads(self.get("/v1/usage?group_by=model"))["groups"]
        return sum(g["requests"] for g in groups if str(g["_id"]).startswith(prefix))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(tool, daemon, port, target, seconds, threads, body=None, patch=False, backoff_ms=0):
    argv = [str(tool), "--port", str(port), "--target", target, "--mode", "keepalive",
            "--seconds", str(seconds), "--threads", str(threads), "--backoff-ms", str(backoff_ms)]
    if body:
        argv += ["--body", str(body)]
    if patch:
        argv += ["--patch-marker", MARKER]
    cpu_before = cpu_seconds(daemon.proc.pid)
    proc = subprocess.run(argv, capture_output=True, text=True)
    cpu = cpu_seconds(daemon.proc.pid) - cpu_before
    if not proc.stdout.strip():
        sys.exit(f"http_load failed: {proc.stderr}")
    result = json.loads(proc.stdout)
    result["cpu_s"] = cpu
    result["rss_mib"] = rss_mib(daemon.proc.pid)
    # 503 (the pipeline is full: retry later) is part of the measurement; anything else that
    # outnumbers the successes is a failed run.
    others = sum(n for code, n in result["failures"].items() if code != "503")
    if result["requests"] == 0 or others > result["requests"]:
        sys.exit(f"http_load on {target} failed: {result}\n"
                 f"daemon log tail:\n{daemon.text()[-3000:]}")
    return result


def wait_stored(daemon, prefix, expected, timeout=60):
    """The stored count once it reaches `expected` or stops growing for 5 s."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = daemon.stored(prefix)
        if count >= expected:
            return count
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > 5:
            return count
        time.sleep(0.5)
    return last


def progress(text):
    print(text, file=sys.stderr, flush=True)


def traces_row(name, tool, daemon, body, spans, args, prefix, wait=60):
    progress(f"measuring {name}")
    r = load(tool, daemon, daemon.ports["otlp"], "/v1/traces", args.seconds, args.threads,
             body, patch=True, backoff_ms=args.backoff_ms)
    r["spans_per_s"] = r["per_second"] * spans
    r["cpu_us_per_span"] = r["cpu_s"] / max(r["requests"] * spans, 1) * 1e6
    r["sent_spans"] = r["requests"] * spans
    r["stored"] = wait_stored(daemon, prefix, r["sent_spans"] + args.warmup_spans, timeout=wait)
    r["stored"] -= args.warmup_spans
    r["name"] = name
    return r


def plain_row(name, tool, daemon, port, target, args, body=None):
    progress(f"measuring {name}")
    r = load(tool, daemon, port, target, args.seconds, args.threads, body)
    r["cpu_us_per_request"] = r["cpu_s"] / max(r["requests"], 1) * 1e6
    r["name"] = name
    return r


def topic_records(brokers, topic):
    """Records in the topic: the sum of its partitions' end offsets (an idempotent producer
    without transactions writes one offset per record)."""
    out = subprocess.run(
        [str(ROOT / "scripts/kafka-tool.sh"), "org.apache.kafka.tools.GetOffsetShell",
         "--bootstrap-server", brokers, "--topic", topic],
        capture_output=True, text=True, timeout=120)
    offsets = [int(line.rsplit(":", 1)[1]) for line in out.stdout.splitlines()
               if line.startswith(topic + ":")]
    return sum(offsets) if offsets else None


def warm_up(tool, daemon, body, args, prefix):
    """One short load: first connections, topic creation, SQLite pages; not measured."""
    progress("warming up")
    args.warmup_sent = args.spans * load(tool, daemon, daemon.ports["otlp"], "/v1/traces", 1, args.threads, body, patch=True,
         backoff_ms=args.backoff_ms)["requests"]
    # Stored spans of the warm-up, counted out of the measured row's stored count.
    time.sleep(1)
    args.warmup_spans = wait_stored(daemon, prefix, 1 << 62, timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--seconds", type=float, default=5, help="length of each measurement")
    parser.add_argument("--threads", type=int, default=4, help="client connections")
    parser.add_argument("--spans", type=int, default=512, help="spans per export")
    parser.add_argument("--backoff-ms", type=int, default=100,
                        help="a client connection's pause after a 503 before it sends again")
    parser.add_argument("--iterations", type=int, default=400,
                        help="decode+map iterations of the in-process row")
    args = parser.parse_args()
    build = pathlib.Path(args.build)
    binary, tool, bench = (build / "src/telemetryd", build / "bench/http_load",
                           build / "bench/otlp_bench")
    for path in (binary, tool, bench):
        if not path.exists():
            sys.exit(f"{path} is missing: ninja -C {build} src/telemetryd bench/http_load "
                     "bench/otlp_bench")
    brokers = os.environ.get("TELEMETRYD_TEST_KAFKA_BROKERS")
    mongo = os.environ.get("TELEMETRYD_TEST_MONGO_URI")
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}/"
    rows, notes = [], []

    inproc = json.loads(subprocess.run(
        [str(bench), "--spans", str(args.spans), "--iterations", str(args.iterations),
         "--model-prefix", prefix],
        check=True, capture_output=True, text=True).stdout)

    with tempfile.TemporaryDirectory(prefix="telemetryd-otlp-bench-") as tmp:
        body = pathlib.Path(tmp) / "traces.pb"
        made = json.loads(subprocess.run(
            [str(bench), "--spans", str(args.spans), "--write-body", str(body),
             "--model-prefix", prefix], check=True, capture_output=True, text=True).stdout)
        common = ["--set", "http.listen=127.0.0.1:0", "--set", "otlp.listen=127.0.0.1:0",
                  "--set", "http.max_connections=4096", "--set", "daemon.log_level=info"]

        data = pathlib.Path(tmp) / "data"
        daemon = Daemon(binary, tmp, "all", [
            "--role", "all", "--config", str(ROOT / "config/roles/all.yaml"), *common,
            "--set", f"embedded.data_dir={data}", "--set", "synthetic.sample_interval_ms=60000"])
        try:
            warm_up(tool, daemon, body, args, prefix)
            rows.append(traces_row("all role: POST /v1/traces -> SQLite", tool, daemon, body,
                                   args.spans, args, prefix))
            rows.append(plain_row("all role: GET /health (ceiling)", tool, daemon,
                                  daemon.ports["http"], "/health", args))
            all_problems = daemon.problems()
        finally:
            daemon.stop()

        if not brokers or not mongo:
            notes.append("Kafka rows skipped: TELEMETRYD_TEST_KAFKA_BROKERS and "
                         "TELEMETRYD_TEST_MONGO_URI are unset (scripts/services.sh up; "
                         ". .services/env)")
            kafka_problems = {}
        else:
            topic = f"bench-otlp-{run_id}"
            daemon = Daemon(binary, tmp, "processor", [
                "--role", "processor", *common,
                "--set", f"kafka.brokers={brokers}", "--set", f"mongodb.uri={mongo}",
                "--set", f"mongodb.database=bench{run_id}",
                "--set", f"processor.group_id=bench-otlp-{run_id}",
                "--set", "otlp.enabled=true", "--set", "otlp.auth=none",
                "--set", f"ingest.topics.token_usage={topic}",
                "--set", f"processor.topics.token_usage={topic}",
                "--set", "ingest.enabled=true", "--set", "ingest.auth=none",
                "--set", "processor.query.auth=none",
                "--set", "ingest.rate_limit_per_s=0", "--set", "ingest.ceiling_endpoint=true",
                "--set", f"http.body_limit_bytes={max(1 << 20, 2 * made['bytes'])}"], topic=topic)
            try:
                warm_up(tool, daemon, body, args, prefix)
                # The ceiling first: after the traces row, the same process keeps consuming and
                # storing into MongoDB for minutes.
                ceiling_row = plain_row("processor: POST /v1/ceiling, same body", tool, daemon,
                                        daemon.ports["http"], "/v1/ceiling", args, body)
                rows.append(traces_row("processor: POST /v1/traces -> Kafka", tool, daemon, body,
                                       args.spans, args, prefix, wait=10))
                rows[-1]["mongo_inserted_by_then"] = daemon.metric(
                    "processor_db_writes_total", 'collection="token_usage"') - args.warmup_spans
                rows.append(ceiling_row)
                kafka_problems = daemon.problems()
            finally:
                daemon.stop()
            # The stored column of the Kafka row: what reached the topic, read with Kafka's own
            # tool (the processor's consumer is held back by the MongoDB writes, see the note).
            kafka_row = next(r for r in rows if r["name"].endswith("-> Kafka"))
            kafka_row["consumed_by_then"] = kafka_row["stored"]
            in_topic = topic_records(brokers, topic)
            if in_topic is None:
                notes.append("Kafka row: GetOffsetShell failed; stored = consumed back by then")
            else:
                kafka_row["stored"] = in_topic - args.warmup_sent

    print(f"{args.spans} GenAI spans per export ({made['bytes']} bytes protobuf, "
          f"{made['bytes'] / args.spans:.0f} B/span), {args.threads} keep-alive connections, "
          f"{args.seconds:g} s per row; CPU = telemetryd's utime+stime")
    print("stored: all role: rows in SQLite (/v1/usage, this run's models); processor: records in "
          "the Kafka topic (GetOffsetShell)")
    print(f"{'row':42}{'req/s':>9}{'spans/s':>11}{'CPU us/span':>13}{'sent (200)':>11}"
          f"{'stored':>10}{'503s':>7}{'other':>7}{'RSS MiB':>9}")
    print(f"{'decode+map in-process (1 core, CPU time)':42}{'':>9}"
          f"{inproc['decode_map_spans_per_s']:>11.0f}{inproc['decode_map_ns_per_span'] / 1e3:>13.2f}")
    print(f"{'  of which decode':42}{'':>9}{inproc['decode_spans_per_s']:>11.0f}"
          f"{inproc['decode_ns_per_span'] / 1e3:>13.2f}")
    for r in rows:
        busy = r["failures"].get("503", 0)
        failed = f"{busy:>7}{r['failed'] - busy:>7}{r['rss_mib']:>9.1f}"
        if "spans_per_s" in r:
            print(f"{r['name']:42}{r['per_second']:>9.0f}{r['spans_per_s']:>11.0f}"
                  f"{r['cpu_us_per_span']:>13.2f}{r['sent_spans']:>11}{r['stored']:>10}{failed}")
        else:
            print(f"{r['name']:42}{r['per_second']:>9.0f}{'':>11}"
                  f"{format(r['cpu_us_per_request'], '.1f') + ' /req':>13}{'':>11}{'':>10}"
                  f"{failed}")
    by_name = {r["name"]: r for r in rows}
    ceiling = by_name.get("processor: POST /v1/ceiling, same body")
    for traces in ("all role: POST /v1/traces -> SQLite", "processor: POST /v1/traces -> Kafka"):
        if traces not in by_name:
            continue
        t = by_name[traces]
        line = (f"{traces}: {t['spans_per_s'] / inproc['decode_map_spans_per_s']:.3f} of "
                "decode+map's spans/s (one core)")
        if ceiling:
            line += (f", {t['per_second'] / ceiling['per_second']:.3f} of the requests/s of "
                     "POST /v1/ceiling with the same body")
        print(line)
        record("otlp", traces.replace("POST /v1/traces ", "OTLP "), t["spans_per_s"], "spans/s",
               "decode+map in-process, one core", inproc["decode_map_spans_per_s"],
               ">= 100,000/core decode+map")
    for name, problems in (("all role", all_problems), ("processor", kafka_problems)):
        if problems:
            print(f"{name} warnings/errors in the log: {problems}")
    if "kafka_row" in locals():
        print(f"processor, 10 s after the row: {kafka_row['consumed_by_then']} read back "
              f"from the topic, {kafka_row['mongo_inserted_by_then']} inserted into MongoDB "
              "(the same process consumes and stores: bench/processor measures that path)")
    for note in notes:
        print(note)
    print(json.dumps({"in_process": inproc, "body": made, "rows": rows}))


if __name__ == "__main__":
    main()
