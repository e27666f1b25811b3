#!/usr/bin/env python3
"""Archive benchmark driver: runs build/bench/archive_bench (the batcher into a directory and,
with TELEMETRYD_TEST_S3_* set, into versitygw, beside gzip alone over the same NDJSON) and
records its rates for bench/run.sh's table. Measured, never asserted."""
import argparse
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from summary import record  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--records", type=int, default=200000)
    args = parser.parse_args()
    tool = pathlib.Path(args.build) / "bench/archive_bench"
    if not tool.exists():
        sys.exit(f"{tool} is missing: ninja -C {args.build} bench/archive_bench")
    proc = subprocess.run([str(tool), "--records", str(args.records)], capture_output=True, text=True)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        sys.exit(f"archive_bench failed:\n{proc.stderr}")
    rates = {m.group(1).strip(): float(m.group(2))
             for m in re.finditer(r"^(.{28}) +(\d+) records/s", proc.stdout, re.M)}
    gzip_only = rates.get("baseline: gzip only")
    for name in ("batcher -> filesystem", "batcher -> s3 (versitygw)"):
        if name in rates:
            record("archive", name, rates[name], "records/s", "gzip alone, same batches", gzip_only)


if __name__ == "__main__":
    main()
