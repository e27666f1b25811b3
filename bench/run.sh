#!/usr/bin/env bash
# Every benchmark against its baseline in one go, then one table of absolutes and ratios, so a
# change's effect on all of them is one command:
#
#   bench/run.sh [--build DIR] [--long] [BENCH...]     BENCH: producer processor read http gpu
#                                                      otlp ingest archive (default: all)
#
# The benchmarks that need Kafka, FerretDB or versitygw read their addresses from the
# environment (`scripts/services.sh up && . .services/env`; this script sources .services/env
# itself when it exists); without them those rows are reported as skipped. Default durations are
# short (about 6 minutes in all on 2 cores); --long uses each benchmark's own defaults. Each
# benchmark's full output is kept in <build>/bench-logs/. Measured, never asserted: the exit
# status is non-zero only when a benchmark itself failed to run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=build
long=false
selected=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --long) long=true; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/run.sh: unknown option $1" >&2; exit 64 ;;
    *) selected+=("$1"); shift ;;
  esac
done
all=(producer processor read http gpu otlp ingest archive)
[[ ${#selected[@]} -eq 0 ]] && selected=("${all[@]}")
for name in "${selected[@]}"; do
  [[ " ${all[*]} " == *" $name "* ]] || { echo "bench/run.sh: unknown benchmark '$name' (${all[*]})" >&2; exit 64; }
done

if [[ -z ${TELEMETRYD_TEST_KAFKA_BROKERS:-} && -f .services/env ]]; then
  # shellcheck disable=SC1091
  . .services/env
fi
have_kafka_mongo=false
[[ -n ${TELEMETRYD_TEST_KAFKA_BROKERS:-} && -n ${TELEMETRYD_TEST_MONGO_URI:-} ]] && have_kafka_mongo=true

ninja -C "$build" src/telemetryd bench/mongo_bulk_insert bench/bson_encode_bench bench/http_load bench/archive_bench \
  bench/gpu_sample_bench bench/otlp_bench tests/unit/libfake_nvml.so >/dev/null ||
  { echo "bench/run.sh: building the benchmarks in $build failed (ninja -C $build)" >&2; exit 1; }

logs=$build/bench-logs
mkdir -p "$logs"
export BENCH_SUMMARY=$logs/summary.jsonl
: >"$BENCH_SUMMARY"

# name, needs Kafka+FerretDB, short arguments, then the command.
args_for() {
  local name=$1
  if $long; then echo ""; return; fi
  case $name in
    producer) echo "--events 50000" ;;
    processor) echo "--events 30000 --latency-seconds 10" ;;
    read) echo "--samples 1000 --seconds 3" ;;
    http) echo "--seconds 2" ;;
    gpu) echo "--seconds 4 --warmup 1" ;;
    otlp) echo "--seconds 3 --iterations 100" ;;
    ingest) echo "--seconds 5 --connections 32" ;;
    archive) echo "--records 100000" ;;
  esac
}
needs_services() { [[ $1 == producer || $1 == processor || $1 == ingest ]]; }

failed=()
skipped=()
for name in "${selected[@]}"; do
  script=bench/$name/run.py
  [[ $name == read ]] && script=bench/read_path/run.py
  if [[ ! -f $script ]]; then
    skipped+=("$name (no $script)")
    continue
  fi
  if [[ $name == ingest ]] && ! command -v wrk >/dev/null; then
    skipped+=("ingest (needs wrk: apt-get install wrk)")
    continue
  fi
  if needs_services "$name" && ! $have_kafka_mongo; then
    skipped+=("$name (needs TELEMETRYD_TEST_KAFKA_BROKERS and TELEMETRYD_TEST_MONGO_URI)")
    continue
  fi
  started=$(date +%s)
  # shellcheck disable=SC2046
  if python3 "$script" $(args_for "$name") >"$logs/$name.log" 2>&1; then
    echo "bench $name: done in $(($(date +%s) - started)) s ($logs/$name.log)"
  else
    echo "bench $name: FAILED after $(($(date +%s) - started)) s; the end of $logs/$name.log:"
    tail -n 15 "$logs/$name.log" | sed 's/^/  /'
    failed+=("$name")
  fi
done

echo
echo "telemetryd benchmarks, $(nproc) cores, build $build ($(python3 -c "import json,sys; print(next(o['value'] for o in json.load(open(sys.argv[1])) if o['name'] == 'buildtype'))" "$build/meson-info/intro-buildoptions.json")), $(date -u +%Y-%m-%dT%H:%MZ)"
python3 bench/summary.py "$BENCH_SUMMARY" || true
for s in "${skipped[@]}"; do echo "skipped: $s"; done
[[ ${#failed[@]} -eq 0 ]] || { echo "failed: ${failed[*]}"; exit 1; }
