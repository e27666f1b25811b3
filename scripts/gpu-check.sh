#!/usr/bin/env bash
# Compares telemetryd's per-GPU readings with nvidia-smi's on a machine with an NVIDIA GPU:
# starts `telemetryd run --role gpu-exporter` (NVML), loads every GPU for a few seconds with a
# PyTorch matmul loop when PyTorch with CUDA is installed (idle GPUs otherwise), and prints
# utilization, memory.used, power, temperature and SM clock from both side by side.
#
# telemetryd's value is up to one sampling interval old, so it is checked against the band of
# nvidia-smi readings taken one interval before, just before and just after the scrape, widened
# by a slack per metric (utilisation is itself averaged by the driver; power.draw may be a 1 s
# average where NVML's is instant): util 10 points, memory 64 MiB, power 10% + 10 W, temperature
# 2 C, SM clock 60 MHz + 5%. Exit 0: all agree; 1: a reading disagrees; 2: cannot run.
#
#   scripts/gpu-check.sh [--interval-ms 500] [--load-seconds 8] [--rounds 3]
#
# Environment: TELEMETRYD_BIN (default build/src/telemetryd), TELEMETRYD_GPU_CHECK_PORT (18820).
# Needs nvidia-smi, curl, python3; run it as a user who can open /dev/nvidia*.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${TELEMETRYD_BIN:-$root/build/src/telemetryd}
port=${TELEMETRYD_GPU_CHECK_PORT:-18820}
interval_ms=500
load_seconds=8
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --interval-ms) interval_ms=$2; shift 2 ;;
    --load-seconds) load_seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in nvidia-smi curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "gpu-check: $tool not found" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "gpu-check: no telemetryd at $bin (build it or set TELEMETRYD_BIN)" >&2; exit 2; }
nvidia-smi -L >/dev/null 2>&1 || { echo "gpu-check: nvidia-smi sees no GPU" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" run --role gpu-exporter --set "http.listen=127.0.0.1:$port" \
  --set "nvml.sample_interval_ms=$interval_ms" > "$work/telemetryd.log" 2>&1 &
pids+=($!)
ready=0
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:$port/ready" > "$work/ready.json" 2>/dev/null; then ready=1; break; fi
  sleep 0.5
done
if [ "$ready" != 1 ]; then
  echo "gpu-check: telemetryd gpu-exporter not ready after 30 s:" >&2
  curl -sS "http://127.0.0.1:$port/ready" >&2
  tail -n 20 "$work/telemetryd.log" >&2
  exit 2
fi
echo "telemetryd: $(cat "$work/ready.json")"

if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "loading every GPU for ${load_seconds} s (PyTorch matmul)"
  python3 - "$load_seconds" > "$work/load.log" 2>&1 <<'PY' &
import sys, time, torch
end = time.time() + float(sys.argv[1])
xs = [torch.randn(8192, 8192, device=f"cuda:{i}", dtype=torch.float16)
      for i in range(torch.cuda.device_count())]
while time.time() < end:
    for x in xs:
        x @ x
    torch.cuda.synchronize()
PY
  pids+=($!)
  sleep 3  # let clocks, power and temperature rise, and telemetryd sample the load
else
  echo "PyTorch with CUDA not found: comparing idle GPUs"
fi

query=uuid,index,utilization.gpu,memory.used,power.draw,temperature.gpu,clocks.sm
smi() { nvidia-smi --query-gpu="$query" --format=csv,noheader,nounits; }
status=0
for round in $(seq 1 "$rounds"); do
  smi > "$work/smi-before.csv"
  sleep "$(awk -v ms="$interval_ms" 'BEGIN { print ms / 1000 }')"
  smi > "$work/smi-now.csv"
  curl -fsS "http://127.0.0.1:$port/metrics" > "$work/metrics.txt" || { echo "gpu-check: scrape failed" >&2; exit 2; }
  smi > "$work/smi-after.csv"
  echo "--- round $round"
  python3 - "$work" <<'PY' || status=1
import re, sys
work = sys.argv[1]
MIB = 1024 * 1024
# name in telemetryd, nvidia-smi column, telemetryd value -> nvidia-smi unit, slack(reference)
checks = [
    ("utilization %", "telemetryd_gpu_utilization_ratio", 2, lambda v: v * 100, lambda r: 10),
    ("memory.used MiB", "telemetryd_gpu_memory_used_bytes", 3, lambda v: v / MIB, lambda r: 64),
    ("power W", "telemetryd_gpu_power_watts", 4, lambda v: v, lambda r: 10 + 0.1 * r),
    ("temperature C", "telemetryd_gpu_temperature_celsius", 5, lambda v: v, lambda r: 2),
    ("sm clock MHz", "telemetryd_gpu_sm_clock_hertz", 6, lambda v: v / 1e6, lambda r: 60 + 0.05 * r),
]
values = {}
for line in open(f"{work}/metrics.txt"):
    m = re.match(r'^(telemetryd_gpu_\w+)\{[^}]*uuid="([^"]+)"[^}]*\} (\S+)$', line)
    if m:
        values[(m.group(1), m.group(2))] = float(m.group(3))
smi = {}
for name in ("before", "now", "after"):
    for row in open(f"{work}/smi-{name}.csv"):
        cols = [c.strip() for c in row.split(",")]
        smi.setdefault(cols[0], []).append(cols)
bad = 0
print(f"{'GPU':>3} {'reading':16} {'telemetryd':>11} {'nvidia-smi':>21} {'diff':>8}  result")
for uuid, rows in smi.items():
    for label, metric, col, convert, slack in checks:
        refs = []
        for r in rows:
            try:
                refs.append(float(r[col]))
            except ValueError:  # [N/A], [Not Supported]
                pass
        got = values.get((metric, uuid))
        if not refs and got is None:
            print(f"{rows[0][1]:>3} {label:16} {'-':>11} {'N/A':>21} {'':>8}  skipped (not supported)")
            continue
        if got is None or not refs:
            print(f"{rows[0][1]:>3} {label:16} {'missing' if got is None else convert(got):>11} "
                  f"{'N/A' if not refs else refs[-1]:>21} {'':>8}  DISAGREE (one side has no reading)")
            bad += 1
            continue
        v = convert(got)
        lo, hi = min(refs), max(refs)
        s = slack(hi)
        diff = 0.0 if lo <= v <= hi else (v - hi if v > hi else v - lo)
        ok = lo - s <= v <= hi + s
        bad += not ok
        band = f"{lo:.1f}" if lo == hi else f"{lo:.1f}..{hi:.1f}"
        print(f"{rows[0][1]:>3} {label:16} {v:11.1f} {band:>21} {diff:+8.1f}  "
              f"{'ok' if ok else f'DISAGREE (slack {s:.1f})'}")
sys.exit(1 if bad else 0)
PY
done
if [ "$status" = 0 ]; then
  echo "gpu-check: telemetryd agrees with nvidia-smi within one sampling interval"
else
  echo "gpu-check: telemetryd and nvidia-smi disagree (see DISAGREE above)" >&2
fi
exit "$status"
