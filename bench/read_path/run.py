#!/usr/bin/env python3
"""Read-path benchmark: GET /gpu/info and /v1/devices with a large stored history, beside GET
/health of the same daemon, for the all role (embedded SQLite) and the processor role (FerretDB).

For each store: start the daemon once on a new database (it creates its tables and indexes), stop
it, fill --gpus x --samples GPU samples straight into the database with build/bench/read_path_fill
(the documents the daemon writes, one per GPU per second ending now; the latest view is dropped,
as a database from before it has none), start the daemon again and time its start to the first
/v1/devices that lists every GPU (the view filled from history), then load each route for
--seconds with bench/http_load (keep-alive, --threads connections): requests/s, p50 and p99.
Routes:
  /health                       the HTTP ceiling of the same daemon
  /gpu/info                     the newest sample of any GPU
  /gpu/info?gpu_uuid=<one GPU>  one GPU's newest sample (GPU number --gpus / 2)
  /v1/devices                   every GPU's newest sample
  /v1/usage?group_by=model|tenant&from=..&to=..
                                --usage-days of token usage (SQLite only; filled beside the
                                samples, its rollups dropped so the start marks and rolls up
                                every minute, as after an upgrade), measured once the rollup
                                counter has covered them; range cut mid-minute at both ends

--binary runs another build (e.g. the release before the view) for a before/after comparison;
give it a smaller fill when the old read path is too slow at 1,000,000. The processor rows need
the services (TELEMETRYD_TEST_KAFKA_BROKERS, TELEMETRYD_TEST_MONGO_URI: scripts/services.sh up
kafka ferretdb) and are skipped without them. Measured, never asserted: the script fails only
when a run itself fails. Builds nothing:
ninja -C build src/telemetryd bench/http_load bench/read_path_fill.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402


def progress(text):
    print(text, file=sys.stderr, flush=True)


class Daemon:
    def __init__(self, binary, workdir, name, argv):
        self.log_path = pathlib.Path(workdir) / f"{name}.log"
        self.log = open(self.log_path, "w+")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(binary), "run", *argv], cwd=workdir, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and self.port is None:
            for line in self.text().splitlines():
                if '"msg":"listening"' in line and '"listener":"main"' in line:
                    self.port = json.loads(line)["port"]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            sys.exit(f"telemetryd ({name}) did not start listening:\n{self.text()[-3000:]}")

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def get(self, path, timeout=60):
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()

    def wait_devices(self, gpus, timeout):
        """Seconds from start until /v1/devices lists at least `gpus` GPUs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"telemetryd exited:\n{self.text()[-3000:]}")
            try:
                devices = json.loads(self.get("/v1/devices", timeout=timeout))["devices"]
                if len(devices) >= gpus:
                    return time.monotonic() - self.started
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        sys.exit(f"/v1/devices did not list {gpus} GPUs within {timeout} s:\n{self.text()[-3000:]}")

    def wait_rolled(self, minutes, timeout):
        """Seconds until the pricer has rolled up `minutes` usage minutes (the filled ones)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            lines = self.get("/metrics").splitlines()
            if not any(line.startswith("processor_usage_rollups_total") for line in lines):
                return None  # a release without rollups (--binary): its answers read requests
            for line in lines:
                if line.startswith("processor_usage_rollups_total ") and \
                        float(line.split()[1]) >= minutes:
                    return time.monotonic() - started
            time.sleep(0.5)
        sys.exit(f"{minutes} usage minutes were not rolled up within {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(tool, daemon, target, args):
    argv = [str(tool), "--port", str(daemon.port), "--target", target, "--mode", "keepalive",
            "--seconds", str(args.seconds), "--threads", str(args.threads)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if not proc.stdout.strip():
        sys.exit(f"http_load failed: {proc.stderr}")
    result = json.loads(proc.stdout)
    result["target"] = target
    return result


def fill(tool, argv):
    progress(f"filling: {' '.join(argv)}")
    proc = subprocess.run([str(tool), *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"read_path_fill failed: {proc.stderr}")
    return json.loads(proc.stdout)


def measure(name, tools, daemon_args, fill_argv, args, workdir, reuse=False, usage_days=0):
    binary, load_tool, fill_tool = tools
    if reuse:  # filled by an earlier run: drop the view only (no samples)
        fill(fill_tool, fill_argv[:-1] + ["0"])
        filled = {"samples": args.gpus * args.samples, "seconds": 0}
    else:
        progress(f"{name}: creating the database")
        first = Daemon(binary, workdir, f"{name}-create", daemon_args)
        first.wait_devices(0, 120)
        first.stop()
        filled = fill(fill_tool, fill_argv)
    progress(f"{name}: starting on the filled database")
    daemon = Daemon(binary, workdir, name, daemon_args)
    try:
        ready_s = daemon.wait_devices(args.gpus, args.start_timeout)
        progress(f"{name}: warming up")
        for target in ("/health", "/gpu/info", "/v1/devices"):
            daemon.get(target, timeout=args.start_timeout)
        rows = []
        one_gpu = f"GPU-readpath-{args.gpus // 2:04d}"  # read_path_fill's names
        targets = ["/health", "/gpu/info", f"/gpu/info?gpu_uuid={one_gpu}", "/v1/devices"]
        rolled_s = None
        if usage_days:
            rolled_s = daemon.wait_rolled(usage_days * 1440, args.start_timeout)
            # The whole filled range, cut at both ends (partial minutes read from requests).
            now = time.time()
            since = time.strftime("%Y-%m-%dT%H:%M:%S.500Z", time.gmtime(now - usage_days * 86400))
            until = time.strftime("%Y-%m-%dT%H:%M:%S.500Z", time.gmtime(now))
            for group in ("model", "tenant"):
                targets.append(f"/v1/usage?group_by={group}&from={since}&to={until}")
        for target in targets:
            progress(f"{name}: measuring {target}")
            rows.append(load(load_tool, daemon, target, args))
        return {"name": name, "fill": filled, "ready_s": ready_s, "rows": rows,
                "usage_days": usage_days, "rolled_s": rolled_s}
    finally:
        daemon.stop()


def report(result):
    fill_info = result["fill"]
    print(f"\n{result['name']}: {fill_info['samples']:,} samples filled in "
          f"{fill_info['seconds']:.1f} s; start to every GPU in /v1/devices "
          f"{result['ready_s']:.1f} s")
    print(f"{'route':40}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'failed':>8}")
    for r in result["rows"]:
        print(f"{r['target']:40}{r['per_second']:10.0f}{r['p50_ms']:10.2f}{r['p99_ms']:10.2f}"
              f"{r['max_ms']:10.1f}{r['failed']:8}")
    health = result["rows"][0]
    store = result["name"].split(", ")[-1]
    samples = f"{fill_info['samples']:,} samples"
    if result.get("usage_days"):
        print(f"usage: {result['usage_days']} days of requests, " +
              (f"rolled up {result['rolled_s']:.1f} s after the start"
               if result["rolled_s"] is not None else "no rollups in this binary"))
    for r in result["rows"][1:]:
        if r["target"].startswith("/v1/usage"):
            group = r["target"].split("group_by=")[1].split("&")[0]
            record("read path", f"{store} /v1/usage by {group}, {result['usage_days']} days p99",
                   r["p99_ms"], "ms", "GET /health p99", health["p99_ms"], "< 50 ms")
            continue
        if "?" in r["target"]:
            continue
        record("read path", f"{store} {r['target']}, {samples}", r["per_second"], "req/s",
               "GET /health, same daemon", health["per_second"], ">= 20,000/s")
        record("read path", f"{store} {r['target']} p99", r["p99_ms"], "ms",
               "GET /health p99", health["p99_ms"], "<= 10 ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--binary", help="telemetryd to measure (default: the build's)")
    parser.add_argument("--gpus", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10000, help="samples per GPU")
    parser.add_argument("--seconds", type=float, default=5, help="length of each measurement")
    parser.add_argument("--threads", type=int, default=4, help="client connections")
    parser.add_argument("--stores", default="sqlite,mongodb")
    parser.add_argument("--usage-days", type=int, default=30,
                        help="days of token usage in the SQLite file for /v1/usage (0: none)")
    parser.add_argument("--usage-per-minute", type=int, default=20,
                        help="requests per minute of that usage")
    parser.add_argument("--mongo-database",
                        help="a database an earlier run filled with the same --gpus and "
                             "--samples: reused (its view dropped) instead of filled again")
    parser.add_argument("--start-timeout", type=float, default=600,
                        help="seconds the daemon may take to list every GPU after its start")
    args = parser.parse_args()
    build = pathlib.Path(args.build)
    binary = pathlib.Path(args.binary).resolve() if args.binary else build / "src/telemetryd"
    load_tool, fill_tool = build / "bench/http_load", build / "bench/read_path_fill"
    for path in (binary, load_tool, fill_tool):
        if not path.exists():
            sys.exit(f"{path} is missing: ninja -C {build} src/telemetryd bench/http_load "
                     "bench/read_path_fill")
    tools = (binary, load_tool, fill_tool)
    tag = str(int(time.time()))
    common = ["--set", "http.listen=127.0.0.1:0", "--set", "http.max_connections=4096",
              "--set", "daemon.log_level=info"]
    results = []
    with tempfile.TemporaryDirectory(prefix="telemetryd-read-path-") as tmp:
        if "sqlite" in args.stores:
            data = pathlib.Path(tmp) / "data"
            daemon_args = [
                "--role", "all", "--config", str(ROOT / "config/roles/all.yaml"), *common,
                "--set", "otlp.enabled=false", "--set", f"embedded.data_dir={data}",
                "--set", "embedded.retention_days=0", "--set", "embedded.max_size_mb=0",
                "--set", "synthetic.sample_interval_ms=60000"]
            results.append(measure(
                "all role, SQLite", tools, daemon_args,
                ["sqlite", str(data / "telemetryd.sqlite3"), str(args.gpus), str(args.samples),
                 *([str(args.usage_days), str(args.usage_per_minute)] if args.usage_days else [])],
                args, tmp, usage_days=args.usage_days))
        brokers = os.environ.get("TELEMETRYD_TEST_KAFKA_BROKERS")
        mongo = os.environ.get("TELEMETRYD_TEST_MONGO_URI")
        if "mongodb" in args.stores and brokers and mongo:
            database = args.mongo_database or f"readpath{tag}"
            daemon_args = [
                "--role", "processor", *common, "--set", f"kafka.brokers={brokers}",
                "--set", f"mongodb.uri={mongo}", "--set", f"mongodb.database={database}",
                "--set", f"processor.group_id=readpath-{tag}",
                "--set", f"processor.topics.gpu_metrics=readpath-gpu-{tag}",
                "--set", f"processor.topics.token_usage=readpath-usage-{tag}",
                "--set", "processor.query.auth=none"]
            results.append(measure(
                "processor role, FerretDB", tools, daemon_args,
                ["mongodb", mongo, database, str(args.gpus), str(args.samples)], args, tmp,
                reuse=bool(args.mongo_database)))
        elif "mongodb" in args.stores:
            progress("processor rows skipped: TELEMETRYD_TEST_KAFKA_BROKERS and "
                     "TELEMETRYD_TEST_MONGO_URI are not set (scripts/services.sh up)")
    print(f"read path: {args.gpus} GPUs x {args.samples} samples, {args.threads} keep-alive "
          f"connections, {args.seconds:g} s per route, {binary}")
    for result in results:
        report(result)


if __name__ == "__main__":
    main()
