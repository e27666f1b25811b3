#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and the polled predicates run from traps and wait_until
# The fault suite: injects one fault per run into a live pipeline against the local test services
# (producer -> Kafka -> processor -> FerretDB, Kafka -> worker -> FerretDB + S3 archive, ingest
# API -> Kafka -> processor), reads back what Kafka holds and what was stored, and fails on any
# loss. CI runs it from scripts/test.sh (a few minutes in all) and counts its JUnit report.
#
# Usage: scripts/resilience-test.sh [--junit FILE] [FAULT...]
#   FAULT (default: all, in this order):
#     processor-kill   kill -9 the processor mid-run, start it again 2 s later
#     producer-kill    kill -9 the producer mid-run, start a producer for the remaining count
#     broker-restart   scripts/services.sh restart kafka mid-run
#     db-outage        scripts/services.sh down ferretdb mid-run, up again RESILIENCE_OUTAGE_S later
#     worker-kill      kill -9 the worker while it archives to S3 (versitygw), start it again 1 s
#                      later; every event of its topic must be in gpu_metadata and in the archive
#     s3-outage        scripts/services.sh down s3 while the worker archives, up again
#                      RESILIENCE_OUTAGE_S later; nothing missing from or doubled in the archive
#     ingest-broker-outage  a client POSTs gpu.metrics.v1 batches to the ingest API (a processor
#                      with ingest.enabled) while Kafka restarts; it retries what got 503 (some
#                      must, each with Retry-After); every event acknowledged with 202 is stored
#     rebalance-storm  starts and stops (SIGTERM) two extra processors of the same group
#                      RESILIENCE_STORM_CYCLES times while the producer runs
#     poison-events    RESILIENCE_POISON malformed events written into the metrics topic beside
#                      the producer's: each must reach <topic>.dlq with a reason header, and
#                      every valid event be stored
#   --junit FILE       one testcase per fault (failed when lost > 0, stored twice > 0, an
#                      unexplained dead letter, an acknowledged event not stored, or when the
#                      fault could not be run); written even when the suite is cut short
#
# Needs the services' env: `. <state>/env` from `scripts/services.sh up kafka ferretdb s3`
# (TELEMETRYD_TEST_*, TELEMETRYD_SERVICES_DIR); the ports services.sh needs for the restarts are
# read from that env and state, so the suite works on the default ports (CI) and on a developer's
# own ones. Without TELEMETRYD_TEST_S3_ENDPOINT the worker faults fail as not run. Needs a JDK
# (javac: scripts/lib/KafkaRecords.java reads the topics back) and python3. Loopback only.
# Environment (defaults): RESILIENCE_EVENTS=3000 RESILIENCE_RATE=700 (events/s)
#   RESILIENCE_FAULT_AT_S=2 RESILIENCE_OUTAGE_S=6 RESILIENCE_POISON=60 RESILIENCE_STORM_CYCLES=4
#   RESILIENCE_PORT=28110 (processor; producer +1, extra processors +2 and +3, worker +4)
#   RESILIENCE_TIME_LIMIT_S=480 TELEMETRYD_BIN=build/src/telemetryd
#   RESILIENCE_KEEP=0 (1 keeps databases, archive objects' prefix and the work folder)
#
# Each fault gets fresh topics, consumer group and database, RESILIENCE_EVENTS events at
# RESILIENCE_RATE/s, and the fault RESILIENCE_FAULT_AT_S after they start; consumers run with a
# 6 s session timeout. The table, one row per fault:
#   produced      distinct ids of the valid events in the fault's topics (read back from Kafka)
#   stored        produced ids that are stored (worker faults: in gpu_metadata and the archive)
#   lost          produced ids not stored; must be 0
#   stored_twice  ids a store holds more than once (the archive's objects are read back from S3);
#                 must be 0
#   redelivered   the consumers' duplicate counters summed (processor_duplicates_total or
#                 worker_duplicates_total of every instance, scraped before it is stopped or
#                 killed): events delivered again and recognised as stored. Expected after kills
#                 and retries; a measure of the work the fault cost, not a failure
#   dead_lettered records in the dead-letter topics; each must be a poison event, with a reason
#   recovery_s    from the fault's removal (process restarted, service up, storm over) until the
#                 consumer is ready and stores again (or the store is already complete);
#                 producer-kill: until the new producer sends; ingest: until ingest publishes
# Exit 0 only when every fault passed; 1 otherwise; 2 usage or missing services. The whole run is
# bounded by RESILIENCE_TIME_LIMIT_S; everything it started is stopped on exit.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EVENTS=${RESILIENCE_EVENTS:-3000}
RATE=${RESILIENCE_RATE:-700}
FAULT_AT=${RESILIENCE_FAULT_AT_S:-2}
OUTAGE=${RESILIENCE_OUTAGE_S:-6}
POISON=${RESILIENCE_POISON:-60}
CYCLES=${RESILIENCE_STORM_CYCLES:-4}
PORT=${RESILIENCE_PORT:-28110}
LIMIT=${RESILIENCE_TIME_LIMIT_S:-480}
KEEP=${RESILIENCE_KEEP:-0}
BIN=${TELEMETRYD_BIN:-$root/build/src/telemetryd}
ALL_FAULTS=(processor-kill producer-kill broker-restart db-outage worker-kill s3-outage
    ingest-broker-outage rebalance-storm poison-events)
tool=$root/scripts/lib/fault_tool.py
mongo_wire=$root/scripts/lib/mongo_wire.py

say() {
    printf 'resilience: %s\n' "$*"
    if [[ -n ${fault_out:-} ]]; then printf '%s\n' "$*" >>"$fault_out"; fi
}
abort_reason=''
junit=''
faults=()
die() {
    printf 'resilience: error: %s\n' "$*" >&2
    abort_reason=$*
    exit 2
}
usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

while (($#)); do
    case $1 in
    --junit)
        [[ $# -ge 2 && -n $2 ]] || die "--junit needs a file"
        junit=$2
        shift
        ;;
    -h | --help) usage ;;
    *)
        [[ " ${ALL_FAULTS[*]} " == *" $1 "* ]] || die "unknown fault '$1' (faults: ${ALL_FAULTS[*]})"
        faults+=("$1")
        ;;
    esac
    shift
done
((${#faults[@]})) || faults=("${ALL_FAULTS[@]}")

# ------------------------------------------------------------------------- results and JUnit
work=$(mktemp -d "${TMPDIR:-/tmp}/resilience-test.XXXXXX")
declare -A result_of=() seconds_of=()
rows=()
suite_start=$SECONDS

# The report names every requested fault: one that did not run (time limit, missing services)
# fails with the reason, so a cut-short suite never looks green.
write_junit() {
    [[ -n $junit ]] || return 0
    local f status out
    : >"$work/cases.tsv"
    for f in "${faults[@]}"; do
        out=$work/$f.out
        if [[ -z ${result_of[$f]:-} ]]; then
            printf 'did not finish: %s\n' "${abort_reason:-the suite stopped before this fault}" >>"$out"
            status=fail
        elif [[ ${result_of[$f]} == ok ]]; then
            status=pass
        else
            status=fail
        fi
        printf '%s\t%s\t%s\t%s\n' "$f" "$status" "${seconds_of[$f]:-0}" "$out" >>"$work/cases.tsv"
    done
    mkdir -p "$(dirname "$junit")"
    python3 "$root/scripts/lib/cases_junit.py" "$work/cases.tsv" "$junit" faults &&
        say "JUnit report: $junit"
}

print_table() {
    local row
    ((${#rows[@]})) || return 0
    echo
    printf '%-21s %8s %8s %5s %12s %11s %13s %10s  %s\n' fault produced stored lost stored_twice \
        redelivered dead_lettered recovery_s result
    for row in "${rows[@]}"; do
        # shellcheck disable=SC2086 # the row is whitespace-separated fields, the result last
        set -- $row
        printf '%-21s %8s %8s %5s %12s %11s %13s %10s  %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" \
            "$8" "${*:9}"
    done
    echo
}

# --------------------------------------------------------------- services and their ports
BROKERS=${TELEMETRYD_TEST_KAFKA_BROKERS:-}
MONGO=${TELEMETRYD_TEST_MONGO_URI:-}
STATE=${TELEMETRYD_SERVICES_DIR:-}
S3=${TELEMETRYD_TEST_S3_ENDPOINT:-}
BUCKET=${TELEMETRYD_TEST_S3_BUCKET:-}

# Set from here on: the EXIT trap writes the report even for a suite that could not start.
procs=() watchdog='' kafka_down=0 ferret_down=0 s3_down=0 dbs=() prefixes=()
declare -A ipid=() iurl=() idup=() imetric=()
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
    local rc=$? name pid
    trap - EXIT INT TERM
    fault_out=''
    for name in "${!ipid[@]}"; do stop_pid "${ipid[$name]}"; done
    for pid in "${procs[@]}"; do stop_pid "$pid"; done
    if ((kafka_down)); then services up kafka >/dev/null 2>&1; fi
    if ((ferret_down)); then services up ferretdb >/dev/null 2>&1; fi
    if ((s3_down)); then services up s3 >/dev/null 2>&1; fi
    if ((!KEEP)); then
        for db in "${dbs[@]}"; do python3 "$mongo_wire" drop "$MONGO" "$db" 2>/dev/null; done
        for p in "${prefixes[@]}"; do python3 "$tool" s3-delete "$S3" "$BUCKET" "$p" 2>/dev/null; done
    fi
    if [[ -n $watchdog ]]; then kill "$watchdog" 2>/dev/null; fi
    print_table
    write_junit
    if ((rc == 0 && !KEEP)); then rm -rf "$work"; else say "logs kept in $work"; fi
    exit "$rc"
}
trap cleanup EXIT

[[ -n $BROKERS && -n $MONGO && -n $STATE ]] ||
    die "source the services' env first: scripts/services.sh up kafka ferretdb s3 && . <state>/env"
[[ -x $BIN ]] || die "no telemetryd binary at $BIN (ninja -C build src/telemetryd)"
[[ $BROKERS =~ ^127\.0\.0\.1:([0-9]+)$ ]] || die "expected one loopback broker 127.0.0.1:PORT, got '$BROKERS'"
kafka_port=${BASH_REMATCH[1]}
[[ $MONGO =~ ^mongodb://127\.0\.0\.1:([0-9]+)/?$ ]] || die "expected mongodb://127.0.0.1:PORT/, got '$MONGO'"
mongo_port=${BASH_REMATCH[1]}
for v in EVENTS RATE FAULT_AT OUTAGE POISON CYCLES PORT LIMIT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((EVENTS > 0 && RATE > 0)) || die "RESILIENCE_EVENTS and RESILIENCE_RATE must be positive"

# services.sh restarts (and the env file it rewrites on `up`) must reuse exactly these ports and
# this state dir: each port comes from the running services' env or state, unless already set.
props=$STATE/kafka/server.properties
# One listener's port by its exact name (SSL must not match SASL_SSL).
listener_port() {
    sed -n 's/^listeners=//p' "$props" 2>/dev/null | tr ',' '\n' |
        sed -n "s/^$1:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p"
}
url_port() { [[ $1 =~ :([0-9]+)/?$ ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }
ferret_pid=$(tr -dc 0-9 <"$STATE/run/ferretdb.pid" 2>/dev/null)
export TELEMETRYD_SERVICES_DIR=$STATE TELEMETRYD_KAFKA_PORT=$kafka_port TELEMETRYD_MONGO_PORT=$mongo_port
export TELEMETRYD_KAFKA_CONTROLLER_PORT=${TELEMETRYD_KAFKA_CONTROLLER_PORT:-$(listener_port CONTROLLER)}
export TELEMETRYD_KAFKA_SSL_PORT=${TELEMETRYD_KAFKA_SSL_PORT:-$(listener_port SSL)}
export TELEMETRYD_KAFKA_SASL_SSL_PORT=${TELEMETRYD_KAFKA_SASL_SSL_PORT:-$(listener_port SASL_SSL)}
export TELEMETRYD_FERRETDB_DEBUG_PORT=${TELEMETRYD_FERRETDB_DEBUG_PORT:-$(tr '\0' '\n' <"/proc/${ferret_pid:-0}/cmdline" 2>/dev/null | sed -n 's/^--debug-addr=.*:\([0-9]*\)$/\1/p')}
for pair in S3_PORT:TELEMETRYD_TEST_S3_ENDPOINT S3_TLS_PORT:TELEMETRYD_TEST_S3_TLS_ENDPOINT \
    MONGO_TLS_PORT:TELEMETRYD_TEST_MONGO_TLS_ADDRESS INFLUXDB_PORT:TELEMETRYD_TEST_INFLUXDB_URL; do
    var=TELEMETRYD_${pair%%:*} from=${pair#*:}
    if [[ -z ${!var:-} && -n ${!from:-} ]]; then export "$var=$(url_port "${!from}")"; fi
done
for v in TELEMETRYD_KAFKA_CONTROLLER_PORT TELEMETRYD_KAFKA_SSL_PORT TELEMETRYD_KAFKA_SASL_SSL_PORT \
    TELEMETRYD_FERRETDB_DEBUG_PORT; do
    [[ -n ${!v} ]] || die "cannot tell $v from $STATE; export it"
done
services() { "$root/scripts/services.sh" "$@"; }
needed=(kafka ferretdb)
if [[ -n $S3 ]]; then needed+=(s3); fi
services status "${needed[@]}" >/dev/null ||
    die "the services in $STATE are not running (scripts/services.sh up ${needed[*]})"

# The topics are read back with a small Kafka client (KafkaRecords.java) compiled against the
# cached Kafka jars: it stops at the end offsets, where the console consumer waits out a timeout.
# shellcheck source-path=SCRIPTDIR source=lib/services-common.sh
. "$root/scripts/lib/services-common.sh"
command -v javac >/dev/null || die "javac not found (a JDK: scripts/bootstrap.sh installs default-jdk-headless)"
td_kafka_libs_present || die "no Kafka jars in $KAFKA_LIBS (scripts/services.sh up kafka fetches them)"
javac -nowarn -d "$work/classes" -cp "$KAFKA_LIBS/*" "$root/scripts/lib/KafkaRecords.java" ||
    die "cannot compile scripts/lib/KafkaRecords.java"
kafka_records() {
    java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
        -Dlog4j.configuration="file:$KAFKA_TOOLS_LOG4J" -cp "$work/classes:$KAFKA_LIBS/*" \
        KafkaRecords "$@"
}

trap 'say "interrupted"; abort_reason="interrupted"; exit 130' INT
trap 'say "time limit (${LIMIT}s) reached or terminated"; abort_reason="time limit (${LIMIT}s) reached"; exit 124' TERM
# Its sleep must not outlive the suite (it would hold a pipe on the suite's output open).
(
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    sleep "$LIMIT" &
    nap=$!
    wait "$nap" && kill -TERM $$ 2>/dev/null
) >/dev/null 2>&1 &
watchdog=$!
deadline() { ((SECONDS - suite_start < LIMIT)); }

for p in $(seq "$PORT" $((PORT + 4))); do
    if curl -s -o /dev/null -m 1 "http://127.0.0.1:$p/"; then die "port 127.0.0.1:$p is in use (RESILIENCE_PORT)"; fi
done
PROC_PORT=$PORT PROD_PORT=$((PORT + 1)) WORKER_PORT=$((PORT + 4))

now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.1f", b - a }'; }
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null; }
metric() { # metric URL NAME: sum of the series, empty when /metrics does not answer
    local body
    body=$(curl -sf -m 2 "$1/metrics" 2>/dev/null) || return 0
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s + 0 }' <<<"$body"
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
is_ready() { [[ $(http_status "$1/ready") == 200 ]]; }

# ------------------------------------------------------------------- telemetryd instances
# Every instance of a fault has a unique name (proc.1, proc.2 after a restart, ...); its
# duplicate counter is scraped whenever the suite polls and right before it is stopped or
# killed, and the last value counts. A killed instance's later redeliveries show up in the
# counters of the instance that takes its partitions over.
scrape() { # scrape NAME: remembers the instance's duplicate counter while it answers
    local v
    v=$(metric "${iurl[$1]}" "${imetric[$1]}")
    if [[ -n $v ]]; then idup[$1]=$v; fi
}
scrape_all() {
    local name
    for name in "${!ipid[@]}"; do scrape "$name"; done
}
alive() { [[ -n ${ipid[$1]:-} ]] && kill -0 "${ipid[$1]}" 2>/dev/null; }
kill_inst() { # kill_inst NAME: kill -9
    scrape "$1"
    kill -KILL "${ipid[$1]}" 2>/dev/null
    wait "${ipid[$1]}" 2>/dev/null
    unset "ipid[$1]"
}
# stop_inst NAME: SIGTERM (drain, commit), KILL after 10 s; returns the exit status. One SIGTERM
# only: a second one ends telemetryd at once, like a crash.
stop_inst() {
    signal_inst "$1"
    reap_inst "$1"
}
signal_inst() { # signal_inst NAME: scrape, then SIGTERM
    scrape "$1"
    kill -TERM "${ipid[$1]}" 2>/dev/null
}
reap_inst() { # reap_inst NAME: waits up to 10 s for a signalled instance, then KILL
    local pid=${ipid[$1]} rc i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    unset "ipid[$1]"
    return "$rc"
}
redelivered() {
    local name s=0
    for name in "${!idup[@]}"; do s=$((s + idup[$name])); done
    echo "$s"
}
start_processor() { # start_processor NAME PORT [--set k=v]...
    local name=$1 port=$2
    shift 2
    "$BIN" run --role processor --set processor.query.auth=none --set "http.listen=127.0.0.1:$port" --set "kafka.brokers=$BROKERS" \
        --set "mongodb.uri=$MONGO" --set "mongodb.database=$db" --set "processor.group_id=$group" \
        --set "processor.topics.gpu_metrics=$gpu_topic" --set "processor.topics.token_usage=$usage_topic" \
        --set mongodb.check_interval_ms=500 --set kafka.check_interval_ms=500 \
        --set processor.session_timeout_ms=6000 --set processor.retry_backoff_max_ms=1000 \
        "$@" >>"$work/$fault.$name.log" 2>&1 &
    ipid[$name]=$! iurl[$name]=http://127.0.0.1:$port imetric[$name]=processor_duplicates_total
}
start_worker() { # start_worker NAME
    AWS_SECRET_ACCESS_KEY=$TELEMETRYD_TEST_S3_SECRET_KEY "$BIN" run --role worker \
        --set "http.listen=127.0.0.1:$WORKER_PORT" --set "kafka.brokers=$BROKERS" \
        --set "mongodb.uri=$MONGO" --set "mongodb.database=$db" --set "worker.group_id=$group" \
        --set "worker.topic=$meta_topic" --set worker.session_timeout_ms=6000 \
        --set worker.retry_backoff_max_ms=1000 --set mongodb.check_interval_ms=500 \
        --set kafka.check_interval_ms=500 --set archive.enabled=true --set archive.store=s3 \
        --set "archive.prefix=$prefix" --set archive.max_records=250 --set archive.max_age_ms=500 \
        --set archive.retry_backoff_initial_ms=200 --set archive.retry_backoff_max_ms=1000 \
        --set "archive.s3.endpoint=$S3" --set "archive.s3.bucket=$BUCKET" \
        --set "archive.s3.region=${TELEMETRYD_TEST_S3_REGION:-us-east-1}" \
        --set "archive.s3.access_key_id=$TELEMETRYD_TEST_S3_ACCESS_KEY" \
        --set archive.s3.connect_timeout_ms=1000 --set archive.s3.request_timeout_ms=3000 \
        >>"$work/$fault.$1.log" 2>&1 &
    ipid[$1]=$! iurl[$1]=http://127.0.0.1:$WORKER_PORT imetric[$1]=worker_duplicates_total
}
start_producer() { # start_producer NAME COUNT
    "$BIN" run --role producer --count "$2" --set "producer.rate=$rate" \
        --set "http.listen=127.0.0.1:$PROD_PORT" --set "kafka.brokers=$BROKERS" \
        --set "producer.topics.gpu_metrics=$gpu_topic" --set "producer.topics.token_usage=$usage_topic" \
        --set kafka.check_interval_ms=500 >>"$work/$fault.$1.log" 2>&1 &
    prod_pid=$!
    procs+=("$prod_pid")
}
sent_some() {
    local n
    n=$(metric "http://127.0.0.1:$PROD_PORT" producer_messages_sent_total)
    ((${n:-0} > 0))
}
# complete: the store (and the worker's archive) already holds every expected event
complete() {
    ((expected > 0)) && stored_at_least "$expected" || return 1
    [[ $fault != worker-kill && $fault != s3-outage ]] || archived_at_least "$expected"
}
stored_count() { python3 "$mongo_wire" count "$MONGO" "$db" "${collections[@]}" 2>/dev/null | awk 'END { print $1 }'; }
stored_at_least() { local n; n=$(stored_count); [[ -n $n ]] && ((n >= $1)); }
archived_count() { python3 "$tool" s3-ids "$S3" "$BUCKET" "$prefix" 2>/dev/null | wc -l; }
archived_at_least() { (($(archived_count) >= $1)); }

# recover NAME FROM METRIC BASE: waits until instance NAME is ready and METRIC grows beyond BASE
# (or the store already holds `expected` documents); sets recovery (seconds from FROM, or "-").
recover() {
    local name=$1 from=$2 what=$3 base=$4 end=$((SECONDS + 60)) t_ready='' t_store='' w
    while ((SECONDS < end)) && deadline; do
        scrape_all
        if [[ -z $t_ready ]] && is_ready "${iurl[$name]}"; then t_ready=$(now); fi
        w=$(metric "${iurl[$name]}" "$what")
        if [[ -z $t_store && -n $w ]] && ((w > base)); then t_store=$(now); fi
        if [[ -z $t_store ]] && complete; then t_store=$(now); fi
        [[ -n $t_ready && -n $t_store ]] && break
        sleep 0.3
    done
    recovery_detail="ready after $([[ -n $t_ready ]] && since "$from" "$t_ready" || echo never)s, $what grows after $([[ -n $t_store ]] && since "$from" "$t_store" || echo never)s"
    if [[ -n $t_ready && -n $t_store ]]; then
        recovery=$(awk -v a="$(since "$from" "$t_ready")" -v b="$(since "$from" "$t_store")" 'BEGIN { printf "%.1f", (a > b ? a : b) }')
    else
        recovery=-
    fi
}
fail_because() {
    problems+=("$*")
    say "$fault: FAIL: $*"
}

# --------------------------------------------------------------------------------- a fault
# Processor faults: the producer first, the processor once events are in Kafka. Topics are
# created up front (3 partitions, the brokers' default) so that no consumer starts on a topic
# that does not exist yet.
setup_processor_fault() {
    local n=$1
    create_topics "$gpu_topic" "$usage_topic"
    start_producer producer.1 "$n"
    wait_until 30 sent_some || fail_because "the producer sent nothing within 30 s"
    start_processor proc.1 "$PROC_PORT"
    wait_until 30 is_ready "${iurl[proc.1]}" || fail_because "the processor was not ready within 30 s"
}
create_topics() {
    kafka_records create "$BROKERS" 3 "$@" 2>>"$work/$fault.kafka.err" ||
        fail_because "cannot create the topics $*"
}
wait_fault_time() { while ((SECONDS - t_start < FAULT_AT)) && deadline; do sleep 0.2; done; }
done_some() { # done_some NAME METRIC: the instance's METRIC counts a fifth of the events
    local n
    n=$(metric "${iurl[$1]}" "$2")
    ((${n:-0} >= EVENTS / 5))
}
# wait_mid_run NAME METRIC: the fault time, and the consumer busy (a fifth of the events done by
# METRIC), so the fault hits work in progress rather than an idle or finished pipeline.
wait_mid_run() {
    wait_fault_time
    wait_until 30 done_some "$1" "$2" || fail_because "$1 did not get going ($2 < $((EVENTS / 5)) after 30 s)"
    if [[ -z $prod_pid ]] || ! kill -0 "$prod_pid" 2>/dev/null; then
        say "$fault: note: the events were all written before the fault"
    fi
}
finish_producer() {
    local rc
    if [[ -n $prod_pid ]]; then
        wait_exit "$prod_pid" 90
        rc=$?
        ((rc == 0)) || fail_because "the producer exited with $rc"
        prod_pid=
    fi
}

fault_processor_kill() {
    setup_processor_fault "$EVENTS"
    wait_mid_run proc.1 processor_db_writes_total
    say "$fault: kill -9 processor after $(metric "${iurl[proc.1]}" processor_db_writes_total) stored; restart in 2 s"
    kill_inst proc.1
    sleep 2
    t_removed=$(now)
    start_processor proc.2 "$PROC_PORT"
    recover proc.2 "$t_removed" processor_db_writes_total 0
    recovery_detail="restarted processor: $recovery_detail"
}
fault_producer_kill() {
    local sent rest t_ok=''
    setup_processor_fault "$EVENTS"
    wait_fault_time
    sent=$(metric "http://127.0.0.1:$PROD_PORT" producer_messages_sent_total)
    kill -KILL "$prod_pid"
    wait "$prod_pid" 2>/dev/null
    rest=$((EVENTS - ${sent:-0}))
    say "$fault: kill -9 producer after ${sent:-?} sent; a new producer sends the remaining $rest"
    sleep 1
    t_removed=$(now)
    start_producer producer.2 "$rest"
    if wait_until 30 is_ready "http://127.0.0.1:$PROD_PORT" && wait_until 30 sent_some; then t_ok=$(now); fi
    if [[ -n $t_ok ]]; then recovery=$(since "$t_removed" "$t_ok"); fi
    recovery_detail="new producer ready and sending after ${recovery}s"
}
restart_kafka() {
    say "$fault: scripts/services.sh restart kafka"
    kafka_down=1
    services restart kafka 2>&1 | sed 's/^/    /' | tee -a "$fault_out"
    kafka_down=0
    t_removed=$(now)
}
fault_broker_restart() {
    local base
    setup_processor_fault "$EVENTS"
    wait_mid_run proc.1 processor_db_writes_total
    restart_kafka
    base=$(metric "${iurl[proc.1]}" processor_db_writes_total)
    recover proc.1 "$t_removed" processor_db_writes_total "${base:-0}"
    recovery_detail="kafka up again: $recovery_detail"
}
fault_db_outage() {
    local base ready_during
    setup_processor_fault "$EVENTS"
    wait_mid_run proc.1 processor_db_writes_total
    say "$fault: scripts/services.sh down ferretdb for ${OUTAGE} s"
    ferret_down=1
    services down ferretdb 2>&1 | sed 's/^/    /' | tee -a "$fault_out"
    sleep "$((OUTAGE / 2))"
    ready_during=$(http_status "${iurl[proc.1]}/ready")
    sleep "$((OUTAGE - OUTAGE / 2))"
    scrape_all
    services up ferretdb 2>&1 | sed 's/^/    /' | tee -a "$fault_out"
    ferret_down=0
    t_removed=$(now)
    base=$(metric "${iurl[proc.1]}" processor_db_writes_total)
    recover proc.1 "$t_removed" processor_db_writes_total "${base:-0}"
    recovery_detail="ferretdb up again: $recovery_detail; processor /ready during the outage: $ready_during"
}
fault_rebalance_storm() {
    local i t_storm x
    # A third of the rate, so that the events keep coming for the whole storm.
    rate=$((RATE / 3 > 0 ? RATE / 3 : 1))
    say "$fault: the producer writes at $rate/s"
    setup_processor_fault "$EVENTS"
    wait_mid_run proc.1 processor_db_writes_total
    t_storm=$(now)
    for ((i = 1; i <= CYCLES; i++)); do
        start_processor "extra.$i.a" $((PORT + 2))
        start_processor "extra.$i.b" $((PORT + 3))
        wait_until 10 is_ready "${iurl[extra.$i.a]}"
        wait_until 10 is_ready "${iurl[extra.$i.b]}"
        sleep 0.5
        # Both leave at once: one more rebalance while the first is still under way.
        signal_inst "extra.$i.a"
        signal_inst "extra.$i.b"
        for x in a b; do
            reap_inst "extra.$i.$x" || fail_because "extra processor $i.$x exited with $? when stopped"
        done
    done
    t_removed=$(now)
    say "$fault: $CYCLES cycles of two extra processors joining and leaving in $(since "$t_storm" "$t_removed") s"
    recover proc.1 "$t_removed" processor_db_writes_total "$(metric "${iurl[proc.1]}" processor_db_writes_total)"
    recovery_detail="storm over: $recovery_detail"
}
fault_poison_events() {
    local poison_pid rc
    setup_processor_fault "$EVENTS"
    python3 "$tool" poison "$POISON" "$poison_file" |
        kafka_records produce "$BROKERS" "$gpu_topic" 20 2>>"$work/$fault.kafka.err" &
    poison_pid=$!
    procs+=("$poison_pid")
    wait_exit "$poison_pid" 60
    rc=$?
    ((rc == 0)) || fail_because "writing the poison events failed ($rc)"
    say "$fault: $POISON malformed events written into $gpu_topic"
    recovery_detail="no fault to recover from"
}
# The worker's faults: gpu.metadata.v1 events written at RATE, a worker archiving to S3.
setup_worker_fault() {
    [[ -n $S3 && -n $BUCKET ]] || {
        fail_because "not run: no S3 service (TELEMETRYD_TEST_S3_ENDPOINT)"
        return 1
    }
    create_topics "$meta_topic"
    python3 "$tool" metadata "$EVENTS" |
        kafka_records produce "$BROKERS" "$meta_topic" "$RATE" 2>>"$work/$fault.kafka.err" &
    prod_pid=$!
    procs+=("$prod_pid")
    start_worker worker.1
    wait_until 30 is_ready "${iurl[worker.1]}" || fail_because "the worker was not ready within 30 s"
}
fault_worker_kill() {
    setup_worker_fault || return 0
    wait_mid_run worker.1 worker_archive_records_total
    say "$fault: kill -9 worker after $(metric "${iurl[worker.1]}" worker_archive_records_total) events archived; restart in 1 s"
    kill_inst worker.1
    sleep 1
    t_removed=$(now)
    start_worker worker.2
    recover worker.2 "$t_removed" worker_archive_records_total 0
    recovery_detail="restarted worker: $recovery_detail"
}
fault_s3_outage() {
    local base ready_during
    setup_worker_fault || return 0
    wait_mid_run worker.1 worker_archive_records_total
    say "$fault: scripts/services.sh down s3 for ${OUTAGE} s after $(metric "${iurl[worker.1]}" worker_archive_records_total) events archived"
    s3_down=1
    services down s3 2>&1 | sed 's/^/    /' | tee -a "$fault_out"
    sleep "$((OUTAGE / 2))"
    ready_during=$(http_status "${iurl[worker.1]}/ready")
    sleep "$((OUTAGE - OUTAGE / 2))"
    scrape_all
    base=$(metric "${iurl[worker.1]}" worker_archive_records_total)
    services up s3 2>&1 | sed 's/^/    /' | tee -a "$fault_out"
    s3_down=0
    t_removed=$(now)
    recover worker.1 "$t_removed" worker_archive_records_total "${base:-0}"
    recovery_detail="s3 up again: $recovery_detail; worker /ready during the outage: $ready_during"
}
fault_ingest_broker_outage() {
    local base client_pid rc
    create_topics "$gpu_topic" "$usage_topic"
    start_processor proc.1 "$PROC_PORT" --set ingest.enabled=true --set ingest.auth=none \
        --set "ingest.topics.gpu_metrics=$gpu_topic" --set "ingest.topics.token_usage=$usage_topic" \
        --set ingest.ack_timeout_ms=2000 --set ingest.rate_limit_per_s=0
    wait_until 30 is_ready "${iurl[proc.1]}" || fail_because "the processor was not ready within 30 s"
    python3 "$tool" ingest "${iurl[proc.1]}" "$EVENTS" "$work/$fault.acked" "$RATE" \
        >"$work/$fault.client" 2>&1 &
    client_pid=$!
    procs+=("$client_pid")
    prod_pid=$client_pid # the client is the writer wait_mid_run looks at
    wait_mid_run proc.1 ingest_events_published_total
    prod_pid=''
    restart_kafka
    base=$(metric "${iurl[proc.1]}" ingest_events_published_total)
    recover proc.1 "$t_removed" ingest_events_published_total "${base:-0}"
    recovery_detail="kafka up again: $recovery_detail"
    wait_exit "$client_pid" 120
    rc=$?
    say "$fault: client: $(head -n 1 "$work/$fault.client")"
    sed -n '2,6p' "$work/$fault.client" | sed 's/^/    /'
    ((rc == 0)) || fail_because "the ingest client did not get every event acknowledged, or a 503 came without Retry-After (exit $rc)"
    # Kafka's restart takes longer than ingest.ack_timeout_ms: a client that never saw a 503
    # was not exercised by the outage, and the fault did not run as meant.
    grep -q 'statuses=.*503' "$work/$fault.client" || fail_because "no request got 503 during the outage"
}

run_fault() {
    fault=$1
    fault_out=$work/$fault.out
    : >"$fault_out"
    local stamp t0=$SECONDS rec line name rc f kv
    local -a data_topics=() dlq_topics=() stored_files=() extra_args=()
    # expected: what the store holds once complete (recover() accepts a complete store as
    # storing again); refined from what Kafka holds once the fault is over.
    problems=() recovery=- recovery_detail="not measured" expected=$EVENTS prod_pid='' rate=$RATE
    ipid=() iurl=() idup=() imetric=()
    stamp=$(date +%s)$RANDOM
    gpu_topic=resil-$fault-$stamp-gpu
    usage_topic=resil-$fault-$stamp-usage
    meta_topic=resil-$fault-$stamp-metadata
    group=resil-$fault-$stamp
    db=resil_${fault//-/_}_$stamp
    prefix=resilience/$fault-$stamp/
    dbs+=("$db")
    poison_file=''
    if [[ $fault == poison-events ]]; then poison_file=$work/$fault.poison; fi
    collections=(gpu_metrics token_usage)
    case $fault in
    worker-kill | s3-outage)
        collections=(gpu_metadata)
        data_topics=("$meta_topic")
        dlq_topics=("$meta_topic.dlq")
        ;;
    *)
        data_topics=("$gpu_topic" "$usage_topic")
        dlq_topics=("$gpu_topic.dlq" "$usage_topic.dlq")
        ;;
    esac
    say "$fault: $EVENTS events at $RATE/s to ${data_topics[*]}, database $db"
    t_start=$SECONDS
    "fault_${fault//-/_}"
    say "$fault: recovery: $recovery_detail"

    # Every event written, then what Kafka holds, then wait until the store holds as many.
    finish_producer
    kafka_records dump "$BROKERS" "${data_topics[@]}" "${dlq_topics[@]}" >"$work/$fault.kafka" \
        2>>"$work/$fault.kafka.err" || fail_because "cannot read the topics back"
    expected=$(python3 "$tool" reconcile "$work/$fault.kafka" --data "${data_topics[@]}" \
        --dlq "${dlq_topics[@]}" ${poison_file:+--poison "$poison_file"} | sed -n 's/.*produced=\([0-9]*\).*/\1/p')
    expected=${expected:-$EVENTS}
    wait_until 45 stored_at_least "$expected" || say "$fault: the store did not reach $expected documents within 45 s"
    if [[ $fault == worker-kill || $fault == s3-outage ]] && [[ -n $S3 ]]; then
        wait_until 45 archived_at_least "$expected" || say "$fault: the archive did not reach $expected events within 45 s"
    fi
    if [[ $fault == poison-events ]]; then
        wait_until 30 dead_letters_at_least "$POISON" || say "$fault: fewer than $POISON dead letters within 30 s"
        # The dead letters were written after the first dump: read the topics again.
        kafka_records dump "$BROKERS" "${data_topics[@]}" "${dlq_topics[@]}" >"$work/$fault.kafka" \
            2>>"$work/$fault.kafka.err" || fail_because "cannot read the topics back"
    fi
    sleep 1 # a late duplicate would show up as a second copy or a redelivery
    for name in "${!ipid[@]}"; do
        stop_inst "$name"
        rc=$?
        ((rc == 0)) || fail_because "$name exited with $rc when stopped"
    done

    python3 "$mongo_wire" ids "$MONGO" "$db" "${collections[@]}" >"$work/$fault.stored" \
        2>>"$work/$fault.kafka.err" || fail_because "cannot read the store"
    stored_files=("$work/$fault.stored")
    if [[ $fault == worker-kill || $fault == s3-outage ]] && [[ -n $S3 ]]; then
        python3 "$tool" s3-ids "$S3" "$BUCKET" "$prefix" >"$work/$fault.archived" 2>>"$fault_out" ||
            fail_because "cannot read the archive"
        stored_files+=("$work/$fault.archived")
        prefixes+=("$prefix")
    fi
    if [[ -n ${poison_file:-} ]]; then extra_args+=(--poison "$poison_file"); fi
    if [[ -s $work/$fault.acked ]]; then extra_args+=(--acked "$work/$fault.acked"); fi
    line=$(python3 "$tool" reconcile "$work/$fault.kafka" --data "${data_topics[@]}" \
        --dlq "${dlq_topics[@]}" --stored "${stored_files[@]}" "${extra_args[@]}")
    say "$fault: $line"
    # Every key of the reconcile line becomes a local of that name (messages is only logged).
    # shellcheck disable=SC2034
    local messages=0 produced=0 stored=0 lost=0 stored_twice=0 extra=0 dead_lettered=0
    local dlq_unexplained=0 poison=0 poison_sent=0 acked=0 acked_missing=0
    local key value
    for kv in $line; do
        key=${kv%%=*} value=${kv#*=}
        [[ $value =~ ^[0-9]+$ ]] && printf -v "$key" '%s' "$value"
    done
    ((produced >= EVENTS)) || fail_because "only $produced of $EVENTS events reached Kafka"
    ((lost == 0)) || fail_because "$lost produced events are not stored"
    ((stored_twice == 0)) || fail_because "$stored_twice ids are stored more than once"
    ((extra == 0)) || fail_because "$extra stored ids were never in Kafka"
    ((dlq_unexplained == 0)) || fail_because "$dlq_unexplained dead letters are not poison events with a reason"
    ((acked_missing == 0)) || fail_because "$acked_missing acknowledged events are not stored"
    if [[ $fault == poison-events ]]; then
        ((poison == poison_sent && dead_lettered == poison)) ||
            fail_because "poison: $poison_sent written, $poison in Kafka, $dead_lettered dead-lettered"
    fi
    if [[ $fault == ingest-broker-outage ]] && ((acked < EVENTS)); then
        fail_because "only $acked of $EVENTS events were acknowledged"
    fi
    rec=$recovery
    if [[ $rec == - && $fault != poison-events ]]; then fail_because "no recovery ($recovery_detail)"; fi
    local res=ok
    if ((${#problems[@]})); then
        res=FAILED
        for f in "$work/$fault".*.log; do
            [[ -f $f ]] || continue
            say "$fault: last lines of ${f##*/}:"
            tail -n 4 "$f" | cut -c1-300 | sed 's/^/    /' | tee -a "$fault_out"
        done
    fi
    rows+=("$fault $produced $stored $lost $stored_twice $(redelivered) $dead_lettered $rec $res")
    printf '%s\n' "${rows[-1]}" >>"$fault_out"
    result_of[$fault]=$res
    seconds_of[$fault]=$((SECONDS - t0))
    say "$fault: $res in $((SECONDS - t0)) s"
    fault_out=''
}
dead_letters_at_least() {
    local n
    n=$(metric "${iurl[proc.1]}" processor_dead_letters_total)
    ((${n:-0} >= $1))
}

say "services: Kafka $BROKERS, FerretDB $MONGO, S3 ${S3:-none} (state $STATE); limit ${LIMIT}s"
overall=0
for f in "${faults[@]}"; do
    deadline || break
    run_fault "$f"
    [[ ${result_of[$f]} == ok ]] || overall=1
done
if ((${#rows[@]} < ${#faults[@]})); then
    abort_reason="time limit (${LIMIT}s) reached"
    say "only ${#rows[@]} of ${#faults[@]} faults ran within the time limit"
    overall=1
fi
say "suite took $((SECONDS - suite_start)) s"
if ((overall)); then say "FAILED"; else say "ok: every fault lost 0 and stored nothing twice"; fi
exit "$overall"
