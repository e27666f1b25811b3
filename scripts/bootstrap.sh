#!/usr/bin/env bash
# Installs every build and test dependency of telemetryd from Debian (bookworm) packages,
# non-interactively. A fast no-op (no apt-get update) when everything is already installed.
#
# Usage: scripts/bootstrap.sh          (as root, or with sudo available)
#
# Kafka jars, the FerretDB binary and InfluxDB 1.8 (for the v2 write API tests) are not Debian
# packages: scripts/services.sh fetches them (Maven Central / Go module proxy) into
# ~/.cache/telemetryd on first use.
set -euo pipefail

PACKAGES=(
    meson ninja-build pkg-config g++
    libboost1.81-dev librdkafka-dev libsimdjson-dev libmongoc-dev libbson-dev
    libyaml-cpp-dev libcli11-dev catch2 libsystemd-dev libssl-dev libsqlite3-dev zlib1g-dev
    dpkg-dev systemd  # dpkg-shlibdeps and systemd-analyze, for scripts/ops-checks.sh
    cloud-init        # cloud-init schema, for scripts/ops-observe-checks.sh
    prometheus clang-format python3 python3-jsonschema curl ca-certificates
    openssl           # the test CA of the s3tls service
    clang libfuzzer-14-dev libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer, ASan+UBSan runtimes
    zlib1g-dev        # gzip bodies for the InfluxDB sink
    influxdb          # InfluxDB 1.6.7 for the InfluxDB sink's integration tests (services.sh)
)

say() { printf 'bootstrap: %s\n' "$*"; }

# Java and Maven (test Kafka) and Go (test FerretDB build) may come from outside Debian.
if command -v java >/dev/null 2>&1; then
    say "java found at $(command -v java); skipping default-jdk-headless"
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

installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    say "all ${#PACKAGES[@]} packages already installed; nothing to do"
    exit 0
fi
say "missing: ${missing[*]}"

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "bootstrap: error: run as root (or install sudo)" >&2; exit 1; }
    SUDO=(sudo)
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
