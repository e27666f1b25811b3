#!/usr/bin/env bash
# Builds the telemetryd container image without a base image, a registry or a daemon: a root
# filesystem holding only the stripped binary, exactly the shared libraries `ldd` lists (and the
# dynamic loader), CA certificates, /etc/passwd and /etc/group with the non-root user telemetryd
# (65532:65532), the role files (config/roles/*.yaml in /etc/telemetryd/), the GPU profiles, a
# /data directory the user owns, and a static busybox used only by the Docker-format HEALTHCHECK
# (wget of /health). scripts/oci_image.py writes it as an OCI image layout and a loadable tar.
#
# Usage: scripts/build-image.sh [BUILD_DIR (build)] [OUT_DIR (BUILD_DIR/image)]
#   OUT_DIR/rootfs/      the root filesystem (what the layer holds)
#   OUT_DIR/layout/      OCI image layout: skopeo copy oci:OUT_DIR/layout:VERSION docker://REGISTRY/telemetryd:VERSION
#   OUT_DIR/image.tar    podman load -i OUT_DIR/image.tar  (docker load takes it too)
# Prints the image's compressed size. Needs busybox-static (scripts/bootstrap.sh --test installs it).
#
# The image's defaults: ENTRYPOINT /usr/bin/telemetryd, CMD run --role all --config
# /etc/telemetryd/all.yaml, STATE_DIRECTORY=/data (all.yaml's embedded.data_dir), listening on
# 0.0.0.0:8000. Kubernetes ignores the HEALTHCHECK (OCI has no such field; it is Docker's
# extension) and uses the chart's httpGet probes on /health and /ready instead.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(realpath "${1:-$root/build}")
out_dir=${2:-$build_dir/image}
binary=$build_dir/src/telemetryd
[ -x "$binary" ] || { echo "build-image: $binary not found; build first (ninja -C $build_dir src/telemetryd)" >&2; exit 1; }
busybox=${TELEMETRYD_BUSYBOX:-/bin/busybox}
# (ldd fails on a static executable, which is what the image needs: it has no libc for busybox.)
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "build-image: a static busybox is needed at $busybox for the healthcheck (apt-get install busybox-static)" >&2
  exit 1
fi

uid=65532
version=$("$binary" version | awk '{print $2}')
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# Reproducible: every timestamp is the last commit's (or 0 outside git).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

mkdir -p "$out_dir"
out_dir=$(realpath "$out_dir")
rootfs=$out_dir/rootfs
rm -rf "$rootfs" "$out_dir/layout" "$out_dir/image.tar"
# proc, dev and sys: mount points the runtime fills.
mkdir -p "$rootfs"/{usr/bin,etc/telemetryd,etc/ssl/certs,usr/share/telemetryd,usr/libexec/telemetryd,data,tmp,proc,dev,sys}
chmod 1777 "$rootfs/tmp"

install -m 0755 "$binary" "$rootfs/usr/bin/telemetryd"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$rootfs/usr/bin/telemetryd"
# Every library ldd resolves, at the path it resolves to, plus the loader (the line without =>).
# NVML (libnvidia-ml.so.1) is not among them: it is dlopen()ed at run time and comes from the
# host's driver through the NVIDIA container toolkit.
ldd "$binary" | awk '/=> \//{print $3} /^\t\//{print $1}' | sort -u | while read -r lib; do
  install -D -m 0755 "$(realpath "$lib")" "$rootfs$lib"
done
# Debian's loader path /lib64/ld-linux-x86-64.so.2 is a symlink into /lib/x86_64-linux-gnu; the
# copy above followed it, which is all the loader needs.
install -m 0755 "$busybox" "$rootfs/usr/libexec/telemetryd/busybox"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
for role in "$root"/config/roles/*.yaml; do
  install -m 0644 "$role" "$rootfs/etc/telemetryd/$(basename "$role")"
done
install -m 0644 "$root/config/gpu-profiles.json" "$rootfs/usr/share/telemetryd/gpu-profiles.json"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ntelemetryd:x:%s:%s:telemetryd daemon:/data:/usr/sbin/nologin\n' \
  "$uid" "$uid" >"$rootfs/etc/passwd"
printf 'root:x:0:\ntelemetryd:x:%s:\n' "$uid" >"$rootfs/etc/group"
# glibc resolves host names through NSS; without this file it would try DNS before /etc/hosts.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
install -m 0644 "$root/packaging/debian/copyright" "$rootfs/usr/share/telemetryd/copyright"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
title="telemetryd"
description="GPU and LLM token-usage telemetry pipeline daemon (producer, processor, worker, all, gpu-exporter roles)"
python3 - "$work" "$version" "$revision" "$created" "$uid" "$title" "$description" <<'PY'
import json, sys
work, version, revision, created, uid, title, description = sys.argv[1:]
annotations = {
    "org.opencontainers.image.title": title,
    "org.opencontainers.image.description": description,
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.revision": revision,
    "org.opencontainers.image.created": created,
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.vendor": "telemetryd developers",
    "org.opencontainers.image.url": "https://telemetryd.invalid/",
    "org.opencontainers.image.documentation": "https://telemetryd.invalid/docs/deploy.md",
    "org.opencontainers.image.base.name": "scratch",
}
second = 1_000_000_000
config = {
    "User": f"{uid}:{uid}",
    "Entrypoint": ["/usr/bin/telemetryd"],
    "Cmd": ["run", "--role", "all", "--config", "/etc/telemetryd/all.yaml"],
    "Env": ["PATH=/usr/bin", "STATE_DIRECTORY=/data", "TELEMETRYD_HTTP_LISTEN=0.0.0.0:8000"],
    "WorkingDir": "/data",
    "ExposedPorts": {"8000/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGTERM",
    "Labels": annotations,
    # Docker's extension (OCI image configs have no healthcheck; podman and Docker read it).
    "Healthcheck": {
        "Test": ["CMD", "/usr/libexec/telemetryd/busybox", "wget", "-q", "-O", "/dev/null",
                 "http://127.0.0.1:8000/health"],
        "Interval": 30 * second, "Timeout": 5 * second, "StartPeriod": 10 * second, "Retries": 3,
    },
}
json.dump(config, open(f"{work}/config.json", "w"))
json.dump(annotations, open(f"{work}/annotations.json", "w"))
PY

python3 "$root/scripts/oci_image.py" "$rootfs" "$out_dir" --tag "telemetryd:$version" \
  --config "$work/config.json" --annotations "$work/annotations.json" \
  --owner "data=$uid:$uid" >"$work/result.json"
python3 - "$work/result.json" "$out_dir" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
mib = r["layer_compressed_bytes"] / 1048576
print(f"image: {sys.argv[2]}/image.tar, {mib:.1f} MiB compressed "
      f"({r['layer_uncompressed_bytes'] / 1048576:.1f} MiB unpacked), manifest {r['manifest_digest']}")
PY
