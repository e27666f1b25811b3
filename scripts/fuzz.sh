#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz (clang, ASan+UBSan, the core instrumented for
# coverage) and runs each for a bounded time on a copy of its seed corpus (docs/fuzzing.md).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 60 seconds each, every target)
#
# Writes build-fuzz/fuzz.junit.xml (one testcase per target, a failure with the crash summary)
# and prints per target: executions, exec/s, coverage (cov:, ft:) and corpus size. Crashing
# inputs are kept in build-fuzz/fuzz-artifacts/TARGET/; the repo's corpus is never written.
# Exit status: 0 when every target ran its time without a finding, 1 otherwise.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}
shift || true
all_targets=(event_decoder config_loader http_request otlp_decoder exposition)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
jobs=${TELEMETRYD_BUILD_JOBS:-2}
build=build-fuzz
junit=$build/fuzz.junit.xml
artifacts=$build/fuzz-artifacts

say() { printf 'fuzz: %s\n' "$*"; }

# Largest input per target: events and role files are small; HTTP needs room to reach the
# (lowered) 1 KiB header limit and the 256-byte body limit; an OTLP body holds a batch of spans,
# an exposition a few histogram series.
declare -A max_len=([event_decoder]=4096 [config_loader]=4096 [http_request]=3072 [otlp_decoder]=65536
  [exposition]=8192)

# Crash summaries quote arbitrary input: replace what is not UTF-8 or not allowed in XML.
xml_escape() {
  python3 -c '
import re, sys, xml.sax.saxutils as x
text = sys.stdin.buffer.read().decode("utf-8", "replace")
text = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "?", text)
print(x.escape(text, {"\"": "&quot;"}), end="")'
}

declare -A result summary stats duration
write_junit() {
  local failures=0 t
  for t in "${targets[@]}"; do [ "${result[$t]:-failed}" = ok ] || failures=$((failures + 1)); done
  {
    printf '<?xml version="1.0" encoding="UTF-8"?>\n'
    printf '<testsuites><testsuite name="fuzz" tests="%d" failures="%d">\n' "${#targets[@]}" "$failures"
    for t in "${targets[@]}"; do
      printf '  <testcase classname="fuzz" name="%s" time="%s">\n' "$t" "${duration[$t]:-0}"
      if [ "${result[$t]:-failed}" != ok ]; then
        printf '    <failure message="%s">%s</failure>\n' \
          "$(printf '%s' "${summary[$t]:-not run}" | head -c 300 | xml_escape)" \
          "$(printf '%s' "${summary[$t]:-not run}" | xml_escape)"
      fi
      printf '    <system-out>%s</system-out>\n' "$(printf '%s' "${stats[$t]:-}" | xml_escape)"
      printf '  </testcase>\n'
    done
    printf '</testsuite></testsuites>\n'
  } >"$junit"
}

mkdir -p "$build"
rm -f "$junit"
if [ ! -f "$build/build.ninja" ]; then
  say "configuring $build (clang, ASan+UBSan, -Dfuzz=true)"
  if ! CXX=${FUZZ_CXX:-clang++} meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dintegration_tests=false; then
    for t in "${targets[@]}"; do summary[$t]="meson setup of $build failed"; done
    write_junit
    exit 1
  fi
fi
# Only the fuzz executables and what they link: not the daemon, the tests or the benchmarks.
build_start=$(date +%s)
if ! ninja -C "$build" -j "$jobs" "${targets[@]/#/fuzz/fuzz_}"; then
  for t in "${targets[@]}"; do summary[$t]="build of fuzz/fuzz_$t failed"; done
  write_junit
  exit 1
fi
say "build took $(($(date +%s) - build_start)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/telemetryd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  cp -r "fuzz/corpus/$t" "$corpus"
  mkdir -p "$work/artifacts-$t"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]:-4096}"
    -print_final_stats=1 -artifact_prefix="$work/artifacts-$t/")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  log="$work/$t.log"
  say "$t: ${seconds} s on a copy of fuzz/corpus/$t ($(ls "fuzz/corpus/$t" | wc -l) seeds)"
  started=$(date +%s)
  # TMPDIR inside the work folder: the loader target writes its role file there.
  TMPDIR="$work" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    timeout --kill-after=30 $((seconds + 120)) "$build/fuzz/fuzz_$t" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  duration[$t]=$(($(date +%s) - started))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  stats[$t]="executions=${execs:-?} exec/s=${rate:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} (inputs/size)"
  if [ $rc -eq 0 ]; then
    result[$t]=ok
    say "$t: ok: ${stats[$t]}"
  else
    status=1
    mkdir -p "$artifacts/$t"
    cp "$work/artifacts-$t/"* "$artifacts/$t/" 2>/dev/null || true
    cp "$log" "$artifacts/$t/fuzz.log"
    finding=$(grep -m1 -E 'invariant violated:|^SUMMARY:|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:' "$log")
    input=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    [ -n "$input" ] && input="$artifacts/$t/$(basename "$input")"
    summary[$t]="${finding:-exit status $rc} (input: ${input:-none}; log: $artifacts/$t/fuzz.log)"
    say "$t: FAILED: ${summary[$t]}"
    say "$t: ${stats[$t]}"
    grep -E -A25 'invariant violated:|ERROR: (AddressSanitizer|libFuzzer)|runtime error:' "$log" | head -40
  fi
done
write_junit
say "report: $junit"
exit $status
