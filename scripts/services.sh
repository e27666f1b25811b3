#!/usr/bin/env bash
# Real test services for telemetryd, on 127.0.0.1 only:
#   kafka     Apache Kafka 3.7.2, one KRaft node (broker+controller), jars from Maven Central;
#             listeners PLAINTEXT, SSL (client certificate required) and SASL_SSL (SCRAM-SHA-512)
#   ferretdb  FerretDB v1.24.2 (MongoDB wire protocol) on SQLite, built from the Go module proxy
#   s3        versitygw v1.8.0 (S3 API) on its posix backend, built from the Go module proxy;
#             test-only root credentials from this script, bucket telemetryd-test created on up
#   s3tls     the same gateway over https, with a test CA and certificate made by openssl here
#   ferretdb-tls  a second FerretDB: TLS only (client certificate required), user authentication
# The TLS services use test-only certificates from scripts/gen-test-certs.sh (<state>/certs) and
# random test passwords kept in <state>/secrets.
#   influxdb  InfluxDB 1.6.7, Debian's /usr/bin/influxd (package influxdb): the v1 write API
#   influxdb18 InfluxDB 1.8.10 built from the Go module proxy, auth enabled, https with a test CA:
#             the v2 compatibility write API (/api/v2/write with a Token); started only when named or
#             TELEMETRYD_WITH_INFLUXDB18=1 (its first build takes about two minutes)
#   postgresql PostgreSQL 15, Debian's /usr/lib/postgresql/15/bin (packages postgresql, libpq-dev):
#             its own cluster under <state>/postgresql, TCP on 127.0.0.1 only (no Unix socket),
#             scram-sha-256 for a test user with a random password (<state>/secrets), database
#             telemetry, TLS (ssl=on, test certificates) offered but not required. As root it
#             runs as the `postgres` user (PostgreSQL refuses to run as root)
#
# Usage: scripts/services.sh up|down|status|restart|clean [--purge] [SERVICE ...]
#   SERVICE: kafka, ferretdb, ferretdb-tls, s3, s3tls, influxdb, influxdb18, postgresql
#   up        fetch/build if needed, start what is not running, wait until ready, write <state>/env
#   down      stop what this script started (pid files); `down --purge` also deletes data + logs
#   status    one line per service; exit 0 when all requested services run, else 3
#   restart   down + up
#   clean     down + delete the services' data folders and logs (same as down --purge)
# No service names: every service but influxdb18 (added when TELEMETRYD_WITH_INFLUXDB18=1);
# down and clean stop every known service.
#
# Environment (defaults):
#   TELEMETRYD_CACHE=$HOME/.cache/telemetryd       downloads and builds (outside the repo)
#   TELEMETRYD_SERVICES_DIR=<repo>/.services        state: env, logs/, run/, kafka/, ferretdb/,
#                                                   tls-ferretdb/, certs/, secrets/
#   TELEMETRYD_KAFKA_PORT=9092  TELEMETRYD_KAFKA_CONTROLLER_PORT=9093
#   TELEMETRYD_MONGO_PORT=27017 TELEMETRYD_FERRETDB_DEBUG_PORT=28088 TELEMETRYD_S3_PORT=9070
#   TELEMETRYD_S3_TLS_PORT=9071
#   TELEMETRYD_KAFKA_SSL_PORT=9094 TELEMETRYD_KAFKA_SASL_SSL_PORT=9095
#   TELEMETRYD_MONGO_TLS_PORT=27018 TELEMETRYD_FERRETDB_TLS_DEBUG_PORT=28089
#   TELEMETRYD_INFLUXDB_PORT=8086 TELEMETRYD_INFLUXDB_RPC_PORT=18088 (InfluxDB's backup RPC,
#   which cannot be turned off; its default 8088 collides with FerretDB's debug port)
#   TELEMETRYD_INFLUXDB18_PORT=18086 TELEMETRYD_INFLUXDB18_RPC_PORT=18089
#   TELEMETRYD_POSTGRES_PORT=15432 (not 5432: Debian's package may run its own cluster there)
# Tests: `source <state>/env` gives TELEMETRYD_TEST_KAFKA_BROKERS, TELEMETRYD_TEST_MONGO_URI,
# TELEMETRYD_SERVICES_DIR and TELEMETRYD_KAFKA_LIBS; for S3: TELEMETRYD_TEST_S3_ENDPOINT,
# _S3_ACCESS_KEY, _S3_SECRET_KEY, _S3_BUCKET, _S3_REGION, _S3_TLS_ENDPOINT, _S3_CA_FILE; for TLS:
# TELEMETRYD_TEST_CERTS_DIR, TELEMETRYD_TEST_KAFKA_SSL_BROKERS, TELEMETRYD_TEST_KAFKA_SASL_SSL_BROKERS,
# TELEMETRYD_TEST_KAFKA_SCRAM_USER, TELEMETRYD_TEST_KAFKA_SCRAM_PASSWORD,
# TELEMETRYD_TEST_MONGO_TLS_ADDRESS, TELEMETRYD_TEST_MONGO_TLS_URI (TLS options, no credentials),
# TELEMETRYD_TEST_MONGO_TLS_USER, TELEMETRYD_TEST_MONGO_TLS_PASSWORD,
# TELEMETRYD_TEST_MONGO_TLS_AUTH_SOURCE.
# InfluxDB: TELEMETRYD_TEST_INFLUXDB_URL, (with influxdb18) TELEMETRYD_TEST_INFLUXDB18_URL (https),
# TELEMETRYD_TEST_INFLUXDB18_CA_FILE and TELEMETRYD_TEST_INFLUXDB18_TOKEN.
# PostgreSQL: TELEMETRYD_TEST_POSTGRES_HOST, _PORT, _USER, _PASSWORD, _PASSWORD_FILE, _DATABASE,
# _CA_FILE, and TELEMETRYD_TEST_POSTGRES_DSN (a libpq conninfo without the password).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/services-common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/services-common.sh"

STATE_DIR="${TELEMETRYD_SERVICES_DIR:-$TD_REPO_ROOT/.services}"
[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
STATE_DIR="${STATE_DIR%/}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"

KAFKA_PORT="${TELEMETRYD_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${TELEMETRYD_KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${TELEMETRYD_MONGO_PORT:-27017}"
FERRETDB_DEBUG_PORT="${TELEMETRYD_FERRETDB_DEBUG_PORT:-28088}"
S3_PORT="${TELEMETRYD_S3_PORT:-9070}"
S3_TLS_PORT="${TELEMETRYD_S3_TLS_PORT:-9071}"
KAFKA_SSL_PORT="${TELEMETRYD_KAFKA_SSL_PORT:-9094}"
KAFKA_SASL_SSL_PORT="${TELEMETRYD_KAFKA_SASL_SSL_PORT:-9095}"
MONGO_TLS_PORT="${TELEMETRYD_MONGO_TLS_PORT:-27018}"
FERRETDB_TLS_DEBUG_PORT="${TELEMETRYD_FERRETDB_TLS_DEBUG_PORT:-28089}"
INFLUXDB_PORT="${TELEMETRYD_INFLUXDB_PORT:-8086}"
INFLUXDB_RPC_PORT="${TELEMETRYD_INFLUXDB_RPC_PORT:-18088}"
INFLUXDB18_PORT="${TELEMETRYD_INFLUXDB18_PORT:-18086}"
INFLUXDB18_RPC_PORT="${TELEMETRYD_INFLUXDB18_RPC_PORT:-18089}"
INFLUXDB_BIN=/usr/bin/influxd
POSTGRES_PORT="${TELEMETRYD_POSTGRES_PORT:-15432}"
POSTGRES_BIN_DIR=/usr/lib/postgresql/15/bin

KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
FERRETDB_DIR="$STATE_DIR/ferretdb"
S3_DIR="$STATE_DIR/s3"
S3TLS_DIR="$STATE_DIR/s3tls"
# Test-only credentials of a gateway that listens on loopback and holds throwaway data.
S3_ACCESS_KEY=telemetryd-test
S3_SECRET_KEY=telemetryd-test-secret-not-for-production
S3_BUCKET=telemetryd-test
S3_REGION=us-east-1
# Not "ferretdb-tls": the cmdline marker of ferretdb (--state-dir=$FERRETDB_DIR) must not match it.
FERRETDB_TLS_DIR="$STATE_DIR/tls-ferretdb"
CERTS_DIR="$STATE_DIR/certs"
SECRETS_DIR="$STATE_DIR/secrets"
KAFKA_SCRAM_USER=telemetryd-test
MONGO_TLS_USER=telemetryd-test
MONGO_TLS_AUTH_SOURCE=admin
INFLUXDB_DIR="$STATE_DIR/influxdb"
INFLUXDB18_DIR="$STATE_DIR/influxdb18"
# Test-only credentials of the influxdb18 admin (its v2 token is "user:password").
INFLUXDB18_USER=telemetryd
INFLUXDB18_PASSWORD=telemetryd-test
POSTGRES_DIR="$STATE_DIR/postgresql"
POSTGRES_USER=telemetryd_test
POSTGRES_DATABASE=telemetry

KAFKA_READY_TIMEOUT=90
FERRETDB_READY_TIMEOUT=60
S3_READY_TIMEOUT=30
INFLUXDB_READY_TIMEOUT=60
POSTGRES_READY_TIMEOUT=60
STOP_TIMEOUT=20

ALL_SERVICES=(kafka ferretdb ferretdb-tls s3 s3tls influxdb influxdb18 postgresql)
DEFAULT_SERVICES=(kafka ferretdb ferretdb-tls s3 s3tls influxdb postgresql)
if [[ "${TELEMETRYD_WITH_INFLUXDB18:-0}" == 1 ]]; then DEFAULT_SERVICES+=(influxdb18); fi

say() { printf 'services: %s\n' "$*"; }
fail() {
    printf 'services: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
    exit "${1:-2}"
}

now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$MONGO_PORT" "$FERRETDB_DEBUG_PORT" \
    "$KAFKA_SSL_PORT" "$KAFKA_SASL_SSL_PORT" "$MONGO_TLS_PORT" "$FERRETDB_TLS_DEBUG_PORT" \
    "$S3_PORT" "$S3_TLS_PORT" \
    "$INFLUXDB_PORT" "$INFLUXDB_RPC_PORT" "$INFLUXDB18_PORT" "$INFLUXDB18_RPC_PORT" \
    "$POSTGRES_PORT"; do
    [[ "$p" =~ ^[0-9]+$ ]] || fail "invalid port number: '$p'"
done

# ------------------------------------------------------------------------ pid bookkeeping

pidfile() { printf '%s/%s.pid\n' "$RUN_DIR" "$1"; }

# A string that must occur in /proc/PID/cmdline for the pid to count as "ours".
cmdline_marker() {
    case $1 in
    kafka) printf '%s\n' "$KAFKA_CONFIG" ;;
    ferretdb) printf '%s\n' "--state-dir=$FERRETDB_DIR" ;;
    s3) printf '%s\n' "$S3_DIR/data" ;;
    s3tls) printf '%s\n' "$S3TLS_DIR/data" ;;
    ferretdb-tls) printf '%s\n' "--state-dir=$FERRETDB_TLS_DIR" ;;
    influxdb) printf '%s\n' "$INFLUXDB_DIR/influxdb.conf" ;;
    influxdb18) printf '%s\n' "$INFLUXDB18_DIR/influxdb.conf" ;;
    postgresql) printf '%s\n' "$POSTGRES_DIR/data" ;;
    esac
}
cmdline_program() {
    case $1 in
    kafka) printf '%s\n' "kafka.Kafka" ;;
    ferretdb) printf '%s\n' "ferretdb" ;;
    s3 | s3tls) printf '%s\n' "versitygw" ;;
    ferretdb-tls) printf '%s\n' "ferretdb" ;;
    influxdb) printf '%s\n' "$INFLUXDB_BIN" ;;
    influxdb18) printf '%s\n' "$INFLUXDB18_BIN" ;;
    postgresql) printf '%s\n' "$POSTGRES_BIN_DIR/postgres" ;;
    esac
}

# Prints the pid and succeeds when the service's pid file names a live process whose
# command line is still the one this script started.
service_pid() {
    local svc=$1 f pid cmd
    f="$(pidfile "$svc")"
    [[ -f "$f" ]] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"$(cmdline_program "$svc")"* && "$cmd" == *"$(cmdline_marker "$svc")"* ]] || return 1
    printf '%s\n' "$pid"
}

service_port() {
    case $1 in
    kafka) printf '%s\n' "$KAFKA_PORT" ;;
    ferretdb) printf '%s\n' "$MONGO_PORT" ;;
    s3) printf '%s\n' "$S3_PORT" ;;
    s3tls) printf '%s\n' "$S3_TLS_PORT" ;;
    ferretdb-tls) printf '%s\n' "$MONGO_TLS_PORT" ;;
    influxdb) printf '%s\n' "$INFLUXDB_PORT" ;;
    influxdb18) printf '%s\n' "$INFLUXDB18_PORT" ;;
    postgresql) printf '%s\n' "$POSTGRES_PORT" ;;
    esac
}
service_ports() {
    case $1 in
    kafka) printf '%s\n' "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SSL_PORT" "$KAFKA_SASL_SSL_PORT" ;;
    ferretdb) printf '%s\n' "$MONGO_PORT" "$FERRETDB_DEBUG_PORT" ;;
    s3) printf '%s\n' "$S3_PORT" ;;
    s3tls) printf '%s\n' "$S3_TLS_PORT" ;;
    ferretdb-tls) printf '%s\n' "$MONGO_TLS_PORT" "$FERRETDB_TLS_DEBUG_PORT" ;;
    influxdb) printf '%s\n' "$INFLUXDB_PORT" "$INFLUXDB_RPC_PORT" ;;
    influxdb18) printf '%s\n' "$INFLUXDB18_PORT" "$INFLUXDB18_RPC_PORT" ;;
    postgresql) printf '%s\n' "$POSTGRES_PORT" ;;
    esac
}

check_ports_free() {
    local svc=$1 p
    for p in $(service_ports "$svc"); do
        if port_open "$p"; then
            fail "$svc: port 127.0.0.1:$p is already in use by a process this script did not start" \
                "(see: ss -ltnp 'sport = :$p')"
        fi
    done
}

# Moves the previous run's log aside so readiness checks only see this run's lines.
rotate_log() { if [[ -f "$1" ]]; then mv -f "$1" "$1.1"; fi; }

log_tail() {
    local f
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        printf -- '----- last lines of %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2
    done
}

# ---------------------------------------------------------------- TLS test material

ensure_certs() {
    local out svc
    out="$("$TD_SCRIPTS_DIR/gen-test-certs.sh" "$CERTS_DIR")" || fail "gen-test-certs.sh $CERTS_DIR failed"
    [[ "$out" == *"are current"* ]] && return 0
    for svc in kafka ferretdb-tls; do
        if service_pid "$svc" >/dev/null; then
            say "warning: new test certificates; $svc still uses the old ones (scripts/services.sh restart $svc)"
        fi
    done
}

# Prints the test password kept in <state>/secrets/$1, creating a random one first. $2 is a
# prefix (characters the password must also survive: the MongoDB one is percent-encoded).
test_secret() {
    local f="$SECRETS_DIR/$1"
    if [[ ! -s "$f" ]]; then
        mkdir -p "$SECRETS_DIR"
        chmod 700 "$SECRETS_DIR"
        (umask 077 && printf '%s%s\n' "$2" "$(openssl rand -hex 12)" >"$f.tmp" && mv "$f.tmp" "$f")
    fi
    head -n1 "$f"
}

# "user sha256(password)": written next to the data a user was created in, so a new password
# (a deleted secrets dir) is noticed.
credential_marker() { printf '%s %s\n' "$1" "$(printf '%s' "$2" | sha256sum | cut -d' ' -f1)"; }

# ------------------------------------------------------------------------------- kafka

kafka_scram_password() { test_secret kafka-scram-password kafka-; }

kafka_write_config() {
    mkdir -p "$KAFKA_DATA"
    local key_password
    key_password="$(head -n1 "$CERTS_DIR/server-keystore.password")"
    (umask 077 && : >"$KAFKA_CONFIG.tmp")
    cat >"$KAFKA_CONFIG.tmp" <<EOF
# Generated by scripts/services.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
# TLS listeners with the test certificates (scripts/gen-test-certs.sh). SSL requires a client
# certificate signed by the test CA; SASL_SSL authenticates with SCRAM-SHA-512 instead.
ssl.keystore.type=PEM
ssl.keystore.location=$CERTS_DIR/server-keystore.pem
ssl.key.password=$key_password
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
EOF
    mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

kafka_prepare() {
    td_require_java
    td_ensure_kafka_libs
    ensure_certs
}

kafka_start() {
    local id out password
    kafka_write_config
    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        id="$(td_kafka_java kafka.tools.StorageTool random-uuid)" || fail "kafka: StorageTool random-uuid failed"
        id="$(printf '%s\n' "$id" | tail -n1 | tr -d '[:space:]')"
        # The SCRAM user goes into the first metadata records; no broker round trip needed.
        password="$(kafka_scram_password)"
        if ! out="$(td_kafka_java kafka.tools.StorageTool format -t "$id" -c "$KAFKA_CONFIG" \
            --add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$password]" 2>&1)"; then
            printf '%s\n' "$out" >&2
            fail "kafka: formatting $KAFKA_DATA failed"
        fi
        credential_marker "$KAFKA_SCRAM_USER" "$password" >"$KAFKA_DIR/scram-user"
        say "kafka: formatted storage in $KAFKA_DATA (cluster id $id, SCRAM user $KAFKA_SCRAM_USER)"
    fi
    rotate_log "$LOG_DIR/kafka.log"
    rotate_log "$LOG_DIR/kafka.out"
    cd "$KAFKA_DIR"
    setsid nohup java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j.configuration="file:$KAFKA_SERVER_LOG4J" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG" \
        </dev/null >"$LOG_DIR/kafka.out" 2>&1 9>&- &
    echo $! >"$(pidfile kafka)"
    cd - >/dev/null
}

# Succeeds when kafka answers a metadata request (lists topics).
kafka_roundtrip() {
    TELEMETRYD_KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto" \
        timeout 30 "$TD_SCRIPTS_DIR/kafka-tool.sh" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

# Storage formatted before the SCRAM user existed (or a new password): set it with Kafka's own
# admin tool over the PLAINTEXT listener.
kafka_ensure_scram_user() {
    local password
    password="$(kafka_scram_password)"
    [[ "$(cat "$KAFKA_DIR/scram-user" 2>/dev/null)" == "$(credential_marker "$KAFKA_SCRAM_USER" "$password")" ]] &&
        return 0
    TELEMETRYD_KAFKA_TOOL_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto" \
        timeout 60 "$TD_SCRIPTS_DIR/kafka-tool.sh" kafka.admin.ConfigCommand \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter --entity-type users \
        --entity-name "$KAFKA_SCRAM_USER" \
        --add-config "SCRAM-SHA-512=[iterations=4096,password=$password]" >/dev/null || return 1
    credential_marker "$KAFKA_SCRAM_USER" "$password" >"$KAFKA_DIR/scram-user"
    say "kafka: SCRAM-SHA-512 user $KAFKA_SCRAM_USER set with ConfigCommand"
}

kafka_ready() {
    grep -q 'Kafka Server started' "$LOG_DIR/kafka.log" 2>/dev/null && kafka_roundtrip &&
        port_open "$KAFKA_SSL_PORT" && port_open "$KAFKA_SASL_SSL_PORT" && kafka_ensure_scram_user
}

# ---------------------------------------------------------------------------- ferretdb

ferretdb_prepare() { td_ensure_ferretdb_bin; }

ferretdb_start() {
    mkdir -p "$FERRETDB_DIR/data"
    rotate_log "$LOG_DIR/ferretdb.log"
    cd "$FERRETDB_DIR"
    setsid nohup "$FERRETDB_BIN" \
        --handler=sqlite \
        --sqlite-url="file:$FERRETDB_DIR/data/" \
        --state-dir="$FERRETDB_DIR" \
        --listen-addr="127.0.0.1:$MONGO_PORT" \
        --debug-addr="127.0.0.1:$FERRETDB_DEBUG_PORT" \
        --telemetry=disable \
        --log-format=json \
        </dev/null >"$LOG_DIR/ferretdb.log" 2>&1 9>&- &
    echo $! >"$(pidfile ferretdb)"
    cd - >/dev/null
}

ferretdb_ready() {
    port_open "$MONGO_PORT" &&
        grep -q "Listening on TCP 127.0.0.1:$MONGO_PORT" "$LOG_DIR/ferretdb.log" 2>/dev/null
}

# ---------------------------------------------------------------------------------- s3

s3_prepare() {
    command -v curl >/dev/null 2>&1 || fail "s3: curl not found (it creates the test bucket)"
    td_ensure_versitygw_bin
}

# Starts versitygw on 127.0.0.1:$1 over the posix directory $2; more flags (TLS) follow.
# Only the S3 port is opened: no --webui, --admin-port or --website, and no event, metrics or
# log-webhook targets, so the gateway makes no outbound connection. Credentials go in through
# the environment rather than the command line.
versitygw_start() {
    local svc=$1 port=$2 dir=$3
    shift 3
    mkdir -p "$dir/data"
    rotate_log "$LOG_DIR/$svc.log"
    cd "$dir"
    ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
        setsid nohup "$VERSITYGW_BIN" \
        --port "127.0.0.1:$port" \
        --region "$S3_REGION" \
        "$@" \
        posix "$dir/data" \
        </dev/null >"$LOG_DIR/$svc.log" 2>&1 9>&- &
    echo $! >"$(pidfile "$svc")"
    cd - >/dev/null
}

s3_start() { versitygw_start s3 "$S3_PORT" "$S3_DIR"; }

# A signed PUT Bucket: 200 when created, 409 BucketAlreadyOwnedByYou when it exists.
# (curl signs with --aws-sigv4 but does not add the payload hash S3 requires.)
s3_create_bucket() {
    local url=$1 code
    shift
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" \
        --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
        -X PUT "$url/$S3_BUCKET")" || return 1
    [[ "$code" == 200 || "$code" == 409 ]]
}

s3_ready() { port_open "$S3_PORT" && s3_create_bucket "http://127.0.0.1:$S3_PORT"; }

s3tls_prepare() {
    command -v openssl >/dev/null 2>&1 || fail "s3tls: openssl not found (it makes the test CA)"
    s3_prepare
}

# A throwaway CA and a server certificate for 127.0.0.1 and localhost, made once per state
# dir: tests verify the gateway against ca.pem the way production verifies a real endpoint.
s3tls_certs() {
    local d="$S3TLS_DIR/tls" out
    [[ -s "$d/ca.pem" && -s "$d/server.pem" && -s "$d/server.key" ]] && return 0
    mkdir -p "$d"
    if ! out="$(
        set -e
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=telemetryd test CA" \
            -keyout "$d/ca.key" -out "$d/ca.pem" 2>&1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$d/server.key" -out "$d/server.csr" 2>&1
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$d/ext.cnf"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
            -CAcreateserial -days 3650 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>&1
    )"; then
        printf '%s\n' "$out" >&2
        rm -f "$d/ca.pem" "$d/server.pem"
        fail "s3tls: making the test certificates failed"
    fi
    chmod 600 "$d"/*.key
}

s3tls_start() {
    s3tls_certs
    versitygw_start s3tls "$S3_TLS_PORT" "$S3TLS_DIR" \
        --cert "$S3TLS_DIR/tls/server.pem" --key "$S3TLS_DIR/tls/server.key"
}

s3tls_ready() {
    port_open "$S3_TLS_PORT" &&
        s3_create_bucket "https://127.0.0.1:$S3_TLS_PORT" --cacert "$S3TLS_DIR/tls/ca.pem"
}

# ------------------------------------------------------------------------ ferretdb-tls
# A second FerretDB instance, TLS only: --test-enable-new-auth switches authentication on for
# every listener of an instance, so the plain one stays as it is and this one has its own state
# dir, data and ports. A CA file makes FerretDB require a client certificate signed by it. The
# setup user is created when the instance first creates its setup database.

mongo_tls_password() { test_secret mongo-tls-password 'p@ss:w/rd%'; }

ferretdb-tls_prepare() {
    td_ensure_ferretdb_bin
    ensure_certs
}

ferretdb-tls_start() {
    local password marker
    password="$(mongo_tls_password)"
    marker="$(credential_marker "$MONGO_TLS_USER" "$password")"
    if [[ "$(cat "$FERRETDB_TLS_DIR/setup-user" 2>/dev/null)" != "$marker" ]]; then
        rm -rf "$FERRETDB_TLS_DIR/data" # the user lives in the data; start over with the new one
    fi
    mkdir -p "$FERRETDB_TLS_DIR/data"
    printf '%s\n' "$marker" >"$FERRETDB_TLS_DIR/setup-user"
    rotate_log "$LOG_DIR/ferretdb-tls.log"
    cd "$FERRETDB_TLS_DIR"
    # The password goes through the environment, not the command line (/proc/PID/cmdline).
    FERRETDB_SETUP_PASSWORD="$password" setsid nohup "$FERRETDB_BIN" \
        --handler=sqlite \
        --sqlite-url="file:$FERRETDB_TLS_DIR/data/" \
        --state-dir="$FERRETDB_TLS_DIR" \
        --listen-addr= \
        --listen-tls="127.0.0.1:$MONGO_TLS_PORT" \
        --listen-tls-cert-file="$CERTS_DIR/server-chain.pem" \
        --listen-tls-key-file="$CERTS_DIR/server.key" \
        --listen-tls-ca-file="$CERTS_DIR/ca.pem" \
        --debug-addr="127.0.0.1:$FERRETDB_TLS_DEBUG_PORT" \
        --test-enable-new-auth \
        --setup-database="$MONGO_TLS_AUTH_SOURCE" \
        --setup-username="$MONGO_TLS_USER" \
        --telemetry=disable \
        --log-format=json \
        </dev/null >"$LOG_DIR/ferretdb-tls.log" 2>&1 9>&- &
    echo $! >"$(pidfile ferretdb-tls)"
    cd - >/dev/null
}

ferretdb-tls_ready() {
    port_open "$MONGO_TLS_PORT" &&
        grep -q "Listening on TLS 127.0.0.1:$MONGO_TLS_PORT" "$LOG_DIR/ferretdb-tls.log" 2>/dev/null
}

# ---------------------------------------------------------------------------- influxdb

# influxdb_write_config DIR HTTP_PORT RPC_PORT AUTH(true|false) EXTRA_HTTP_LINES [EXTRA_SECTION]
# Only the HTTP API on 127.0.0.1, plus the backup RPC (it cannot be turned off) on another
# loopback port; usage reporting, the _internal monitor store, subscriptions, continuous
# queries and the graphite, collectd, opentsdb and udp listeners are all off.
influxdb_write_config() {
    local dir=$1 http_port=$2 rpc_port=$3 auth=$4 extra_http=$5 extra_section=${6:-}
    mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
    cat >"$dir/influxdb.conf.tmp" <<EOF
# Generated by scripts/services.sh; rewritten on every start.
reporting-disabled = true
bind-address = "127.0.0.1:$rpc_port"
[meta]
  dir = "$dir/meta"
  logging-enabled = false
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$http_port"
  auth-enabled = $auth
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false
$extra_http
[continuous_queries]
  enabled = false
$extra_section
[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
EOF
    mv "$dir/influxdb.conf.tmp" "$dir/influxdb.conf"
}

influxdb_prepare() {
    [[ -x "$INFLUXDB_BIN" ]] || fail "influxdb: $INFLUXDB_BIN not found (run scripts/bootstrap.sh: package influxdb)"
}

influxdb_start() {
    influxdb_write_config "$INFLUXDB_DIR" "$INFLUXDB_PORT" "$INFLUXDB_RPC_PORT" false "  https-enabled = false" "[ifql]
  enabled = false"
    rotate_log "$LOG_DIR/influxdb.log"
    cd "$INFLUXDB_DIR"
    setsid nohup "$INFLUXDB_BIN" run -config "$INFLUXDB_DIR/influxdb.conf" \
        </dev/null >"$LOG_DIR/influxdb.log" 2>&1 9>&- &
    echo $! >"$(pidfile influxdb)"
    cd - >/dev/null
}

influx_ping() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$1/ping"; }
influx18_curl() { curl -sf -o /dev/null --max-time 5 --cacert "$INFLUXDB18_DIR/tls/ca.pem" "$@"; }

influxdb_ready() { influx_ping "$INFLUXDB_PORT"; }

influxdb18_prepare() {
    td_ensure_influxdb18_bin
    influxdb18_certs
}

# A private CA and a server certificate for localhost/127.0.0.1, made once per state dir, so the
# v2 tests also cover https with a CA file and host name verification.
influxdb18_certs() {
    local d="$INFLUXDB18_DIR/tls" out
    [[ -s "$d/server.pem" && -s "$d/ca.pem" ]] && return 0
    command -v openssl >/dev/null 2>&1 || fail "influxdb18: openssl not found (run scripts/bootstrap.sh)"
    mkdir -p "$d"
    if ! out="$(
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=telemetryd test CA" \
            -keyout "$d/ca.key" -out "$d/ca.pem" 2>&1 &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout "$d/server.key" -out "$d/server.csr" 2>&1 &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/ext.cnf" &&
            openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
                -CAcreateserial -days 3650 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>&1
    )"; then
        printf '%s\n' "$out" >&2
        rm -rf "$d"
        fail "influxdb18: could not make the test certificates"
    fi
    say "influxdb18: made a test CA and server certificate in $d"
}

influxdb18_start() {
    influxdb_write_config "$INFLUXDB18_DIR" "$INFLUXDB18_PORT" "$INFLUXDB18_RPC_PORT" true "  flux-enabled = false
  https-enabled = true
  https-certificate = \"$INFLUXDB18_DIR/tls/server.pem\"
  https-private-key = \"$INFLUXDB18_DIR/tls/server.key\""
    rotate_log "$LOG_DIR/influxdb18.log"
    cd "$INFLUXDB18_DIR"
    setsid nohup "$INFLUXDB18_BIN" run -config "$INFLUXDB18_DIR/influxdb.conf" \
        </dev/null >"$LOG_DIR/influxdb18.log" 2>&1 9>&- &
    echo $! >"$(pidfile influxdb18)"
    cd - >/dev/null
}

# Ready once it answers /ping and the admin user works (created on the first start: with auth
# on, InfluxDB lets the first admin be created without credentials).
influxdb18_ready() {
    influx18_curl "https://localhost:$INFLUXDB18_PORT/ping" || return 1
    local url="https://localhost:$INFLUXDB18_PORT/query"
    local q="CREATE USER \"$INFLUXDB18_USER\" WITH PASSWORD '$INFLUXDB18_PASSWORD' WITH ALL PRIVILEGES"
    influx18_curl -u "$INFLUXDB18_USER:$INFLUXDB18_PASSWORD" "$url" --data-urlencode "q=SHOW USERS" &&
        return 0
    influx18_curl "$url" --data-urlencode "q=$q"
}

# -------------------------------------------------------------------------- postgresql

postgres_password() { test_secret postgres-password pg-; }

# PostgreSQL refuses to run as root: as root every server command runs as the `postgres` user
# (Debian's package makes it), which then owns the cluster's folder; as anyone else, as that
# user. setpriv execs in place, so the pid this script records is the postmaster's own.
postgres_as() {
    if ((EUID == 0)); then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

postgresql_prepare() {
    [[ -x "$POSTGRES_BIN_DIR/postgres" ]] ||
        fail "postgresql: $POSTGRES_BIN_DIR/postgres not found (run scripts/bootstrap.sh: packages postgresql, libpq-dev)"
    command -v pg_isready >/dev/null 2>&1 || fail "postgresql: pg_isready not found (package postgresql-client)"
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 || fail "postgresql: running as root needs the postgres user (package postgresql)"
    fi
    ensure_certs
}

# A new cluster: the superuser is the test user (scram-sha-256, its password read from a file
# only it can read, never on a command line), then its database. Single-user mode creates the
# database before any port opens.
postgresql_init() {
    local pwfile="$POSTGRES_DIR/pwfile" out
    mkdir -p "$POSTGRES_DIR"
    if ((EUID == 0)); then chown postgres:postgres "$POSTGRES_DIR"; fi
    chmod 700 "$POSTGRES_DIR"
    (umask 077 && postgres_password >"$pwfile")
    if ((EUID == 0)); then chown postgres:postgres "$pwfile"; fi
    if ! out="$(postgres_as "$POSTGRES_BIN_DIR/initdb" -D "$POSTGRES_DIR/data" -U "$POSTGRES_USER" \
        --pwfile="$pwfile" --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 2>&1)"; then
        rm -f "$pwfile"
        printf '%s\n' "$out" >&2
        rm -rf "$POSTGRES_DIR/data"
        fail "postgresql: initdb failed"
    fi
    rm -f "$pwfile"
    if ! out="$(printf 'CREATE DATABASE %s\n' "$POSTGRES_DATABASE" |
        postgres_as "$POSTGRES_BIN_DIR/postgres" --single -D "$POSTGRES_DIR/data" postgres 2>&1)"; then
        printf '%s\n' "$out" >&2
        rm -rf "$POSTGRES_DIR/data"
        fail "postgresql: creating database $POSTGRES_DATABASE failed"
    fi
    credential_marker "$POSTGRES_USER" "$(postgres_password)" >"$POSTGRES_DIR/test-user"
    say "postgresql: new cluster in $POSTGRES_DIR/data (user $POSTGRES_USER, database $POSTGRES_DATABASE)"
}

postgresql_start() {
    # A cluster made with another password (deleted secrets) could never be logged into.
    if [[ -d "$POSTGRES_DIR/data" &&
        "$(cat "$POSTGRES_DIR/test-user" 2>/dev/null)" != "$(credential_marker "$POSTGRES_USER" "$(postgres_password)")" ]]; then
        say "postgresql: the test password changed; making a new cluster"
        rm -rf "$POSTGRES_DIR/data"
    fi
    [[ -f "$POSTGRES_DIR/data/PG_VERSION" ]] || postgresql_init
    # The server key must belong to the server's user and be private: copies of the test ones.
    install -m 600 "$CERTS_DIR/server.pem" "$POSTGRES_DIR/data/server.crt"
    install -m 600 "$CERTS_DIR/server.key" "$POSTGRES_DIR/data/server.key"
    if ((EUID == 0)); then chown postgres:postgres "$POSTGRES_DIR/data/server.crt" "$POSTGRES_DIR/data/server.key"; fi
    rotate_log "$LOG_DIR/postgresql.log"
    local -a as_user=()
    if ((EUID == 0)); then as_user=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi
    cd "$POSTGRES_DIR"
    # Settings on the command line, so the cluster's own files stay as initdb wrote them:
    # loopback TCP only, no Unix socket (no /run/postgresql needed), TLS offered, not required;
    # throwaway test data, so no fsync.
    setsid nohup "${as_user[@]}" "$POSTGRES_BIN_DIR/postgres" -D "$POSTGRES_DIR/data" \
        -c listen_addresses=127.0.0.1 -c port="$POSTGRES_PORT" -c unix_socket_directories= \
        -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key \
        -c max_connections=50 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        </dev/null >"$LOG_DIR/postgresql.log" 2>&1 9>&- &
    echo $! >"$(pidfile postgresql)"
    cd - >/dev/null
}

postgresql_ready() {
    pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT" -d "$POSTGRES_DATABASE" -U "$POSTGRES_USER" -t 2
}

# ------------------------------------------------------------------------------- verbs

declare -A STARTED_AT=()

start_service() {
    local svc=$1 pid
    if pid="$(service_pid "$svc")"; then
        say "$svc already running (pid $pid, 127.0.0.1:$(service_port "$svc"))"
        return 0
    fi
    rm -f "$(pidfile "$svc")"
    check_ports_free "$svc"
    STARTED_AT[$svc]="$(now)"
    "${svc}_start"
}

ready_timeout() {
    case $1 in
    kafka) printf '%s\n' "$KAFKA_READY_TIMEOUT" ;;
    ferretdb) printf '%s\n' "$FERRETDB_READY_TIMEOUT" ;;
    s3 | s3tls) printf '%s\n' "$S3_READY_TIMEOUT" ;;
    ferretdb-tls) printf '%s\n' "$FERRETDB_READY_TIMEOUT" ;;
    influxdb | influxdb18) printf '%s\n' "$INFLUXDB_READY_TIMEOUT" ;;
    postgresql) printf '%s\n' "$POSTGRES_READY_TIMEOUT" ;;
    esac
}

# Polls every service started by this run until each is ready; fails (after stopping it
# and printing its log tail) when one exits or is not ready within its timeout.
wait_ready() {
    local svc pid start timeout
    local -a pending=()
    for svc in "$@"; do
        if [[ -n "${STARTED_AT[$svc]:-}" ]]; then pending+=("$svc"); fi
    done
    while ((${#pending[@]})); do
        local -a still=()
        for svc in "${pending[@]}"; do
            start=${STARTED_AT[$svc]}
            timeout="$(ready_timeout "$svc")"
            if ! pid="$(service_pid "$svc")"; then
                # Right after the fork the pid still shows this script's command line until
                # setsid/exec runs; on a loaded machine that outlasts the first check. Only a
                # pid that is gone, or still not the server at the timeout, failed to start.
                pid="$(tr -dc '0-9' <"$(pidfile "$svc")" 2>/dev/null)"
                if [[ -n "$pid" && -d "/proc/$pid" ]] &&
                    awk -v a="$start" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a < t) }'; then
                    still+=("$svc")
                    continue
                fi
                log_tail "$LOG_DIR/$svc.out" "$LOG_DIR/$svc.log"
                rm -f "$(pidfile "$svc")"
                fail "$svc exited during start-up (logs in $LOG_DIR)"
            fi
            if "${svc}_ready"; then
                say "$svc started on 127.0.0.1:$(service_port "$svc") (pid $pid, ready in $(elapsed "$start")s)"
            elif awk -v a="$start" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a >= t) }'; then
                log_tail "$LOG_DIR/$svc.out" "$LOG_DIR/$svc.log"
                stop_service "$svc" >&2
                fail "$svc was not ready within ${timeout}s (logs in $LOG_DIR)"
            else
                still+=("$svc")
            fi
        done
        pending=("${still[@]}")
        if ((${#pending[@]})); then sleep 0.5; fi
    done
}

# PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client to disconnect (a
# processor under test may never); SIGINT is its fast shutdown: clients are cut off, data kept.
stop_signal() {
    case $1 in
    postgresql) printf 'INT\n' ;;
    *) printf 'TERM\n' ;;
    esac
}

stop_service() {
    local svc=$1 pid f t0 i
    f="$(pidfile "$svc")"
    if ! pid="$(service_pid "$svc")"; then
        if [[ -f "$f" ]]; then
            rm -f "$f"
            say "$svc not running (removed stale pid file)"
        else
            say "$svc not running"
        fi
        return 0
    fi
    t0="$(now)"
    kill "-$(stop_signal "$svc")" "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        [[ -d "/proc/$pid" ]] || break
        # a zombie is as good as gone
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && break
        sleep 0.1
    done
    if [[ -d "/proc/$pid" ]] && service_pid "$svc" >/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        say "$svc did not stop within ${STOP_TIMEOUT}s; sent SIGKILL to pid $pid"
        sleep 0.5
    fi
    rm -f "$f"
    say "$svc stopped (pid $pid, in $(elapsed "$t0")s)"
}

status_service() {
    local svc=$1 pid
    if pid="$(service_pid "$svc")"; then
        say "$svc running (pid $pid, 127.0.0.1:$(service_port "$svc"))"
        return 0
    fi
    if [[ -f "$(pidfile "$svc")" ]]; then
        say "$svc stopped (stale pid file)"
    else
        say "$svc stopped"
    fi
    return 3
}

purge_service() {
    case $1 in
    kafka) rm -rf "$KAFKA_DIR" "$SECRETS_DIR/kafka-scram-password" ;;
    ferretdb) rm -rf "$FERRETDB_DIR" ;;
    s3) rm -rf "$S3_DIR" ;;
    s3tls) rm -rf "$S3TLS_DIR" ;;
    ferretdb-tls) rm -rf "$FERRETDB_TLS_DIR" "$SECRETS_DIR/mongo-tls-password" ;;
    influxdb) rm -rf "$INFLUXDB_DIR" ;;
    influxdb18) rm -rf "$INFLUXDB18_DIR" ;;
    postgresql) rm -rf "$POSTGRES_DIR" "$SECRETS_DIR/postgres-password" ;;
    esac
    rm -f "$LOG_DIR/$1".*
    say "$1 data and logs deleted"
}

write_env() {
    {
        echo "# Generated by scripts/services.sh up; source it: . $STATE_DIR/env"
        printf 'export TELEMETRYD_TEST_KAFKA_BROKERS=%q\n' "127.0.0.1:$KAFKA_PORT"
        printf 'export TELEMETRYD_TEST_MONGO_URI=%q\n' "mongodb://127.0.0.1:$MONGO_PORT/"
        printf 'export TELEMETRYD_TEST_S3_ENDPOINT=%q\n' "http://127.0.0.1:$S3_PORT"
        printf 'export TELEMETRYD_TEST_S3_ACCESS_KEY=%q\n' "$S3_ACCESS_KEY"
        printf 'export TELEMETRYD_TEST_S3_SECRET_KEY=%q\n' "$S3_SECRET_KEY"
        printf 'export TELEMETRYD_TEST_S3_BUCKET=%q\n' "$S3_BUCKET"
        printf 'export TELEMETRYD_TEST_S3_REGION=%q\n' "$S3_REGION"
        printf 'export TELEMETRYD_TEST_S3_TLS_ENDPOINT=%q\n' "https://127.0.0.1:$S3_TLS_PORT"
        printf 'export TELEMETRYD_TEST_S3_CA_FILE=%q\n' "$S3TLS_DIR/tls/ca.pem"
        printf 'export TELEMETRYD_TEST_INFLUXDB_URL=%q\n' "http://127.0.0.1:$INFLUXDB_PORT"
        if service_pid influxdb18 >/dev/null; then
            printf 'export TELEMETRYD_TEST_INFLUXDB18_URL=%q\n' "https://localhost:$INFLUXDB18_PORT"
            printf 'export TELEMETRYD_TEST_INFLUXDB18_CA_FILE=%q\n' "$INFLUXDB18_DIR/tls/ca.pem"
            printf 'export TELEMETRYD_TEST_INFLUXDB18_TOKEN=%q\n' "$INFLUXDB18_USER:$INFLUXDB18_PASSWORD"
        fi
        if [[ -d "$POSTGRES_DIR/data" ]]; then
            printf 'export TELEMETRYD_TEST_POSTGRES_HOST=%q\n' 127.0.0.1
            printf 'export TELEMETRYD_TEST_POSTGRES_PORT=%q\n' "$POSTGRES_PORT"
            printf 'export TELEMETRYD_TEST_POSTGRES_USER=%q\n' "$POSTGRES_USER"
            printf 'export TELEMETRYD_TEST_POSTGRES_PASSWORD=%q\n' "$(postgres_password)"
            printf 'export TELEMETRYD_TEST_POSTGRES_PASSWORD_FILE=%q\n' "$SECRETS_DIR/postgres-password"
            printf 'export TELEMETRYD_TEST_POSTGRES_DATABASE=%q\n' "$POSTGRES_DATABASE"
            printf 'export TELEMETRYD_TEST_POSTGRES_CA_FILE=%q\n' "$CERTS_DIR/ca.pem"
            printf 'export TELEMETRYD_TEST_POSTGRES_DSN=%q\n' \
                "host=127.0.0.1 port=$POSTGRES_PORT user=$POSTGRES_USER dbname=$POSTGRES_DATABASE"
        fi
        printf 'export TELEMETRYD_SERVICES_DIR=%q\n' "$STATE_DIR"
        printf 'export TELEMETRYD_KAFKA_LIBS=%q\n' "$KAFKA_LIBS"
        # TLS and authentication (test-only certificates and passwords)
        printf 'export TELEMETRYD_TEST_CERTS_DIR=%q\n' "$CERTS_DIR"
        printf 'export TELEMETRYD_TEST_KAFKA_SSL_BROKERS=%q\n' "127.0.0.1:$KAFKA_SSL_PORT"
        printf 'export TELEMETRYD_TEST_KAFKA_SASL_SSL_BROKERS=%q\n' "127.0.0.1:$KAFKA_SASL_SSL_PORT"
        printf 'export TELEMETRYD_TEST_KAFKA_SCRAM_USER=%q\n' "$KAFKA_SCRAM_USER"
        printf 'export TELEMETRYD_TEST_KAFKA_SCRAM_PASSWORD=%q\n' "$(kafka_scram_password)"
        printf 'export TELEMETRYD_TEST_MONGO_TLS_ADDRESS=%q\n' "127.0.0.1:$MONGO_TLS_PORT"
        printf 'export TELEMETRYD_TEST_MONGO_TLS_URI=%q\n' \
            "mongodb://127.0.0.1:$MONGO_TLS_PORT/?tls=true&tlsCAFile=$CERTS_DIR/ca.pem&tlsCertificateKeyFile=$CERTS_DIR/client-combined.pem"
        printf 'export TELEMETRYD_TEST_MONGO_TLS_USER=%q\n' "$MONGO_TLS_USER"
        printf 'export TELEMETRYD_TEST_MONGO_TLS_PASSWORD=%q\n' "$(mongo_tls_password)"
        printf 'export TELEMETRYD_TEST_MONGO_TLS_AUTH_SOURCE=%q\n' "$MONGO_TLS_AUTH_SOURCE"
    } >"$STATE_DIR/env.tmp"
    mv "$STATE_DIR/env.tmp" "$STATE_DIR/env"
}

# Removes the state dir's own files and the dir itself once nothing else is in it.
tidy_state_dir() {
    local svc
    for svc in "${ALL_SERVICES[@]}"; do
        [[ -f "$(pidfile "$svc")" ]] && return 0
    done
    rm -f "$STATE_DIR/env" "$RUN_DIR/lock"
    # test certificates: only once no TLS service keeps data that was made with them
    rmdir "$SECRETS_DIR" 2>/dev/null || true
    [[ -d "$KAFKA_DIR" || -d "$FERRETDB_TLS_DIR" || -d "$POSTGRES_DIR" ]] || rm -rf "$CERTS_DIR"
    rmdir "$RUN_DIR" "$LOG_DIR" 2>/dev/null || true
    if rmdir "$STATE_DIR" 2>/dev/null; then say "removed $STATE_DIR"; fi
}

do_up() {
    local svc
    for svc in "$@"; do "${svc}_prepare"; done # downloads/builds (slow only when cold)
    for svc in "$@"; do start_service "$svc"; done
    wait_ready "$@"
    write_env
}

do_down() {
    local svc
    for svc in "$@"; do stop_service "$svc"; done
}

# ------------------------------------------------------------------------------- main

[[ $# -ge 1 ]] || usage 2
verb=$1
shift
purge=0
services=()
for arg in "$@"; do
    case $arg in
    --purge) purge=1 ;;
    kafka | ferretdb | ferretdb-tls | s3 | s3tls | influxdb | influxdb18 | postgresql) services+=("$arg") ;;
    -h | --help) usage 0 ;;
    *) fail "unknown service or option '$arg' (services: ${ALL_SERVICES[*]})" ;;
    esac
done
if ((${#services[@]} == 0)); then
    case $verb in
    down | clean) services=("${ALL_SERVICES[@]}") ;;
    *) services=("${DEFAULT_SERVICES[@]}") ;;
    esac
fi

case $verb in
down | clean)
    # nothing was ever started here: do not create the state dir just to take the lock
    [[ -d "$RUN_DIR" ]] || {
        for svc in "${services[@]}"; do say "$svc not running"; done
        if [[ $verb == clean ]] || ((purge)); then
            for svc in "${services[@]}"; do purge_service "$svc"; done
            [[ -d "$STATE_DIR" ]] && tidy_state_dir
        fi
        exit 0
    }
    ;;&
up | down | restart | clean)
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    exec 9>"$RUN_DIR/lock"
    if ! flock -n 9; then
        say "waiting for another services.sh run to finish (lock $RUN_DIR/lock)"
        flock -w 600 9 || fail "gave up waiting for the lock $RUN_DIR/lock"
    fi
    ;;
status) ;;
-h | --help | help) usage 0 ;;
*) usage 2 ;;
esac

case $verb in
up)
    do_up "${services[@]}"
    say "env for tests: . $STATE_DIR/env"
    ;;
down)
    do_down "${services[@]}"
    if ((purge)); then
        for svc in "${services[@]}"; do purge_service "$svc"; done
        tidy_state_dir
    fi
    ;;
clean)
    do_down "${services[@]}"
    for svc in "${services[@]}"; do purge_service "$svc"; done
    tidy_state_dir
    ;;
restart)
    do_down "${services[@]}"
    do_up "${services[@]}"
    ;;
status)
    rc=0
    for svc in "${services[@]}"; do status_service "$svc" || rc=3; done
    if ((rc == 0)) && [[ -f "$STATE_DIR/env" ]]; then say "env for tests: . $STATE_DIR/env"; fi
    exit "$rc"
    ;;
esac
