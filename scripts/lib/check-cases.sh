# Shared by the check scripts (scripts/ops-observe-checks.sh, scripts/deploy-checks.sh): each case
# runs one command, its output kept in a file, and lands in $work/cases.tsv
# (NAME<TAB>STATUS<TAB>SECONDS<TAB>OUTPUT_FILE); write_cases_junit turns that into the JUnit report
# scripts/count_tests.py counts. Needs $work (a temp folder) set before it is sourced.
# shellcheck shell=bash

: > "$work/cases.tsv"
n=0
failed=0
record() {  # record NAME STATUS(pass|fail|skip) SECONDS OUTPUT_FILE
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$work/cases.tsv"
  printf '%-4s %s (%ss)\n' "$2" "$1" "$3"
  [ "$2" = fail ] && { failed=$((failed + 1)); sed 's/^/    | /' "$4" | tail -n 40; }
  return 0
}
run_case() {  # run_case NAME COMMAND...
  local name=$1 out start status ms
  shift
  n=$((n + 1))
  out="$work/case$n.out"
  start=$(date +%s%N)
  if "$@" > "$out" 2>&1; then status=pass; else status=fail; fi
  ms=$((($(date +%s%N) - start) / 1000000))
  record "$name" "$status" "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))" "$out"
}
skip_case() {  # skip_case NAME REASON
  n=$((n + 1))
  printf '%s\n' "$2" > "$work/case$n.out"
  record "$1" skip 0 "$work/case$n.out"
}
write_cases_junit() {  # write_cases_junit OUT_XML SUITE
  mkdir -p "$(dirname "$1")"
  python3 "$(dirname "${BASH_SOURCE[0]}")/cases_junit.py" "$work/cases.tsv" "$1" "$2"
}
