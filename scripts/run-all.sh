#!/usr/bin/env bash
# README's first command: installs the build dependencies, builds telemetryd, and runs the `all`
# role on the embedded default (no Kafka, no MongoDB). Extra arguments go to `telemetryd run`,
# e.g. scripts/run-all.sh --set http.listen=127.0.0.1:8080
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build -j "${TELEMETRYD_BUILD_JOBS:-2}" src/telemetryd
exec build/src/telemetryd run --role all --config config/roles/all.yaml "$@"
