#!/usr/bin/env bash
# Installs telemetryd's dependencies from Debian (bookworm) packages, non-interactively. A fast
# no-op (no apt-get update) when everything is already installed.
#
# Usage: scripts/bootstrap.sh          build and run the binary only (README's scripts/run-all.sh):
#                                      the compiler, meson and the -dev libraries, nothing else
#        scripts/bootstrap.sh --test   also every test-only tool (scripts/test.sh): a JDK and
#                                      Maven (test Kafka), Go (FerretDB, versitygw, helm), clang
#                                      and libFuzzer, cloud-init, promtool and the Prometheus and
#                                      InfluxDB servers
# (as root, or with sudo available)
#
# Server packages never start during the install (policy-rc.d) and are left disabled afterwards
# (no systemd wants link, no rc.d start link, cloud-init disabled), so neither command leaves a
# server that starts at the next boot; scripts/deploy-checks.sh checks it.
#
# Kafka jars, the FerretDB binary and InfluxDB 1.8 (for the v2 write API tests) are not Debian
# packages: scripts/services.sh fetches them (Maven Central / Go module proxy) into
# ~/.cache/telemetryd on first use.
set -euo pipefail

mode=build
list=0
for arg in "$@"; do
    case $arg in
        --test) mode=test ;;
        --list) list=1 ;;  # print the Debian packages of the mode, install nothing
        *) echo "usage: scripts/bootstrap.sh [--test] [--list]" >&2; exit 2 ;;
    esac
done

# What building and running the binary needs (catch2: meson configures the unit tests too;
# python3: scripts/embed_file.py runs at build time).
BUILD_PACKAGES=(
    meson ninja-build pkg-config g++ python3
    libboost1.81-dev librdkafka-dev libsimdjson-dev libmongoc-dev libbson-dev
    libyaml-cpp-dev libcli11-dev catch2 libsystemd-dev libssl-dev libsqlite3-dev zlib1g-dev
    prometheus-cpp-dev  # its core library: metrics registry and text exposition
    libpq-dev           # the PostgreSQL sink's client library
    curl ca-certificates
)
# Test-only tools; installed by scripts/test.sh alone.
TEST_PACKAGES=(
    dpkg-dev systemd  # dpkg-shlibdeps and systemd-analyze, for scripts/ops-checks.sh
    cloud-init        # cloud-init schema, for scripts/ops-observe-checks.sh
    prometheus clang-format python3-jsonschema python3-yaml python3-venv
    openssl           # the test CA of the s3tls service
    clang libfuzzer-14-dev libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer, ASan+UBSan runtimes
    influxdb          # InfluxDB 1.6.7 for the InfluxDB sink's integration tests (services.sh)
    postgresql        # PostgreSQL 15 for the PostgreSQL sink's integration tests (services.sh)
    busybox-static    # the image's healthcheck wget (scripts/build-image.sh)
    podman            # loads the built image (scripts/deploy-checks.sh); its API socket is disabled
)
# Packages in TEST_PACKAGES that ship a server enabled at install: disabled again below
# (postgresql's units and init script belong to postgresql-common).
SERVER_PACKAGES=(prometheus influxdb cloud-init podman postgresql-common)

PACKAGES=("${BUILD_PACKAGES[@]}")
[[ $mode == test ]] && PACKAGES+=("${TEST_PACKAGES[@]}")
if ((list)); then
    printf '%s\n' "${PACKAGES[@]}"
    exit 0
fi

say() { printf 'bootstrap: %s\n' "$*"; }

# Java and Maven (test Kafka) and Go (test FerretDB, versitygw and helm builds) may come from
# outside Debian.
if [[ $mode == test ]]; then
    # javac too: the fault suite compiles its small Kafka client (scripts/lib/KafkaRecords.java).
    if command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; then
        say "java and javac found at $(command -v javac); skipping default-jdk-headless"
    else
        PACKAGES+=(default-jdk-headless)
    fi
    if command -v mvn >/dev/null 2>&1; then
        say "mvn found at $(command -v mvn); skipping maven"
    else
        PACKAGES+=(maven)
    fi
    if command -v go >/dev/null 2>&1 || [[ -x /usr/local/go/bin/go ]]; then
        say "go found at $(command -v go 2>/dev/null || echo /usr/local/go/bin/go); skipping golang-go"
    else
        # Debian's Go is older than FerretDB needs; services.sh then fetches the newer
        # toolchain FerretDB's go.mod asks for from the Go module proxy.
        PACKAGES+=(golang-go)
    fi
fi

installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

SUDO=()
if ((EUID != 0)); then
    SUDO=(sudo)
fi

# Leaves every server package of the test set installed but disabled: no systemd wants link
# (deb-systemd-helper keeps its own state too, so a later upgrade does not enable it again), no
# SysV start link, and cloud-init off (its documented switch). Idempotent and cheap.
disable_servers() {
    local pkg unit
    for pkg in "${SERVER_PACKAGES[@]}"; do
        installed "$pkg" || continue
        if [[ $pkg == cloud-init ]]; then
            [[ -e /etc/cloud/cloud-init.disabled ]] ||
                { "${SUDO[@]}" touch /etc/cloud/cloud-init.disabled; say "disabled cloud-init (/etc/cloud/cloud-init.disabled)"; }
            continue
        fi
        for unit in $(dpkg -L "$pkg" | sed -n 's#^/lib/systemd/system/\([^/]*\.\(service\|socket\|timer\)\)$#\1#p'); do
            if [[ -n $(find /etc/systemd/system -name "$unit" -path '*.wants/*' 2>/dev/null) ]]; then
                command -v deb-systemd-helper >/dev/null 2>&1 &&
                    "${SUDO[@]}" deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true
                "${SUDO[@]}" find /etc/systemd/system -name "$unit" -path '*.wants/*' -delete
                say "disabled $unit ($pkg)"
            fi
        done
        if [[ -x /etc/init.d/$pkg ]] && compgen -G "/etc/rc[2-5].d/S??$pkg" >/dev/null; then
            "${SUDO[@]}" update-rc.d "$pkg" disable >/dev/null 2>&1 || true
            say "disabled /etc/init.d/$pkg (rc.d start links)"
        fi
    done
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    say "all ${#PACKAGES[@]} packages ($mode) already installed; nothing to install"
    [[ $mode == test ]] && disable_servers
    exit 0
fi
say "missing: ${missing[*]}"

if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "bootstrap: error: run as root (or install sudo)" >&2; exit 1; }
fi
# Keep package maintainer scripts from starting daemons (prometheus would start a server).
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if ((created_policy)); then
        "${SUDO[@]}" rm -f "$POLICY"
        say "removed $POLICY"
    fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# written by telemetryd scripts/bootstrap.sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    created_policy=1
    say "wrote $POLICY (exit 101) so no service starts during install"
fi

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q update
say "apt-get install ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends install "${missing[@]}"
say "installed ${#missing[@]} package(s)"
[[ $mode == test ]] && disable_servers
exit 0
