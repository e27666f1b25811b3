#!/usr/bin/env bash
# Checks of the observability and provisioning files (deploy/, cloud-init/), one JUnit testcase
# each, written to "${TELEMETRYD_JUNIT_DIR:-build}/ops-observe.junit.xml". Runs every check even
# after a failure; exits 1 if any failed.
#
#   promtool check config / check rules / test rules   deploy/prometheus/
#   dashboard JSON valid with every required panel     deploy/grafana/telemetryd.json
#     (the GPU panels on the per-GPU series, one series per GPU)
#   cloud-init schema, one testcase per file          cloud-init/*.yaml
#   the role files cloud-init writes pass `telemetryd check-config` (skipped without the binary)
#   prometheus-scrape (when the prometheus binary exists): a real Prometheus scrapes a running
#     telemetryd and the HTTP API returns a positive value. With TELEMETRYD_TEST_KAFKA_BROKERS set
#     it runs `--role producer` against those brokers and queries producer_messages_sent_total;
#     otherwise `--role all` (embedded, no Kafka) and processor_db_writes_total.
#   prometheus-scrape-gpu: the same with `--role gpu-exporter` on the fake NVML
#     (TELEMETRYD_FAKE_NVML, default build/tests/unit/libfake_nvml.so beside the binary's build
#     tree): `max by (uuid) (telemetryd_gpu_utilization_ratio)` answers one series per GPU.
#
# Environment: TELEMETRYD_BIN (default build/src/telemetryd), TELEMETRYD_OBS_PROM_PORT (19090),
# TELEMETRYD_OBS_HTTP_PORT (18810), TELEMETRYD_OBS_WAIT_S (60).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
junit_dir=${TELEMETRYD_JUNIT_DIR:-build}
junit="$junit_dir/ops-observe.junit.xml"
bin=${TELEMETRYD_BIN:-build/src/telemetryd}
prom_port=${TELEMETRYD_OBS_PROM_PORT:-19090}
http_port=${TELEMETRYD_OBS_HTTP_PORT:-18810}
wait_s=${TELEMETRYD_OBS_WAIT_S:-60}

work=$(mktemp -d "${TMPDIR:-/tmp}/ops-observe.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source-path=SCRIPTDIR source=lib/check-cases.sh
. "$root/scripts/lib/check-cases.sh"

check_dashboard() {
  python3 - deploy/grafana/telemetryd.json <<'PY'
import json, re, sys
path = sys.argv[1]
dash = json.load(open(path))
problems = []
if not 36 <= dash.get("schemaVersion", 0) <= 41:
    problems.append(f"schemaVersion {dash.get('schemaVersion')} not ~38")
variables = dash.get("templating", {}).get("list", [])
if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
    problems.append("no Prometheus datasource variable")
panels = dash.get("panels", [])
exprs = {p["title"]: " ".join(t.get("expr", "") for t in p.get("targets", [])) for p in panels}
required = {
    "producer rate": r"rate\(producer_messages_sent_total",
    "processor rate": r"rate\(processor_messages_consumed_total",
    "DB inserts/s": r"rate\(processor_db_writes_total",
    "tokens per model": r"rate\(processor_token_usage_tokens_total.*by \(model\)|by \(model\).*rate\(processor_token_usage_tokens_total",
    "cost per token": r"processor_cost_per_token_usd",
    "consumer lag": r"processor_kafka_consumer_lag",
    "e2e latency p99": r"histogram_quantile\(0\.99,.*processor_end_to_end_latency_seconds_bucket",
}
for name, pattern in required.items():
    hits = [t for t, e in exprs.items() if re.search(pattern, e)]
    print(f"{name}: {hits if hits else 'MISSING'}")
    if not hits:
        problems.append(f"no panel queries {name} (/{pattern}/)")
# The GPU panels read the per-GPU series (docs/gpu-metrics.md), each split per GPU.
gpu_required = {
    "GPU utilisation": r"telemetryd_gpu_utilization_ratio",
    "GPU SM activity": r"telemetryd_gpu_sm_active_ratio",
    "GPU tensor activity": r"telemetryd_gpu_tensor_active_ratio",
    "GPU memory": r"telemetryd_gpu_memory_used_bytes",
    "GPU power": r"telemetryd_gpu_power_watts",
    "GPU temperature": r"telemetryd_gpu_temperature_celsius",
    "GPU throttle reasons": r"telemetryd_gpu_clock_event_reason\b.*by \([^)]*reason|by \([^)]*reason[^)]*\) \(telemetryd_gpu_clock_event_reason",
    "GPU XID errors": r"increase\(telemetryd_gpu_xid_errors_total",
    "GPU ECC errors": r"telemetryd_gpu_ecc_errors_total",
}
for name, pattern in gpu_required.items():
    hits = [t for t, e in exprs.items() if re.search(pattern, e)]
    print(f"{name}: {hits if hits else 'MISSING'}")
    if not hits:
        problems.append(f"no panel queries {name} (/{pattern}/)")
for p in panels:
    for t in p.get("targets", []):
        if "telemetryd_gpu_" in t.get("expr", "") and not re.search(r"by \([^)]*\buuid\b", t["expr"]):
            problems.append(f"GPU panel {p.get('title')} does not keep one series per GPU (by uuid)")
for p in panels:
    if not p.get("datasource", {}).get("uid") == "${datasource}":
        problems.append(f"panel {p.get('title')} does not use the datasource variable")
ids = [p.get("id") for p in panels]
if len(ids) != len(set(ids)):
    problems.append("duplicate panel ids")
for problem in problems:
    print("FAIL:", problem)
sys.exit(1 if problems else 0)
PY
}

wait_http() {  # wait_http URL SECONDS
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

# start_prometheus TAG JOB TARGET PORT: a real Prometheus on 127.0.0.1:PORT scraping TARGET
# every second as JOB, with the alert rules loaded; config, data and log under $work/*-TAG.
start_prometheus() {
  local tag=$1 job=$2 target=$3 port=$4
  mkdir -p "$work/tsdb-$tag"
  cp deploy/prometheus/alerts.yml "$work/alerts.yml"
  cat > "$work/prometheus-$tag.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: $job
    static_configs:
      - targets: ["$target"]
YML
  prometheus --config.file="$work/prometheus-$tag.yml" --storage.tsdb.path="$work/tsdb-$tag" \
    --web.listen-address="127.0.0.1:$port" > "$work/prometheus-$tag.log" 2>&1 &
  pids+=($!)
}

# poll_query PORT QUERY CHECK [ARG]: asks the Prometheus on PORT for QUERY once a second until
# the Python expression CHECK (over the result list r, and sys.argv[1] = ARG) holds or the
# caller's $deadline passes; the last answer is left in $answer.
poll_query() {
  local port=$1 query=$2 check=$3 arg=${4:-}
  while [ "$SECONDS" -lt "$deadline" ]; do
    answer=$(curl -fsS "http://127.0.0.1:$port/api/v1/query" --data-urlencode "query=$query" 2>&1)
    printf '%s' "$answer" | python3 -c "
import json, sys
r = json.load(sys.stdin)['data']['result']
sys.exit(0 if ($check) else 1)" "$arg" 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

# Stops what the case started.
stop_started() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  pids=()
}

prometheus_scrape() {
  local role metric config
  if [ -n "${TELEMETRYD_TEST_KAFKA_BROKERS:-}" ]; then
    role=producer metric=producer_messages_sent_total config=config/roles/producer.yaml
  else
    role=all metric=processor_db_writes_total config=config/roles/all.yaml
  fi
  [ -x "$bin" ] || { echo "no telemetryd binary at $bin (build it or set TELEMETRYD_BIN)"; return 1; }
  echo "role $role, metric $metric, telemetryd on 127.0.0.1:$http_port, prometheus on 127.0.0.1:$prom_port"
  mkdir -p "$work/data"
  TELEMETRYD_HTTP_LISTEN="127.0.0.1:$http_port" STATE_DIRECTORY="$work/data" \
    TELEMETRYD_KAFKA_BROKERS="${TELEMETRYD_TEST_KAFKA_BROKERS:-127.0.0.1:1}" \
    "$bin" run --role "$role" --config "$config" > "$work/telemetryd.log" 2>&1 &
  pids+=($!)
  start_prometheus scrape "telemetryd-$role" "127.0.0.1:$http_port" "$prom_port"
  local ok=0 deadline=$((SECONDS + wait_s)) answer=""
  wait_http "http://127.0.0.1:$prom_port/-/ready" "$wait_s" || echo "prometheus not ready"
  poll_query "$prom_port" "sum($metric{job=\"telemetryd-$role\"})" \
    'r and float(r[0]["value"][1]) > 0' && ok=1
  echo "last answer: $answer"
  if [ "$ok" = 1 ]; then
    echo "sum($metric) > 0 after $((SECONDS - deadline + wait_s)) s"
    # Every dashboard query must also be accepted by this real Prometheus.
    python3 - "http://127.0.0.1:$prom_port" deploy/grafana/telemetryd.json <<'PY' || ok=0
import json, sys, urllib.parse, urllib.request
base, path = sys.argv[1], sys.argv[2]
bad = 0
for p in json.load(open(path))["panels"]:
    for t in p.get("targets", []):
        q = t["expr"].replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
        url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            status = json.load(urllib.request.urlopen(url, timeout=10))["status"]
        except Exception as e:  # an HTTP 400 means a query Prometheus rejects
            status = f"error: {e}"
        print(f"dashboard query {status}: {p['title']}")
        bad += status != "success"
sys.exit(1 if bad else 0)
PY
    # The rules loaded into the real server without error.
    curl -fsS "http://127.0.0.1:$prom_port/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") not in ("ok", "unknown")]
print(f"{len(rules)} rules loaded, unhealthy: {bad}")
sys.exit(1 if bad or not rules else 0)' || ok=0
  else
    echo "no positive $metric within ${wait_s} s"
    echo "--- telemetryd log (tail)"; tail -n 20 "$work/telemetryd.log"
    echo "--- prometheus log (tail)"; tail -n 20 "$work/prometheus-scrape.log"
  fi
  stop_started
  [ "$ok" = 1 ]
}

# A real Prometheus scrapes a gpu-exporter on the fake NVML (the unit tests' stand-in library,
# built beside the binary) and answers the per-GPU query with every GPU the exporter reads.
prometheus_scrape_gpu() {
  local fake=${TELEMETRYD_FAKE_NVML:-$(dirname "$bin")/../tests/unit/libfake_nvml.so}
  local port=$((http_port + 1)) pport=$((prom_port + 1))
  [ -x "$bin" ] || { echo "no telemetryd binary at $bin (build it or set TELEMETRYD_BIN)"; return 1; }
  [ -f "$fake" ] || { echo "no fake NVML at $fake (ninja -C build tests/unit/libfake_nvml.so, or set TELEMETRYD_FAKE_NVML)"; return 1; }
  echo "gpu-exporter on the fake NVML $fake, telemetryd on 127.0.0.1:$port, prometheus on 127.0.0.1:$pport"
  TELEMETRYD_HTTP_LISTEN="127.0.0.1:$port" TELEMETRYD_NVML_INTERVAL_MS=500 \
    "$bin" run --role gpu-exporter --config config/roles/gpu-exporter.yaml \
    --set "nvml.library=$fake" > "$work/telemetryd-gpu.log" 2>&1 &
  pids+=($!)
  start_prometheus gpu telemetryd-gpu-exporter "127.0.0.1:$port" "$pport"
  local ok=0 gpus="" answer="" deadline=$((SECONDS + wait_s))
  # The exporter says how many GPUs it reads once it is ready.
  while [ "$SECONDS" -lt "$deadline" ] && [ -z "$gpus" ]; do
    gpus=$(curl -fsS "http://127.0.0.1:$port/ready" 2>/dev/null | sed -n 's/.*sampling \([0-9]*\) GPU.*/\1/p')
    [ -n "$gpus" ] || sleep 1
  done
  echo "the exporter reads ${gpus:-no} GPUs"
  wait_http "http://127.0.0.1:$pport/-/ready" "$wait_s" || echo "prometheus not ready"
  # One series per GPU, each with its own non-empty uuid.
  [ -n "$gpus" ] && poll_query "$pport" \
    'max by (uuid) (telemetryd_gpu_utilization_ratio{job="telemetryd-gpu-exporter"})' \
    'len(r) == int(sys.argv[1]) and all(s["metric"].get("uuid") for s in r) and len({s["metric"]["uuid"] for s in r}) == len(r)' \
    "$gpus" && ok=1
  echo "last answer: $answer"
  if [ "$ok" = 1 ]; then
    echo "max by (uuid) (telemetryd_gpu_utilization_ratio): one series for each of the $gpus GPUs"
    # The dashboard's GPU panels are accepted, and those every GPU feeds return data.
    python3 - "http://127.0.0.1:$pport" deploy/grafana/telemetryd.json <<'PY' || ok=0
import json, sys, urllib.parse, urllib.request
base, path = sys.argv[1], sys.argv[2]
bad = 0
for p in json.load(open(path))["panels"]:
    # Readings every GPU of the fake NVML has: their panels' first query must return data.
    needs_data = p.get("title", "").startswith(("GPU utilisation", "GPU memory", "GPU temperature"))
    for i, t in enumerate(p.get("targets", [])):
        if "telemetryd_gpu_" not in t["expr"]:
            continue
        q = t["expr"].replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
        url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            answer = json.load(urllib.request.urlopen(url, timeout=10))
            status, n = answer["status"], len(answer["data"]["result"])
        except Exception as e:  # an HTTP 400 means a query Prometheus rejects
            status, n = f"error: {e}", 0
        print(f"dashboard query {status}, {n} series: {p['title']} ({t['refId']})")
        bad += status != "success"
        bad += needs_data and i == 0 and n == 0
sys.exit(1 if bad else 0)
PY
  else
    echo "no answer with $gpus GPUs within ${wait_s} s"
    echo "--- telemetryd log (tail)"; tail -n 20 "$work/telemetryd-gpu.log"
    echo "--- prometheus log (tail)"; tail -n 20 "$work/prometheus-gpu.log"
  fi
  stop_started
  [ "$ok" = 1 ]
}

if command -v promtool >/dev/null 2>&1; then
  run_case "promtool check config" promtool check config deploy/prometheus/prometheus.yml
  run_case "promtool check rules" promtool check rules deploy/prometheus/alerts.yml
  run_case "promtool test rules" promtool test rules deploy/prometheus/alerts_test.yml
else
  for c in "check config" "check rules" "test rules"; do
    n=$((n + 1)); echo "promtool not found (Debian package prometheus)" > "$work/case$n.out"
    record "promtool $c" fail 0 "$work/case$n.out"
  done
fi
run_case "grafana dashboard" check_dashboard
for f in cloud-init/*.yaml; do
  if command -v cloud-init >/dev/null 2>&1; then
    run_case "cloud-init schema $(basename "$f")" cloud-init schema --config-file "$f"
  else
    n=$((n + 1)); echo "cloud-init not found (Debian package cloud-init)" > "$work/case$n.out"
    record "cloud-init schema $(basename "$f")" fail 0 "$work/case$n.out"
  fi
done
role_files() {  # the role files cloud-init writes, with example values, pass check-config
  local r
  for r in processor producer worker gpu-exporter; do
    python3 - "$r" "$work/role-$r.yaml" <<'PY' || return 1
import sys, yaml
role, out = sys.argv[1], sys.argv[2]
files = yaml.safe_load(open(f"cloud-init/{role}.yaml"))["write_files"]
# The role file is staged outside /etc/telemetryd (see the file) and installed after the .deb.
text = [f["content"] for f in files if f["path"].endswith(f"/{role}.yaml")][0]
for var, value in {"${kafka_bootstrap}": "10.0.1.10:9092", "${mongodb_uri}": "mongodb://10.0.1.11:27017/",
                   "${gpu_model}": "A100 40GB", "${price_per_hour_usd}": "1.10", "${producer_rate}": "100",
                   "${gpu_sample_interval_ms}": "1000", "${gpu_metrics_naming}": "telemetryd"}.items():
    text = text.replace(var, value)
open(out, "w").write(text)
PY
    "$bin" check-config "$work/role-$r.yaml" || return 1
  done
}
if [ -x "$bin" ]; then
  run_case "cloud-init role files pass check-config" role_files
else
  skip_case "cloud-init role files pass check-config" "no telemetryd binary at $bin"
fi
if command -v prometheus >/dev/null 2>&1; then
  run_case "prometheus scrapes telemetryd" prometheus_scrape
  run_case "prometheus scrapes a gpu-exporter per GPU" prometheus_scrape_gpu
else
  skip_case "prometheus scrapes telemetryd" "prometheus binary not found"
  skip_case "prometheus scrapes a gpu-exporter per GPU" "prometheus binary not found"
fi

write_cases_junit "$junit" ops-observe
echo "ops-observe: $((n - failed)) of $n passed or skipped, $failed failed; report: $junit"
[ "$failed" = 0 ]
