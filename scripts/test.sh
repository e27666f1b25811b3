#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, builds with warnings as errors,
# starts real Kafka, FerretDB and versitygw (S3) on 127.0.0.1, fetches the OpenTelemetry Python
# SDK (the OTLP tests' client), runs the unit and integration suites, the fault suite
# (scripts/resilience-test.sh: lost = 0 for every fault), the operations checks (.deb, systemd unit, Prometheus rules, cloud-init), the deployment
# checks (lean first run, container image, Helm chart, cloud-init first boot), the unit suite
# again under ASan+UBSan, each libFuzzer target for 45 s (scripts/fuzz.sh), and stops the services
# (also on failure).
# The last line is `tests: N passed, M failed[, K skipped]`, summed over every suite.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${TELEMETRYD_BUILD_JOBS:-2}
failed_steps=()

step() { printf '\n== %s\n' "$*"; }

step "bootstrap: build and test dependencies"
scripts/bootstrap.sh --test || { echo "bootstrap failed"; exit 1; }

configure() {  # configure BUILD_DIR [meson options...]
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

step "build: warnings as errors"
configure build -Dwerror=true -Dintegration_tests=true || exit 1
ninja -C build -j "$jobs" || { echo "build failed"; exit 1; }

# The deployment checks' tools (helm built from the Go module proxy: minutes when cold, then
# cached) are fetched at the lowest priority while the services start and the suites run, which
# mostly wait on I/O; scripts/deploy-checks.sh waits for them (a lock) or finds them cached.
# In a session of its own (setsid: no fork here, so $! is its leader and its group's ID), so that
# an interrupted test.sh stops it and its go builds (the EXIT traps below).
setsid nice -n 19 bash -c '. scripts/lib/services-common.sh && . scripts/lib/deploy-tools.sh &&
  td_ensure_crds && td_ensure_deploy_venv && td_ensure_helm && td_ensure_kustomize' > build/deploy-tools.log 2>&1 &
deploy_tools_pid=$!
stop_deploy_tools() {
  [ -z "$deploy_tools_pid" ] || kill -TERM -- -"$deploy_tools_pid" 2>/dev/null
  deploy_tools_pid=""
}
trap stop_deploy_tools EXIT

# Stale reports from an earlier run must never be counted.
find build build-asan -name '*.junit.xml' -delete 2>/dev/null || true
rm -f build-fuzz/fuzz.junit.xml
rm -f build/meson-logs/testlog.json build-asan/meson-logs/testlog.json

step "services: Kafka (KRaft), FerretDB, versitygw (S3), InfluxDB 1.6.7 and 1.8.10 and PostgreSQL 15 on 127.0.0.1"
trap 'stop_deploy_tools; step "services: stopping"; scripts/services.sh down' EXIT
# InfluxDB 1.8 (built once from the Go module proxy, about two minutes) serves the v2 write API.
if TELEMETRYD_WITH_INFLUXDB18="${TELEMETRYD_WITH_INFLUXDB18:-1}" scripts/services.sh up; then
  # shellcheck disable=SC1091
  . "${TELEMETRYD_SERVICES_DIR:-$root/.services}/env"
  services_up=1
else
  echo "services failed to start: the integration suite will count as failed"
  services_up=0
  failed_steps+=("services")
fi

step "test clients: the OpenTelemetry Python SDK and prometheus_client (PyPI, cached)"
# shellcheck disable=SC1091
if otel_python=$(. scripts/lib/services-common.sh && . scripts/lib/test-tools.sh && td_ensure_otel_venv); then
  export TELEMETRYD_TEST_OTEL_PYTHON=$otel_python
else
  echo "the OpenTelemetry SDK venv could not be made: the OTLP and scrape tests will fail"
fi

step "unit suite"
meson test -C build --suite unit --num-processes "$jobs" --print-errorlogs || failed_steps+=("unit")

step "integration suite (real Kafka and FerretDB)"
if [ "$services_up" = 1 ]; then
  # Appends to the same testlog.json so the counter sees both suites of this build.
  cp build/meson-logs/testlog.json build/meson-logs/testlog.unit.json
  meson test -C build --suite integration --num-processes 1 --print-errorlogs ||
    failed_steps+=("integration")
  cat build/meson-logs/testlog.unit.json build/meson-logs/testlog.json > build/meson-logs/testlog.all.json
  mv build/meson-logs/testlog.all.json build/meson-logs/testlog.json
  rm -f build/meson-logs/testlog.unit.json
fi

step "faults: the resilience suite (kill -9, broker restart, outages, rebalance storm, poison events)"
# Needs Kafka, FerretDB and versitygw from above; bounded (RESILIENCE_TIME_LIMIT_S, a few minutes).
# Writes one testcase per fault; without services its report is missing, which counts as failed.
if [ "$services_up" = 1 ]; then
  scripts/resilience-test.sh --junit build/faults.junit.xml || failed_steps+=("faults")
fi

step "operations: .deb, systemd unit and its security score"
scripts/ops-checks.sh || failed_steps+=("ops")

step "operations: Prometheus rules and scrape, Grafana, cloud-init"
scripts/ops-observe-checks.sh || failed_steps+=("ops-observe")

step "deploy: lean first run, container image, Helm chart and manifests, cloud-init first boot"
wait "$deploy_tools_pid" || { echo "fetching the deploy tools failed:"; tail -n 20 build/deploy-tools.log; }
deploy_tools_pid=""
scripts/deploy-checks.sh || failed_steps+=("deploy")

step "sanitizers: unit suite under ASan+UBSan"
configure build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
  -Dintegration_tests=false -Dbuildtype=debug || failed_steps+=("asan-configure")
if ninja -C build-asan -j "$jobs"; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --num-processes "$jobs" --print-errorlogs ||
    failed_steps+=("asan-unit")
else
  failed_steps+=("asan-build")
fi

step "fuzzing: each libFuzzer target for ${TELEMETRYD_FUZZ_SECONDS:-45} s (clang, ASan+UBSan)"
# Writes build-fuzz/fuzz.junit.xml (one case per target) even when its build fails.
scripts/fuzz.sh "${TELEMETRYD_FUZZ_SECONDS:-45}" || failed_steps+=("fuzz")

step "summary"
[ ${#failed_steps[@]} -eq 0 ] || echo "failed steps: ${failed_steps[*]}"
extra=()
for failed in "${failed_steps[@]}"; do
  case $failed in unit | integration | faults | asan-unit | ops | ops-observe | deploy | fuzz) ;; *) extra+=(--failed-step "$failed") ;; esac
done
summary=$(python3 scripts/count_tests.py "${extra[@]}" build build-asan build/faults.junit.xml \
  build/ops-checks.junit.xml build/ops-observe.junit.xml build/deploy-checks.junit.xml \
  build-fuzz/fuzz.junit.xml)
count_status=$?
trap - EXIT
step "services: stopping"
scripts/services.sh down
echo "$summary"
[ ${#failed_steps[@]} -eq 0 ] && [ "$count_status" = 0 ]
