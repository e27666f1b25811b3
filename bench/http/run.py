#!/usr/bin/env python3
"""HTTP listener benchmark: the same telemetryd (role all, GET /health) over plain HTTP and over
TLS, in the same run, measured by bench/http/http_load (C++, blocking clients, one connection
per thread).

Prints, for both: keep-alive requests/s (one connection per client thread, requests back to
back) and new connections/s (a TCP connect, plus a full TLS handshake on the TLS side, per
request). The plain numbers are the baseline; the ratios are the cost of TLS. Certificates are
made with the openssl CLI into a temporary directory (an EC P-256 CA and server certificate).
Numbers are measured, never asserted: this script fails only when a run itself fails.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(directory):
    d = pathlib.Path(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
            "-days", "2", "-subj", "/CN=bench CA")
    openssl("req", *ec, "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"),
            "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", str(d / "ext.cnf"), "-out", str(d / "server.pem"))
    return d / "ca.pem", d / "server.pem", d / "server.key"


def start_daemon(binary, workdir, extra):
    argv = [str(binary), "run", "--role", "all", "--set", "http.listen=127.0.0.1:0",
            "--set", "http.max_connections=100000", *extra]
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if '"msg":"listening"' in line:
            port = json.loads(line)["port"]
            # Drain the rest of stdout in the background so the daemon never blocks on a pipe.
            subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
            return proc, port
        if not line and proc.poll() is not None:
            break
    proc.kill()
    sys.exit("telemetryd did not start listening")


def load(tool, port, mode, seconds, threads, ca=None):
    argv = [str(tool), "--port", str(port), "--mode", mode, "--seconds", str(seconds),
            "--threads", str(threads)]
    if ca:
        argv += ["--ca", str(ca)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"http_load failed: {proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    build = pathlib.Path(args.build)
    binary, tool = build / "src/telemetryd", build / "bench/http_load"
    for path in (binary, tool):
        if not path.exists():
            sys.exit(f"{path} is missing: ninja -C {build} src/telemetryd bench/http_load")

    with tempfile.TemporaryDirectory(prefix="telemetryd-http-bench-") as tmp:
        ca, cert, key = make_certs(tmp)
        results = {}
        for name, extra in (("http", []),
                            ("https", ["--set", f"http.tls_cert_file={cert}",
                                       "--set", f"http.tls_key_file={key}"])):
            proc, port = start_daemon(binary, tmp, extra)
            try:
                tls_ca = ca if name == "https" else None
                results[name] = {
                    mode: load(tool, port, mode, args.seconds, args.threads, tls_ca)
                    for mode in ("keepalive", "connect")
                }
            finally:
                proc.terminate()
                proc.wait(timeout=15)

    print(f"GET /health, {args.threads} client threads, {args.seconds:g} s per measurement")
    print(f"{'':24}{'http':>12}{'https':>12}{'https/http':>12}")
    for mode, label in (("keepalive", "keep-alive requests/s"), ("connect", "new connections/s")):
        plain = results["http"][mode]["per_second"]
        tls = results["https"][mode]["per_second"]
        print(f"{label:24}{plain:12.0f}{tls:12.0f}{tls / plain:12.2f}")
        record("http", f"GET /health over TLS, {label}", tls, "per s", "plain HTTP", plain)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
