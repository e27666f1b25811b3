#!/usr/bin/env bash
# Builds telemetryd_VERSION_ARCH.deb from an existing meson build with plain dpkg-deb (no
# debhelper): the binary, the systemd template unit, the sysusers file, the example role files
# as conffiles, the GPU profiles and the docs. Depends comes from dpkg-shlibdeps.
#
# Usage: scripts/build-deb.sh [BUILD_DIR (build)] [OUT_DIR (BUILD_DIR)]   prints the .deb's path
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(realpath "${1:-$root/build}")
out_dir=${2:-$build_dir}
mkdir -p "$out_dir"
out_dir=$(realpath "$out_dir")
binary=$build_dir/src/telemetryd
[ -x "$binary" ] || { echo "build-deb: $binary not found; build first (ninja -C $build_dir)" >&2; exit 1; }

version=$("$binary" version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "$out_dir/deb-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/root

install -D -m 0755 "$binary" "$pkg/usr/bin/telemetryd"
# Debian ships stripped binaries; the build tree keeps the symbols for debugging.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/telemetryd"
install -D -m 0644 "$root/systemd/telemetryd@.service" "$pkg/lib/systemd/system/telemetryd@.service"
install -D -m 0644 "$root/systemd/telemetryd.sysusers" "$pkg/usr/lib/sysusers.d/telemetryd.conf"
for role in producer processor worker all gpu-exporter; do
  install -D -m 0644 "$root/config/roles/$role.yaml" "$pkg/etc/telemetryd/$role.yaml"
done
install -D -m 0644 "$root/config/gpu-profiles.json" "$pkg/usr/share/telemetryd/gpu-profiles.json"
doc=$pkg/usr/share/doc/telemetryd
install -D -m 0644 "$root/README.md" "$doc/README.md"
install -m 0644 "$root"/docs/*.md "$doc/"
install -m 0644 "$root/packaging/debian/copyright" "$doc/copyright"

# dpkg-shlibdeps insists on a debian/control in the working directory, even a minimal one.
mkdir -p "$stage/debian"
printf 'Source: telemetryd\n\nPackage: telemetryd\nArchitecture: any\n' >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O root/usr/bin/telemetryd | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$root/packaging/debian/$script" "$pkg/DEBIAN/$script"
done
(cd "$pkg" && find etc -type f | sed 's|^|/|' | sort) >"$pkg/DEBIAN/conffiles"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: telemetryd
Version: $version
Architecture: $arch
Maintainer: telemetryd developers <dev@telemetryd.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Homepage: https://telemetryd.invalid/
Description: GPU and LLM token-usage telemetry pipeline daemon
 One binary with four roles (producer, processor, worker, all) that emits,
 validates, prices and stores GPU and token-usage events (Kafka, MongoDB, or an
 embedded SQLite default), serving /health, /ready, /metrics and a query API.
 Run it as systemd units: systemctl enable --now telemetryd@ROLE.
CONTROL

deb=$out_dir/telemetryd_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
