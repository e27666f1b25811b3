#!/usr/bin/env bash
# The stall hunt (issue: "after a FerretDB restart the processor stored nothing more while /ready
# said 200"): a processor and a producer run against the local test services while FerretDB is
# restarted again and again. After each restart the processor must store again within
# REPRO_RECOVER_S, or /ready must say 503; a restart after which it stores nothing while /ready
# says 200 is the stall, and the script stops there with the logs kept.
#
# Usage: scripts/ferretdb-restart-repro.sh [RESTARTS]   (default 50)
# Needs `scripts/services.sh up kafka ferretdb` and its env (. <state>/env).
# Environment (defaults): REPRO_RATE=400 (events/s) REPRO_PORT=28510 (processor; producer +1)
#   REPRO_RECOVER_S=60 REPRO_DOWN_S=2 (seconds FerretDB stays down) TELEMETRYD_BIN
# Prints one line per restart (down, recovery seconds, /ready while not storing), then the
# errors the processor met, by code and class (processor_store_errors_total) and by message.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESTARTS=${1:-50}
RATE=${REPRO_RATE:-400}
PORT=${REPRO_PORT:-28510}
RECOVER=${REPRO_RECOVER_S:-60}
DOWN=${REPRO_DOWN_S:-2}
BIN=${TELEMETRYD_BIN:-$root/build/src/telemetryd}
say() { printf 'repro: %s\n' "$*"; }
[[ -n ${TELEMETRYD_TEST_KAFKA_BROKERS:-} && -n ${TELEMETRYD_TEST_MONGO_URI:-} ]] ||
    { say "source the services' env first"; exit 2; }
mongo_port=${TELEMETRYD_TEST_MONGO_URI##*:}
mongo_port=${mongo_port%%/*}
export TELEMETRYD_MONGO_PORT=$mongo_port

work=$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-repro.XXXXXX")
suffix=$$
db=repro_$suffix
proc_pid='' prod_pid=''
cleanup() {
    [[ -n $proc_pid ]] && kill -TERM "$proc_pid" 2>/dev/null
    [[ -n $prod_pid ]] && kill -TERM "$prod_pid" 2>/dev/null
    wait 2>/dev/null
    "$root/scripts/services.sh" up ferretdb >/dev/null 2>&1
    python3 "$root/scripts/lib/mongo_wire.py" drop "$TELEMETRYD_TEST_MONGO_URI" "$db" 2>/dev/null
    say "logs in $work"
}
trap cleanup EXIT

common=(--set "kafka.brokers=$TELEMETRYD_TEST_KAFKA_BROKERS"
    --set "producer.topics.gpu_metrics=repro-gpu-$suffix" --set "producer.topics.token_usage=repro-usage-$suffix")
"$BIN" run --role processor --set processor.query.auth=none --set "http.listen=127.0.0.1:$PORT" --set "kafka.brokers=$TELEMETRYD_TEST_KAFKA_BROKERS" \
    --set "mongodb.uri=$TELEMETRYD_TEST_MONGO_URI" --set "mongodb.database=$db" \
    --set "processor.group_id=repro-$suffix" --set "processor.topics.gpu_metrics=repro-gpu-$suffix" \
    --set "processor.topics.token_usage=repro-usage-$suffix" --set "mongodb.check_interval_ms=500" \
    --set "processor.retry_backoff_max_ms=2000" >"$work/processor.log" 2>&1 &
proc_pid=$!
"$BIN" run --role producer --set "http.listen=127.0.0.1:$((PORT + 1))" "${common[@]}" \
    --set "producer.rate=$RATE" >"$work/producer.log" 2>&1 &
prod_pid=$!

writes() {
    curl -s -m 2 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
        awk '/^processor_db_writes_total/ { s += $NF } END { printf "%d", s }'
}
ready() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/ready"; }

for _ in $(seq 60); do [[ $(ready) == 200 && $(writes) -gt 0 ]] && break; sleep 1; done
[[ $(writes) -gt 0 ]] || { say "the processor never stored anything"; exit 1; }

stalls=0
for i in $(seq "$RESTARTS"); do
    sleep $((2 + RANDOM % 4)) # mid-batch at a random moment
    "$root/scripts/services.sh" down ferretdb >/dev/null 2>&1
    sleep "$DOWN"
    before=$(writes)
    up_at=$SECONDS
    "$root/scripts/services.sh" up ferretdb >/dev/null 2>&1
    recovered='' ready_while_idle=0
    while ((SECONDS - up_at < RECOVER)); do
        now=$(writes)
        if ((now > before)); then recovered=$((SECONDS - up_at)); break; fi
        [[ $(ready) == 200 ]] && ((ready_while_idle++))
        sleep 0.5
    done
    if [[ -z $recovered ]]; then
        stalls=$((stalls + 1))
        say "restart $i: STALL: nothing stored for ${RECOVER}s after FerretDB came back; /ready said 200 on $ready_while_idle polls, now $(ready)"
        curl -s "http://127.0.0.1:$PORT/ready" >"$work/ready-at-stall.json"
        curl -s "http://127.0.0.1:$PORT/metrics" >"$work/metrics-at-stall.txt"
        break
    fi
    say "restart $i: storing again ${recovered}s after FerretDB was up (/ready 200 while not yet storing: $ready_while_idle polls)"
done
say "restarts done: $i, stalls: $stalls"
say "errors by code and class:"
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^processor_store_errors_total' | sed 's/^/  /'
say "store errors by message (processor log):"
grep -o '"msg":"\(store [^"]*\|dependency [^"]*\)"[^}]*"error":"[^"]\{0,120\}' "$work/processor.log" |
    sed 's/[0-9]\{2,\}/N/g' | sort | uniq -c | sort -rn | head -20 | sed 's/^/  /'
((stalls == 0))
