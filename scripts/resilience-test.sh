#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and the polled predicates run from traps and wait_until
# Resilience test against the local test services: injects one fault per run into a live
# producer -> Kafka -> processor -> FerretDB pipeline and checks that nothing is lost or stored
# twice.
#
# Usage: scripts/resilience-test.sh [FAULT...]
#   FAULT: processor-kill producer-kill broker-restart db-outage (default: all four, in order)
#     processor-kill  kill -9 the processor mid-run, start it again 3 s later
#     producer-kill   kill -9 the producer mid-run, start a producer for the remaining count
#     broker-restart  scripts/services.sh restart kafka mid-run
#     db-outage       scripts/services.sh down ferretdb mid-run, up again 20 s later
#
# Needs the services' env: `. <state>/env` from `scripts/services.sh up` (TELEMETRYD_TEST_*,
# TELEMETRYD_SERVICES_DIR); the ports services.sh needs for the restarts are read from that state
# (or from TELEMETRYD_KAFKA_PORT etc. when set). Loopback only.
# Environment (defaults): RESILIENCE_EVENTS=12000 RESILIENCE_RATE=800 RESILIENCE_FAULT_AT_S=5
#   RESILIENCE_PORT=28110 (processor; producer +1) RESILIENCE_TIME_LIMIT_S=900
#   TELEMETRYD_BIN=build/src/telemetryd RESILIENCE_KEEP=0 (1 keeps databases and the work folder)
#
# Each fault gets a fresh processor (own group, topics, database) and a producer run of
# RESILIENCE_EVENTS events at RESILIENCE_RATE/s; the fault is injected RESILIENCE_FAULT_AT_S after
# the producer starts. Measured per fault:
#   recovery s  from the moment the fault is removed (the killed process restarted, the service
#               up again) until the processor is ready (/ready 200) and stores again
#               (processor_db_writes_total grows); for producer-kill until the new producer is
#               ready and sends again (producer_messages_sent_total > 0)
#   produced    distinct event ids in the two topics (read back with Kafka's console consumer)
#   stored      documents in gpu_metrics + token_usage (read with scripts/lib/mongo_wire.py)
#   lost        produced ids that are not stored (set difference, by id)
#   duplicated  stored documents minus distinct stored ids (0 while _id is the event id)
# Exit 0 only when every fault shows lost 0 and duplicated 0 (and no stored id that never
# reached Kafka); 1 otherwise; 2 usage or missing services. The whole run is bounded by
# RESILIENCE_TIME_LIMIT_S; everything it started is stopped on exit.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EVENTS=${RESILIENCE_EVENTS:-12000}
RATE=${RESILIENCE_RATE:-800}
FAULT_AT=${RESILIENCE_FAULT_AT_S:-5}
PORT=${RESILIENCE_PORT:-28110}
LIMIT=${RESILIENCE_TIME_LIMIT_S:-900}
KEEP=${RESILIENCE_KEEP:-0}
BIN=${TELEMETRYD_BIN:-$root/build/src/telemetryd}
ALL_FAULTS=(processor-kill producer-kill broker-restart db-outage)

say() { printf 'resilience: %s\n' "$*"; }
die() {
    printf 'resilience: error: %s\n' "$*" >&2
    exit 2
}
usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

faults=()
for arg in "$@"; do
    case $arg in
    processor-kill | producer-kill | broker-restart | db-outage) faults+=("$arg") ;;
    -h | --help) usage ;;
    *) die "unknown fault '$arg' (faults: ${ALL_FAULTS[*]})" ;;
    esac
done
((${#faults[@]})) || faults=("${ALL_FAULTS[@]}")
for v in EVENTS RATE FAULT_AT PORT LIMIT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done

# ------------------------------------------------------------------ services and their ports
BROKERS=${TELEMETRYD_TEST_KAFKA_BROKERS:-}
MONGO=${TELEMETRYD_TEST_MONGO_URI:-}
STATE=${TELEMETRYD_SERVICES_DIR:-}
[[ -n $BROKERS && -n $MONGO && -n $STATE ]] ||
    die "source the services' env first: scripts/services.sh up && . <state>/env"
[[ -x $BIN ]] || die "no telemetryd binary at $BIN (ninja -C build src/telemetryd)"
[[ $BROKERS =~ ^127\.0\.0\.1:([0-9]+)$ ]] || die "expected one loopback broker 127.0.0.1:PORT, got '$BROKERS'"
kafka_port=${BASH_REMATCH[1]}
[[ $MONGO =~ ^mongodb://127\.0\.0\.1:([0-9]+)/?$ ]] || die "expected mongodb://127.0.0.1:PORT/, got '$MONGO'"
mongo_port=${BASH_REMATCH[1]}
controller_port=${TELEMETRYD_KAFKA_CONTROLLER_PORT:-$(sed -n 's/^controller.quorum.voters=.*:\([0-9]*\)$/\1/p' "$STATE/kafka/server.properties" 2>/dev/null)}
ferret_pid=$(tr -dc 0-9 <"$STATE/run/ferretdb.pid" 2>/dev/null)
debug_port=${TELEMETRYD_FERRETDB_DEBUG_PORT:-$(tr '\0' '\n' <"/proc/${ferret_pid:-0}/cmdline" 2>/dev/null | sed -n 's/^--debug-addr=.*:\([0-9]*\)$/\1/p')}
[[ -n $controller_port && -n $debug_port ]] ||
    die "cannot tell the Kafka controller or FerretDB debug port from $STATE; export TELEMETRYD_KAFKA_CONTROLLER_PORT and TELEMETRYD_FERRETDB_DEBUG_PORT"
# services.sh restarts must reuse exactly these ports and this state dir.
export TELEMETRYD_SERVICES_DIR=$STATE TELEMETRYD_KAFKA_PORT=$kafka_port \
    TELEMETRYD_KAFKA_CONTROLLER_PORT=$controller_port TELEMETRYD_MONGO_PORT=$mongo_port \
    TELEMETRYD_FERRETDB_DEBUG_PORT=$debug_port
services() { "$root/scripts/services.sh" "$@"; }
services status >/dev/null || die "the services in $STATE are not running (scripts/services.sh up)"

# ------------------------------------------------------------------- bookkeeping and cleanup
work=$(mktemp -d "${TMPDIR:-/tmp}/resilience-test.XXXXXX")
proc_pid='' prod_pid='' watchdog='' kafka_down=0 ferret_down=0 dbs=()
stop_pid() { # stop_pid PID: TERM, then KILL after 10 s
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$proc_pid"
    stop_pid "$prod_pid"
    if ((kafka_down)); then services up kafka >/dev/null 2>&1; fi
    if ((ferret_down)); then services up ferretdb >/dev/null 2>&1; fi
    if ((!KEEP)); then
        for db in "${dbs[@]}"; do python3 "$root/scripts/lib/mongo_wire.py" drop "$MONGO" "$db" 2>/dev/null; done
    fi
    if [[ -n $watchdog ]]; then kill "$watchdog" 2>/dev/null; fi
    if ((rc == 0 && !KEEP)); then rm -rf "$work"; else say "logs kept in $work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "time limit (${LIMIT}s) reached or terminated"; exit 124' TERM
(
    sleep "$LIMIT"
    kill -TERM $$ 2>/dev/null
) &
watchdog=$!
deadline() { ((SECONDS < LIMIT)); }

for p in "$PORT" "$((PORT + 1))"; do
    if curl -s -o /dev/null -m 1 "http://127.0.0.1:$p/"; then die "port 127.0.0.1:$p is in use (RESILIENCE_PORT)"; fi
done
PROC_URL=http://127.0.0.1:$PORT
PROD_URL=http://127.0.0.1:$((PORT + 1))

now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.1f", b - a }'; }
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null; }
metric() { # metric URL NAME: sum of the series, empty when /metrics does not answer
    local body
    body=$(curl -sf -m 2 "$1/metrics" 2>/dev/null) || return 0
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s + 0 }' <<<"$body"
}

# ------------------------------------------------------------------------------ processes
start_processor() { # start_processor LOG
    "$BIN" run --role processor --set "http.listen=127.0.0.1:$PORT" --set "kafka.brokers=$BROKERS" \
        --set "mongodb.uri=$MONGO" --set "mongodb.database=$db" --set "processor.group_id=$group" \
        --set "processor.topics.gpu_metrics=$gpu_topic" --set "processor.topics.token_usage=$usage_topic" \
        --set mongodb.check_interval_ms=500 --set kafka.check_interval_ms=500 \
        --set processor.retry_backoff_max_ms=1000 --set processor.query.auth=none >>"$1" 2>&1 &
    proc_pid=$!
}
start_producer() { # start_producer COUNT LOG
    "$BIN" run --role producer --count "$1" --set "producer.rate=$RATE" \
        --set "http.listen=127.0.0.1:$((PORT + 1))" --set "kafka.brokers=$BROKERS" \
        --set "producer.topics.gpu_metrics=$gpu_topic" --set "producer.topics.token_usage=$usage_topic" \
        --set kafka.check_interval_ms=500 >>"$2" 2>&1 &
    prod_pid=$!
}
# wait_until TIMEOUT_S CMD...: polls CMD every 0.2 s; fails on timeout or the global limit
wait_until() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < end)) && deadline || return 1
        sleep 0.2
    done
}
is_ready() { [[ $(http_status "$1/ready") == 200 ]]; }
sent_some() {
    local n
    n=$(metric "$PROD_URL" producer_messages_sent_total)
    ((${n:-0} > 0))
}
wait_exit() { # wait_exit PID TIMEOUT_S: exit status, or 124 after killing it on timeout
    local pid=$1 end=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= end)) || ! deadline; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            return 124
        fi
        sleep 0.2
    done
    wait "$pid"
}

# recover FROM BASE_WRITES: waits until the processor is ready and stores beyond BASE_WRITES;
# sets recovery (seconds from FROM, or "-") and recovery_detail.
recover() {
    local from=$1 base=$2 end=$((SECONDS + 120)) t_ready='' t_store='' w
    while ((SECONDS < end)) && deadline; do
        if [[ -z $t_ready ]] && is_ready "$PROC_URL"; then t_ready=$(now); fi
        w=$(metric "$PROC_URL" processor_db_writes_total)
        if [[ -z $t_store && -n $w ]] && ((w > base)); then t_store=$(now); fi
        [[ -n $t_ready && -n $t_store ]] && break
        sleep 0.2
    done
    recovery_detail="ready after $([[ -n $t_ready ]] && since "$from" "$t_ready" || echo never)s, stores again after $([[ -n $t_store ]] && since "$from" "$t_store" || echo never)s"
    if [[ -n $t_ready && -n $t_store ]]; then
        recovery=$(awk -v a="$(since "$from" "$t_ready")" -v b="$(since "$from" "$t_store")" 'BEGIN { printf "%.1f", (a > b ? a : b) }')
    else
        recovery=-
    fi
}

# kafka_ids FILE: distinct event ids in the two topics into FILE (sorted); prints "messages distinct"
kafka_ids() {
    TELEMETRYD_KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto" \
        timeout 180 "$root/scripts/kafka-tool.sh" kafka.tools.ConsoleConsumer --bootstrap-server "$BROKERS" \
        --include "^(${gpu_topic//./\\.}|${usage_topic//./\\.})\$" --from-beginning --timeout-ms 10000 \
        2>>"$work/$fault.consumer.err" |
        python3 -c '
import json, sys
n, ids = 0, set()
for line in sys.stdin:
    if line.strip():
        n += 1
        ids.add(json.loads(line)["id"])
open(sys.argv[1], "w").write("".join(i + "\n" for i in sorted(ids)))
print(n, len(ids))' "$1"
}
stored_count() { python3 "$root/scripts/lib/mongo_wire.py" count "$MONGO" "$db" 2>/dev/null | awk '{ print $1 }'; }
stored_at_least() { local n; n=$(stored_count); [[ -n $n ]] && ((n >= $1)); }

# --------------------------------------------------------------------------------- a fault
rows=()
overall=0
run_fault() {
    fault=$1
    local stamp log_proc log_prod t_start t_removed base sent rest rc rc2=0 result=ok ready_during=-
    local kmsg kdist stored docs distinct lost extra dup
    stamp=$(date +%s)$RANDOM
    gpu_topic=resil-$fault-$stamp-gpu
    usage_topic=resil-$fault-$stamp-usage
    group=resil-$fault-$stamp
    db=resil_${fault//-/_}_$stamp
    dbs+=("$db")
    log_proc=$work/$fault.processor.log
    log_prod=$work/$fault.producer.log
    recovery=- recovery_detail="not measured"
    say "$fault: $EVENTS events at $RATE/s to $gpu_topic + $usage_topic, database $db"

    # The producer first (it creates the topics), the processor once events are in Kafka.
    t_start=$SECONDS
    start_producer "$EVENTS" "$log_prod"
    wait_until 30 sent_some || say "$fault: the producer sent nothing within 30 s"
    start_processor "$log_proc"
    wait_until 30 is_ready "$PROC_URL" || say "$fault: the processor was not ready within 30 s"
    while ((SECONDS - t_start < FAULT_AT)); do sleep 0.2; done

    case $fault in
    processor-kill)
        base=$(metric "$PROC_URL" processor_db_writes_total)
        kill -KILL "$proc_pid"
        wait "$proc_pid" 2>/dev/null
        say "$fault: kill -9 processor (pid $proc_pid) after ${base:-?} stored; restart in 3 s"
        sleep 3
        t_removed=$(now)
        start_processor "$log_proc"
        recover "$t_removed" 0
        recovery_detail="restarted processor: $recovery_detail"
        ;;
    producer-kill)
        sent=$(metric "$PROD_URL" producer_messages_sent_total)
        kill -KILL "$prod_pid"
        wait "$prod_pid" 2>/dev/null
        rest=$((EVENTS - ${sent:-0}))
        say "$fault: kill -9 producer (pid $prod_pid) after ${sent:-?} sent; a new producer sends the remaining $rest"
        sleep 1
        t_removed=$(now)
        start_producer "$rest" "$log_prod"
        local t_ok=
        if wait_until 60 is_ready "$PROD_URL" && wait_until 60 sent_some; then t_ok=$(now); fi
        if [[ -n $t_ok ]]; then recovery=$(since "$t_removed" "$t_ok"); fi
        recovery_detail="new producer ready and sending after ${recovery}s"
        ;;
    broker-restart)
        say "$fault: scripts/services.sh restart kafka"
        kafka_down=1
        services restart kafka | sed 's/^/    /'
        kafka_down=0
        t_removed=$(now)
        base=$(metric "$PROC_URL" processor_db_writes_total)
        recover "$t_removed" "${base:-0}"
        recovery_detail="kafka up again: $recovery_detail"
        ;;
    db-outage)
        say "$fault: scripts/services.sh down ferretdb for 20 s"
        ferret_down=1
        services down ferretdb | sed 's/^/    /'
        sleep 10
        ready_during=$(http_status "$PROC_URL/ready")
        sleep 10
        services up ferretdb | sed 's/^/    /'
        ferret_down=0
        t_removed=$(now)
        base=$(metric "$PROC_URL" processor_db_writes_total)
        recover "$t_removed" "${base:-0}"
        recovery_detail="ferretdb up again: $recovery_detail; processor /ready during the outage: $ready_during"
        ;;
    esac
    say "$fault: recovery: $recovery_detail"

    # Let the producer finish (every event delivered), then read back Kafka and the store.
    wait_exit "$prod_pid" 180
    rc=$?
    prod_pid=
    ((rc == 0)) || result="FAILED (producer exit $rc)"
    read -r kmsg kdist < <(kafka_ids "$work/$fault.kafka.ids")
    kmsg=${kmsg:-0} kdist=${kdist:-0}
    wait_until 120 stored_at_least "$kdist" || say "$fault: the store did not reach $kdist documents within 120 s"
    sleep 2 # a late duplicate would show up as an extra document
    stop_pid "$proc_pid"
    rc2=$?
    proc_pid=
    python3 "$root/scripts/lib/mongo_wire.py" ids "$MONGO" "$db" >"$work/$fault.stored.all" 2>>"$work/$fault.consumer.err" ||
        result="FAILED (cannot read the store)"
    sort -u "$work/$fault.stored.all" >"$work/$fault.stored.ids"
    docs=$(wc -l <"$work/$fault.stored.all")
    distinct=$(wc -l <"$work/$fault.stored.ids")
    stored=$(stored_count)
    lost=$(comm -23 "$work/$fault.kafka.ids" "$work/$fault.stored.ids" | wc -l)
    extra=$(comm -13 "$work/$fault.kafka.ids" "$work/$fault.stored.ids" | wc -l)
    dup=$((docs - distinct))
    say "$fault: Kafka holds $kmsg messages, $kdist distinct ids; store holds ${stored:-?} documents (count), $docs read back, $distinct distinct ids; stored ids not in Kafka: $extra; processor exit ${rc2}"
    if [[ $result == ok ]]; then
        if ((kdist < EVENTS)); then
            result="FAILED (only $kdist of $EVENTS events reached Kafka)"
        elif ((lost || dup || extra)) || [[ $stored != "$docs" ]]; then
            result=FAILED
        elif [[ $recovery == - ]]; then
            result="FAILED (no recovery)"
        fi
    fi
    if [[ $result != ok ]]; then
        overall=1
        say "$fault: last processor log lines:"
        tail -n 5 "$log_proc" | cut -c1-300 | sed 's/^/    /'
    fi
    rows+=("$fault|$recovery|$kdist|$distinct|$lost|$dup|$result")
}

say "services: Kafka $BROKERS, FerretDB $MONGO (state $STATE); limit ${LIMIT}s"
for fault in "${faults[@]}"; do
    deadline || break
    run_fault "$fault"
done

echo
printf '%-15s | %10s | %8s | %8s | %4s | %10s | %s\n' fault "recovery s" produced stored lost duplicated result
printf '%s\n' "----------------+------------+----------+----------+------+------------+--------"
for row in "${rows[@]}"; do
    IFS='|' read -r f r p s l d res <<<"$row"
    printf '%-15s | %10s | %8s | %8s | %4s | %10s | %s\n' "$f" "$r" "$p" "$s" "$l" "$d" "$res"
done
echo "recovery s: from fault removal (process restarted / service up) until the processor is ready and"
echo "stores again; producer-kill: until the new producer is ready and sends. produced: distinct ids in"
echo "Kafka; stored: distinct ids in FerretDB; lost: produced ids not stored; duplicated: documents - ids."
if ((${#rows[@]} < ${#faults[@]})); then
    say "only ${#rows[@]} of ${#faults[@]} faults ran within the time limit"
    overall=1
fi
if ((overall)); then say "FAILED"; else say "ok: every fault lost 0 and duplicated 0"; fi
exit "$overall"
