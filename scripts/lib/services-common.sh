# shellcheck shell=bash
# Shared helpers for scripts/services.sh and scripts/kafka-tool.sh. Source it; do not run it.
#
# Everything downloaded or built lands in the cache (outside the repo):
#   ${TELEMETRYD_CACHE:-$HOME/.cache/telemetryd}/kafka-3.7.2/libs    Kafka jars (Maven Central)
#   ${TELEMETRYD_CACHE:-$HOME/.cache/telemetryd}/bin/ferretdb-v1.24.2 FerretDB (Go module proxy)
#   ${TELEMETRYD_CACHE:-$HOME/.cache/telemetryd}/bin/versitygw-v1.8.0 versitygw S3 gateway (same)
# Messages from this file go to stderr so that tool output on stdout stays clean.

# shellcheck disable=SC2034 # several of these are used only by the sourcing scripts
TD_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TD_REPO_ROOT="$(dirname "$TD_SCRIPTS_DIR")"
TD_CACHE="${TELEMETRYD_CACHE:-${HOME:?HOME is not set}/.cache/telemetryd}"

KAFKA_VERSION=3.7.2
KAFKA_LIBS="$TD_CACHE/kafka-$KAFKA_VERSION/libs"
KAFKA_POM="$TD_SCRIPTS_DIR/services/kafka-pom.xml"
KAFKA_TOOLS_LOG4J="$TD_SCRIPTS_DIR/services/kafka-tools-log4j.properties"
KAFKA_SERVER_LOG4J="$TD_SCRIPTS_DIR/services/kafka-server-log4j.properties"

FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB
FERRETDB_SRC="$TD_CACHE/ferretdb-src"
FERRETDB_BIN="$TD_CACHE/bin/ferretdb-$FERRETDB_VERSION"

VERSITYGW_VERSION=v1.8.0
VERSITYGW_MODULE=github.com/versity/versitygw
VERSITYGW_SRC="$TD_CACHE/versitygw-src"
VERSITYGW_BIN="$TD_CACHE/bin/versitygw-$VERSITYGW_VERSION"

td_msg() { printf '%s\n' "$*" >&2; }
td_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs "$@" while holding an exclusive lock on file $1 (shifted off), so concurrent
# invocations do not download/build the same thing twice.
td_with_lock() {
    local lockfile=$1
    shift
    mkdir -p "$(dirname "$lockfile")"
    (
        exec 8>"$lockfile"
        flock -w 900 8 || td_die "timed out waiting for lock $lockfile"
        "$@"
    )
}

td_require_java() {
    command -v java >/dev/null 2>&1 || td_die "java not found on PATH (run scripts/bootstrap.sh)"
}

td_kafka_libs_present() { [[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; }

_td_fetch_kafka_libs() {
    td_kafka_libs_present && return 0
    command -v mvn >/dev/null 2>&1 || td_die "mvn not found on PATH (run scripts/bootstrap.sh)"
    local tmp="$KAFKA_LIBS.tmp.$$" t0=$SECONDS out
    td_msg "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
    rm -rf "$tmp"
    # (mvn -q still prints stray ANSI resets, so its output is shown only when it fails)
    if ! out="$(mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1)"; then
        printf '%s\n' "$out" >&2
        rm -rf "$tmp"
        td_die "mvn could not fetch the Kafka jars (see output above)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
        rm -rf "$tmp"
        td_die "mvn ran but kafka_2.13-$KAFKA_VERSION.jar is missing"
    }
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    td_msg "kafka: fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0))s"
}

# Makes sure $KAFKA_LIBS holds the Kafka jars (fetches them with Maven when absent).
td_ensure_kafka_libs() {
    td_kafka_libs_present && return 0
    td_with_lock "$TD_CACHE/.kafka-$KAFKA_VERSION.lock" _td_fetch_kafka_libs
}

# Runs a Kafka class with the cached classpath and the quiet tools log4j config.
# Extra JVM options: TELEMETRYD_KAFKA_TOOL_OPTS (word-split).
td_kafka_java() {
    local -a opts=()
    read -r -a opts <<<"${TELEMETRYD_KAFKA_TOOL_OPTS:-}"
    java "${opts[@]}" -Dlog4j.configuration="file:$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" "$@"
}

# ---------------------------------------------------------------------------- Go / FerretDB

# Prints the path of a `go` command (PATH first, then the usual install places).
td_find_go() {
    local g
    for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
        if [[ -n "$g" && -x "$g" ]]; then
            printf '%s\n' "$g"
            return 0
        fi
    done
    return 1
}

# Prints the "Dir" value of `go mod download -json MODULE@VERSION`.
# Runs in an empty temp dir outside the repo so no go.mod/go.work is found or touched.
_td_go_mod_download_dir() {
    local go=$1 modver=$2 tmp json dir
    tmp="$(mktemp -d)"
    if ! json="$(cd "$tmp" && GO111MODULE=on GOWORK=off GOFLAGS=-mod=mod "$go" mod download -json "$modver")"; then
        rm -rf "$tmp"
        printf '%s\n' "$json" >&2
        td_die "go mod download $modver failed"
    fi
    rm -rf "$tmp"
    dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
    [[ -n "$dir" && -d "$dir" ]] || td_die "go mod download $modver printed no usable Dir: $json"
    printf '%s\n' "$dir"
}

# "go1.24.3" -> "1 24 3"
_td_go_version_words() {
    local v=${1#go}
    v=${v%%[!0-9.]*}
    local IFS=.
    # shellcheck disable=SC2086
    set -- $v
    printf '%s %s %s\n' "${1:-0}" "${2:-0}" "${3:-0}"
}

# Succeeds when go version $1 >= $2 (both like go1.24 / go1.24.3).
_td_go_version_ge() {
    local a b
    read -r -a a <<<"$(_td_go_version_words "$1")"
    read -r -a b <<<"$(_td_go_version_words "$2")"
    local i
    for i in 0 1 2; do
        ((a[i] > b[i])) && return 0
        ((a[i] < b[i])) && return 1
    done
    return 0
}

# Prints a go command able to build the module at dir $2 (go.mod's go/toolchain lines),
# given the local go $1. Go >= 1.21 switches toolchains itself (GOTOOLCHAIN=auto, via the
# module proxy); older ones (Debian bookworm's golang-go is 1.19) get the same
# golang.org/toolchain module fetched explicitly and unpacked into the cache.
_td_go_for_module() {
    local go=$1 moddir=$2 have want tc arch tdir src
    have="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
    want="go$(sed -n 's/^go[[:space:]]\{1,\}\([0-9.]*\).*/\1/p' "$moddir/go.mod" | head -n1)"
    if _td_go_version_ge "$have" "$want"; then
        printf '%s\n' "$go"
        return 0
    fi
    if _td_go_version_ge "$have" go1.21; then
        printf '%s\n' "$go" # the caller runs it with GOTOOLCHAIN=auto
        return 0
    fi
    tc="$(sed -n 's/^toolchain[[:space:]]\{1,\}\(go[0-9.]*\).*/\1/p' "$moddir/go.mod" | head -n1)"
    if [[ -z "$tc" ]]; then
        tc=$want
        [[ "$tc" =~ ^go[0-9]+\.[0-9]+$ ]] && tc="$tc.0"
    fi
    arch="$("$go" env GOHOSTOS)-$("$go" env GOHOSTARCH)"
    tdir="$TD_CACHE/go-toolchain/$tc.$arch"
    if [[ ! -x "$tdir/bin/go" ]]; then
        td_msg "ferretdb: $have is older than $want; fetching toolchain $tc from the Go module proxy"
        src="$(_td_go_mod_download_dir "$go" "golang.org/toolchain@v0.0.1-$tc.$arch")"
        rm -rf "$tdir.tmp"
        mkdir -p "$(dirname "$tdir")"
        cp -R "$src" "$tdir.tmp"
        chmod -R u+w "$tdir.tmp"
        # module zips carry no file modes; make the commands executable again
        chmod +x "$tdir.tmp"/bin/* "$tdir.tmp"/pkg/tool/*/*
        rm -rf "$tdir"
        mv "$tdir.tmp" "$tdir"
    fi
    printf '%s\n' "$tdir/bin/go"
}

_td_build_ferretdb() {
    [[ -x "$FERRETDB_BIN" ]] && return 0
    local go dir gobuild t0=$SECONDS
    go="$(td_find_go)" || td_die "go not found (run scripts/bootstrap.sh)"
    td_msg "ferretdb: downloading $FERRETDB_MODULE@$FERRETDB_VERSION source from the Go module proxy"
    # (`go install ...@version` does not work here: the proxy answers 403 to the @v/list lookup.)
    dir="$(_td_go_mod_download_dir "$go" "$FERRETDB_MODULE@$FERRETDB_VERSION")"
    rm -rf "$FERRETDB_SRC"
    mkdir -p "$(dirname "$FERRETDB_SRC")" "$(dirname "$FERRETDB_BIN")"
    cp -R "$dir" "$FERRETDB_SRC"
    chmod -R u+w "$FERRETDB_SRC"
    # The binary panics at start-up when the embedded version.txt is empty.
    printf '%s\n' "$FERRETDB_VERSION" >"$FERRETDB_SRC/build/version/version.txt"
    gobuild="$(_td_go_for_module "$go" "$FERRETDB_SRC")"
    td_msg "ferretdb: building $FERRETDB_BIN with $gobuild (takes a minute or two)"
    if ! (cd "$FERRETDB_SRC" &&
        GOTOOLCHAIN=auto GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 \
            "$gobuild" build -trimpath -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb >&2); then
        rm -f "$FERRETDB_BIN.tmp"
        td_die "building FerretDB failed (see output above)"
    fi
    mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
    td_msg "ferretdb: built $("$FERRETDB_BIN" --version | head -n1) in $((SECONDS - t0))s"
}

# Makes sure $FERRETDB_BIN exists (builds it from the module proxy source when absent).
td_ensure_ferretdb_bin() {
    [[ -x "$FERRETDB_BIN" ]] && return 0
    td_with_lock "$TD_CACHE/.ferretdb-$FERRETDB_VERSION.lock" _td_build_ferretdb
}

# ------------------------------------------------------------------------ Go / versitygw

_td_build_versitygw() {
    [[ -x "$VERSITYGW_BIN" ]] && return 0
    local go dir gobuild t0=$SECONDS
    go="$(td_find_go)" || td_die "go not found (run scripts/bootstrap.sh)"
    td_msg "s3: downloading $VERSITYGW_MODULE@$VERSITYGW_VERSION source from the Go module proxy"
    dir="$(_td_go_mod_download_dir "$go" "$VERSITYGW_MODULE@$VERSITYGW_VERSION")"
    rm -rf "$VERSITYGW_SRC"
    mkdir -p "$(dirname "$VERSITYGW_SRC")" "$(dirname "$VERSITYGW_BIN")"
    cp -R "$dir" "$VERSITYGW_SRC"
    chmod -R u+w "$VERSITYGW_SRC"
    gobuild="$(_td_go_for_module "$go" "$VERSITYGW_SRC")"
    td_msg "s3: building $VERSITYGW_BIN with $gobuild (cold: several minutes)"
    # -X sets what `versitygw --version` prints; the module zip has no git metadata to read.
    if ! (cd "$VERSITYGW_SRC" &&
        GOTOOLCHAIN=auto GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 \
            "$gobuild" build -trimpath \
            -ldflags "-X main.Version=$VERSITYGW_VERSION -X main.Build=module-proxy" \
            -o "$VERSITYGW_BIN.tmp" ./cmd/versitygw >&2); then
        rm -f "$VERSITYGW_BIN.tmp"
        td_die "building versitygw failed (see output above)"
    fi
    mv "$VERSITYGW_BIN.tmp" "$VERSITYGW_BIN"
    td_msg "s3: built versitygw $VERSITYGW_VERSION in $((SECONDS - t0))s"
}

# Makes sure $VERSITYGW_BIN exists (builds it from the module proxy source when absent).
td_ensure_versitygw_bin() {
    [[ -x "$VERSITYGW_BIN" ]] && return 0
    td_with_lock "$TD_CACHE/.versitygw-$VERSITYGW_VERSION.lock" _td_build_versitygw
}

# ------------------------------------------------------------------- Go / InfluxDB 1.8 (v2 API)

# InfluxDB 1.8 answers the v2 compatibility write endpoint (/api/v2/write with a Token), which
# Debian's 1.6.7 lacks; it is built from the module proxy source like FerretDB, only for tests.
INFLUXDB18_VERSION=v1.8.10
INFLUXDB18_MODULE=github.com/influxdata/influxdb
INFLUXDB18_SRC="$TD_CACHE/influxdb-src-$INFLUXDB18_VERSION"
INFLUXDB18_BIN="$TD_CACHE/bin/influxd-$INFLUXDB18_VERSION"

_td_build_influxdb18() {
    [[ -x "$INFLUXDB18_BIN" ]] && return 0
    local go dir t0=$SECONDS
    go="$(td_find_go)" || td_die "go not found (run scripts/bootstrap.sh)"
    td_msg "influxdb18: downloading $INFLUXDB18_MODULE@$INFLUXDB18_VERSION source from the Go module proxy"
    dir="$(_td_go_mod_download_dir "$go" "$INFLUXDB18_MODULE@$INFLUXDB18_VERSION")"
    rm -rf "$INFLUXDB18_SRC"
    mkdir -p "$(dirname "$INFLUXDB18_SRC")" "$(dirname "$INFLUXDB18_BIN")"
    cp -R "$dir" "$INFLUXDB18_SRC"
    chmod -R u+w "$INFLUXDB18_SRC"
    td_msg "influxdb18: building $INFLUXDB18_BIN (a few minutes)"
    # Newer Go refuses the old pull-style linknames of some 2020 dependencies unless told.
    if ! (cd "$INFLUXDB18_SRC" &&
        GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
            "$go" build -trimpath -ldflags="-checklinkname=0 -X main.version=${INFLUXDB18_VERSION#v}" -o "$INFLUXDB18_BIN.tmp" ./cmd/influxd >&2); then
        rm -f "$INFLUXDB18_BIN.tmp"
        td_die "building InfluxDB $INFLUXDB18_VERSION failed (see output above)"
    fi
    mv "$INFLUXDB18_BIN.tmp" "$INFLUXDB18_BIN"
    td_msg "influxdb18: built $("$INFLUXDB18_BIN" version | head -n1) in $((SECONDS - t0))s"
}

# Makes sure $INFLUXDB18_BIN exists (builds it when absent).
td_ensure_influxdb18_bin() {
    [[ -x "$INFLUXDB18_BIN" ]] && return 0
    td_with_lock "$TD_CACHE/.influxdb18-$INFLUXDB18_VERSION.lock" _td_build_influxdb18
}
