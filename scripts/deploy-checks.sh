#!/usr/bin/env bash
# Checks of the ways telemetryd is deployed (issue 17), one JUnit testcase each, written to
# "${TELEMETRYD_JUNIT_DIR:-build}/deploy-checks.junit.xml". Runs every check even after a failure;
# exits 1 if any failed. Needs root (chroot, unshare, overlay mounts) and the built binary.
#
#   lean first run   the packages run-all.sh installs (scripts/bootstrap.sh) pull in no JDK, Go,
#                    clang, Prometheus or InfluxDB (apt's dependency closure); no server package
#                    is enabled for the next boot after scripts/bootstrap.sh --test; run-all.sh
#                    itself then answers /ready 200
#   image            scripts/build-image.sh builds it (size printed, < 40 MiB compressed); its
#                    layer is unpacked and run as the image config says (user, entrypoint, cmd,
#                    env) with unshare + chroot (no container engine here), /ready must be 200,
#                    then the image's healthcheck command runs in it; podman loads image.tar
#   helm             helm lint; helm template over tests/fixtures/helm/values-*.yaml and the
#                    defaults; every rendered object validated against the Kubernetes 1.30 and
#                    1.33 OpenAPI schemas (strict) and KEDA's and the Prometheus operator's CRDs;
#                    the rendered role files pass check-config; the broken values files fail;
#                    the chart's alerts are deploy/prometheus/alerts.yml; deploy/kubernetes/ is
#                    exactly `helm template` of the defaults (no drift), and `kustomize build` of
#                    it (what kubectl apply -k sends) validates too
#   cloud-init       the .deb installed with stdin closed onto a root where the conffile exists
#                    (tests/fixtures/cloud-init/old-processor.yaml) fails as on a real first
#                    boot; each cloud-init/{processor,producer,worker,gpu-exporter}.yaml boots in a throwaway
#                    root (overlay of / in a private mount namespace): package configured, user
#                    created, role file passes check-config
#
# Tools come from the package clients and are cached in ~/.cache/telemetryd
# (scripts/lib/deploy-tools.sh): helm and kustomize built from the Go module proxy, the CRDs
# from their Go modules, kubernetes-validate from PyPI.
#
# Environment: TELEMETRYD_BIN (default build/src/telemetryd), TELEMETRYD_DEPLOY_HTTP_PORT (18830).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
junit_dir=${TELEMETRYD_JUNIT_DIR:-build}
junit="$junit_dir/deploy-checks.junit.xml"
bin=${TELEMETRYD_BIN:-build/src/telemetryd}
build_dir=$(dirname "$(dirname "$bin")")
http_port=${TELEMETRYD_DEPLOY_HTTP_PORT:-18830}
k8s_versions=(1.30 1.33)
max_image_mib=40

# shellcheck source=lib/services-common.sh
. scripts/lib/services-common.sh
# shellcheck source=lib/deploy-tools.sh
. scripts/lib/deploy-tools.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/deploy-checks.XXXXXX")
image_pid=""  # unshare, parent of the image's daemon (PID 1 of its own PID namespace)
cleanup() {
  # SIGKILL to the daemon ends its whole PID namespace. unshare ignores SIGTERM while it waits,
  # and --kill-child's death signal does not survive chroot --userspec's setuid, so the daemon
  # is killed itself; --kill-child covers a child killed before that point.
  if [ -n "$image_pid" ]; then
    # shellcheck disable=SC2046 # one PID a word
    kill -KILL $(pgrep -P "$image_pid") "$image_pid" 2>/dev/null
    wait "$image_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source-path=SCRIPTDIR source=lib/check-cases.sh
. "$root/scripts/lib/check-cases.sh"

# ------------------------------------------------------------------------------- lean first run

lean_closure() {
  local closure
  # shellcheck disable=SC2207
  local pkgs=($(scripts/bootstrap.sh --list))
  echo "run-all.sh installs: ${pkgs[*]}"
  # Every package apt could pull in for them (all alternatives, no recommends: bootstrap.sh
  # installs with --no-install-recommends), virtual names included.
  closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${pkgs[@]}" | grep -v '^ ' | sort -u) || return 1
  echo "closure: $(wc -l <<<"$closure") packages"
  local bad
  # prometheus: the server and its exporters; prometheus-cpp-dev, the metrics library the
  # binary links, is a build dependency.
  bad=$(grep -E '^(default-jdk|default-jre|openjdk-|maven|golang|clang|llvm|libclang|libfuzzer|prometheus$|prometheus-[^c]|influxdb|postgresql|cloud-init)' <<<"$closure")
  if [ -n "$bad" ]; then
    echo "FAIL: run-all.sh's packages pull in test-only ones:"
    echo "$bad"
    return 1
  fi
  echo "no JDK, Maven, Go, clang/LLVM, Prometheus, InfluxDB, PostgreSQL or cloud-init in the closure"
}

no_server_enabled() {
  local pkg unit bad=0
  for pkg in prometheus influxdb podman postgresql-common; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      { echo "$pkg: not installed"; continue; }
    for unit in $(dpkg -L "$pkg" | sed -n 's#^/lib/systemd/system/\([^/]*\.\(service\|socket\|timer\)\)$#\1#p'); do
      if find /etc/systemd/system -path '*.wants/*' -name "$unit" | grep -q .; then
        echo "FAIL: $unit ($pkg) is enabled: $(find /etc/systemd/system -path '*.wants/*' -name "$unit")"
        bad=1
      else
        echo "$unit ($pkg): not enabled"
      fi
    done
    if [ -x "/etc/init.d/$pkg" ] && compgen -G "/etc/rc[2-5].d/S??$pkg" >/dev/null; then
      echo "FAIL: /etc/init.d/$pkg starts at boot: $(echo /etc/rc[2-5].d/S??"$pkg")"
      bad=1
    else
      echo "/etc/init.d/$pkg: no start link"
    fi
  done
  if dpkg-query -W -f='${Status}' cloud-init 2>/dev/null | grep -q 'install ok installed'; then
    if [ -e /etc/cloud/cloud-init.disabled ]; then
      echo "cloud-init: disabled (/etc/cloud/cloud-init.disabled)"
    else
      echo "FAIL: cloud-init would run at the next boot"
      bad=1
    fi
  fi
  return "$bad"
}

# README's first command itself (its install step is a no-op once the packages are there): the
# all role answers /ready 200. Its SQLite file goes to a temporary STATE_DIRECTORY.
run_all_ready() {
  mkdir -p "$work/run-all-data"
  STATE_DIRECTORY="$work/run-all-data" scripts/run-all.sh --set "http.listen=127.0.0.1:$http_port" \
    > "$work/run-all.log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 120)) code=000
  while [ "$SECONDS" -lt "$deadline" ]; do
    code=$(curl -s -o "$work/run-all-ready.json" -w '%{http_code}' "http://127.0.0.1:$http_port/ready" || true)
    [ "$code" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "GET /ready: $code $(cat "$work/run-all-ready.json" 2>/dev/null)"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  echo "--- scripts/run-all.sh output (tail)"
  tail -n 8 "$work/run-all.log"
  [ "$code" = 200 ]
}

# ------------------------------------------------------------------------------------------ image

image_build() {
  scripts/build-image.sh "$build_dir" "$work/image" | tee "$work/image-size.txt" || return 1
  python3 - "$work/image/layout" "$max_image_mib" <<'PY'
import json, sys
layout, limit = sys.argv[1], float(sys.argv[2])
index = json.load(open(f"{layout}/index.json"))
blob = lambda d: f"{layout}/blobs/sha256/" + d.split(":")[1]
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
c = config["config"]
size = sum(l["size"] for l in manifest["layers"]) / 1048576
problems = []
if size >= limit: problems.append(f"{size:.1f} MiB compressed, over {limit} MiB")
if c.get("User", "0").split(":")[0] in ("", "0", "root"): problems.append(f"runs as root: {c.get('User')}")
if c.get("Entrypoint") != ["/usr/bin/telemetryd"]: problems.append(f"entrypoint {c.get('Entrypoint')}")
if "/health" not in " ".join(c.get("Healthcheck", {}).get("Test", [])): problems.append("no /health healthcheck")
need = ["title", "description", "version", "revision", "created", "licenses"]
labels = c.get("Labels", {})
for k in need:
    if f"org.opencontainers.image.{k}" not in labels or f"org.opencontainers.image.{k}" not in manifest.get("annotations", {}):
        problems.append(f"label/annotation org.opencontainers.image.{k} missing")
print(f"image size: {size:.1f} MiB compressed (limit {limit} MiB); user {c['User']}; "
      f"entrypoint {c['Entrypoint']} cmd {c['Cmd']}")
for p in problems: print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
}

# Unpacks the image's layers into $work/image-root and writes its config as shell-readable files.
image_unpack() {
  rm -rf "$work/image-root"
  python3 - "$work/image/layout" "$work/image-root" "$work" <<'PY'
import json, os, sys, tarfile
layout, dest, work = sys.argv[1:]
index = json.load(open(f"{layout}/index.json"))
blob = lambda d: f"{layout}/blobs/sha256/" + d.split(":")[1]
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))["config"]
os.makedirs(dest)
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"])) as t:
        t.extractall(dest, numeric_owner=True)
with open(f"{work}/image-argv", "w") as f:
    f.write("\0".join(config["Entrypoint"] + config.get("Cmd", [])))
with open(f"{work}/image-env", "w") as f:
    f.write("\0".join(config.get("Env", [])))
with open(f"{work}/image-user", "w") as f:
    f.write(config["User"])
with open(f"{work}/image-workdir", "w") as f:
    f.write(config.get("WorkingDir", "/"))
with open(f"{work}/image-healthcheck", "w") as f:
    f.write("\0".join(config["Healthcheck"]["Test"][1:]))
PY
}

image_ready() {
  [ -f "$work/image/layout/index.json" ] || { echo "no image (the build failed)"; return 1; }
  image_unpack || return 1
  local r=$work/image-root user argv=() env=() health=()
  user=$(cat "$work/image-user")
  mapfile -d '' argv < "$work/image-argv"
  mapfile -d '' env < "$work/image-env"
  mapfile -d '' health < "$work/image-healthcheck"
  # The image listens on 0.0.0.0:8000; here the host's network is shared, so a free loopback port.
  local i
  for i in "${!env[@]}"; do
    [[ ${env[$i]} == TELEMETRYD_HTTP_LISTEN=* ]] && env[i]="TELEMETRYD_HTTP_LISTEN=127.0.0.1:$http_port"
  done
  echo "running ${argv[*]} as $user in the image's root (unshare -m -p + chroot), env: ${env[*]}"
  # A private mount and PID namespace: the image's /proc and /dev exist only there, and the
  # daemon is PID 1 of its namespace, as in a container.
  # (The image has no env(1): the environment is set on chroot, which passes it on.)
  unshare -m -p -f --kill-child --propagation private /bin/sh -c '
    r=$1; shift
    mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" || exit 1
    exec "$@"' "$user" "$r" env -i "${env[@]}" /usr/sbin/chroot --userspec="$user" "$r" "${argv[@]}" \
    > "$work/image-run.log" 2>&1 &
  image_pid=$!
  local deadline=$((SECONDS + 30)) code=000
  while [ "$SECONDS" -lt "$deadline" ]; do
    code=$(curl -s -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$http_port/ready" || true)
    [ "$code" = 200 ] && break
    kill -0 "$image_pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "GET /ready: $code $(cat "$work/ready.json" 2>/dev/null)"
  local ok=0
  [ "$code" = 200 ] || ok=1
  # unshare -f forks once; its child exec()s (sh, env, chroot) down to the daemon.
  local daemon
  daemon=$(pgrep -P "$image_pid" | head -n1)
  if [ "$ok" = 0 ]; then
    echo "healthcheck (port $http_port): ${health[*]/:8000/:$http_port}"
    # In the daemon's mount namespace, where the image's /dev is mounted.
    nsenter -t "$daemon" -m /usr/sbin/chroot --userspec="$user" "$r" "${health[@]/:8000/:$http_port}" &&
      echo "healthcheck: exit 0" || { echo "FAIL: healthcheck"; ok=1; }
    echo "daemon: $(ps -o uid=,gid=,args= -p "$daemon")"
    [ "$(ps -o uid= -p "$daemon" | tr -d ' ')" = "${user%%:*}" ] || { echo "FAIL: daemon not running as $user"; ok=1; }
    ls -ln "$r/data" | sed 's/^/data: /'
  fi
  # SIGTERM, then SIGKILL (its whole namespace) if the daemon has not exited in 20 s.
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null
  local stop_deadline=$((SECONDS + 20))
  while kill -0 "$image_pid" 2>/dev/null && [ "$SECONDS" -lt "$stop_deadline" ]; do sleep 0.2; done
  if kill -0 "$image_pid" 2>/dev/null; then
    echo "FAIL: the daemon did not exit within 20 s of SIGTERM; SIGKILL"
    ok=1
    # shellcheck disable=SC2046 # one PID a word
    kill -KILL $(pgrep -P "$image_pid") "$image_pid" 2>/dev/null
  fi
  wait "$image_pid" 2>/dev/null
  image_pid=""
  echo "--- daemon log (tail)"
  tail -n 5 "$work/image-run.log"
  return "$ok"
}

# A real container engine takes the image: podman loads image.tar into a throwaway store and
# reads back its config, healthcheck included. (It cannot run containers on this machine: crun refuses the host's
# hybrid cgroup hierarchy, hence the unshare + chroot run above.)
image_podman_load() {
  [ -f "$work/image/image.tar" ] || { echo "no image (the build failed)"; return 1; }
  command -v podman >/dev/null || { echo "podman not found (scripts/bootstrap.sh --test installs it)"; return 1; }
  local p=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs)
  "${p[@]}" load -i "$work/image/image.tar" || return 1
  "${p[@]}" image inspect --format json localhost/telemetryd:"$("$bin" version | awk '{print $2}')" \
    > "$work/podman-inspect.json" || return 1
  "${p[@]}" rmi -a -f >/dev/null 2>&1
  python3 - "$work/podman-inspect.json" <<'PY'
import json, sys
img = json.load(open(sys.argv[1]))[0]
c = img["Config"]
print(f"podman sees: user {c.get('User')}, entrypoint {c.get('Entrypoint')}, cmd {c.get('Cmd')}, "
      f"{img['Size'] / 1048576:.1f} MiB, healthcheck {(img.get('Healthcheck') or {}).get('Test')}, "
      f"title label {c.get('Labels', {}).get('org.opencontainers.image.title')}")
ok = (c.get("User") == "65532:65532" and c.get("Entrypoint") == ["/usr/bin/telemetryd"]
      and "/health" in " ".join((img.get("Healthcheck") or {}).get("Test", []))
      and c.get("Labels", {}).get("org.opencontainers.image.title") == "telemetryd")
sys.exit(0 if ok else 1)
PY
}

# ------------------------------------------------------------------------------------------- helm

chart=deploy/helm/telemetryd
helm_ready() {
  td_ensure_helm && td_ensure_kustomize && td_ensure_crds && td_ensure_deploy_venv &&
    "$HELM_BIN" version && "$KUSTOMIZE_BIN" version
}
crd_args() {
  local f
  for f in "$KEDA_CRDS"/*.yaml "$PROM_OPERATOR_CRDS"/*.yaml; do printf -- '--crd\n%s\n' "$f"; done
}
validate() {  # validate MANIFEST...
  local args=() v
  for v in "${k8s_versions[@]}"; do args+=(--k8s "$v"); done
  mapfile -t crds < <(crd_args)
  "$DEPLOY_VENV/bin/python" scripts/lib/validate_manifests.py "${args[@]}" "${crds[@]}" "$@"
}
render() {  # render OUT [VALUES]
  local out=$1
  shift
  "$HELM_BIN" template telemetryd "$chart" --namespace telemetryd ${1:+-f "$1"} > "$out"
}

helm_lint() {
  local f rc=0
  "$HELM_BIN" lint --strict "$chart" || rc=1
  for f in tests/fixtures/helm/values-*.yaml; do
    "$HELM_BIN" lint --strict "$chart" -f "$f" || rc=1
  done
  return "$rc"
}

helm_matrix_case() {  # helm_matrix_case NAME [VALUES]
  local out="$work/render-$1.yaml"
  render "$out" "${2:-}" || return 1
  echo "rendered $(grep -c '^kind:' "$out") objects: $(grep '^kind:' "$out" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
  validate "$out"
}

# The role files in the rendered ConfigMaps pass check-config (credential files stand in for the
# mounted Secret; NODE_NAME for the spec.nodeName the chart gives the gpu-exporter pods).
helm_role_files() {
  local f out rc=0 secrets="$work/secrets"
  mkdir -p "$secrets"
  for f in kafka-sasl-password mongodb-password s3-secret-access-key; do echo example > "$secrets/$f"; done
  echo "ingest-client 0123456789abcdef0123" > "$secrets/ingest-tokens"
  echo "query-admin 0123456789abcdef0123" > "$secrets/query-tokens"
  for f in "" tests/fixtures/helm/values-*.yaml; do
    out="$work/roles-$(basename "${f:-default}" .yaml)"
    mkdir -p "$out"
    render "$out/all.yaml" "$f" || return 1
    "$DEPLOY_VENV/bin/python" - "$out" "$secrets" <<'PY' || return 1
import os, sys, yaml
out, secrets = sys.argv[1:]
for doc in yaml.safe_load_all(open(f"{out}/all.yaml")):
    if doc and doc["kind"] == "ConfigMap":
        for key, text in doc["data"].items():
            name = f"{out}/{doc['metadata']['name']}-{key}"
            open(name, "w").write(text.replace("/etc/telemetryd/secrets", secrets))
            print(name)
PY
  done
  for f in "$work"/roles-*/*-*.yaml; do
    NODE_NAME=gpu-node-1 "$bin" check-config "$f" || rc=1
  done
  return "$rc"
}

helm_broken_values() {
  local rc=0
  if "$HELM_BIN" lint --strict "$chart" -f tests/fixtures/helm/broken-values.yaml; then
    echo "FAIL: helm lint accepted tests/fixtures/helm/broken-values.yaml"
    rc=1
  else
    echo "as expected: helm lint rejects broken-values.yaml"
  fi
  if ! render "$work/broken-manifest.yaml" tests/fixtures/helm/broken-manifest-values.yaml; then
    echo "FAIL: broken-manifest-values.yaml did not render (it should pass lint and fail validation)"
    return 1
  fi
  if validate "$work/broken-manifest.yaml" > "$work/broken-manifest.log"; then
    echo "FAIL: the objects rendered from broken-manifest-values.yaml validated"
    rc=1
  else
    grep -E '^FAIL' "$work/broken-manifest.log"
    echo "as expected: validation rejects the objects rendered from broken-manifest-values.yaml"
  fi
  return "$rc"
}

helm_alerts_in_sync() {
  cmp deploy/prometheus/alerts.yml "$chart/files/alerts.yml" &&
    echo "$chart/files/alerts.yml is deploy/prometheus/alerts.yml"
}

kustomize_in_sync() {
  render "$work/kustomize-expected.yaml" || return 1
  if ! diff -u deploy/kubernetes/telemetryd.yaml "$work/kustomize-expected.yaml"; then
    echo "FAIL: deploy/kubernetes/telemetryd.yaml differs from helm template of the defaults;"
    echo "      regenerate: scripts/render-manifests.sh"
    return 1
  fi
  echo "deploy/kubernetes/telemetryd.yaml is helm template of the defaults"
  # What `kubectl apply -k deploy/kubernetes` would send: kustomize's own build of it.
  "$KUSTOMIZE_BIN" build deploy/kubernetes > "$work/kustomize-build.yaml" || return 1
  "$DEPLOY_VENV/bin/python" - "$work/kustomize-build.yaml" <<'PY' || return 1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
bad = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
       if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "telemetryd"]
print(f"kustomize build: {len(docs)} objects, namespace telemetryd on all but {bad or 'none'}")
sys.exit(1 if bad or len(docs) < 10 else 0)
PY
  validate "$work/kustomize-build.yaml"
}

# ------------------------------------------------------------------------------------- cloud-init

deb=""
cloud_init_deb() {
  deb=$(scripts/build-deb.sh "$build_dir" "$work/deb" 2>/dev/null) && echo "$deb"
}
cloud_init_boot() {  # cloud_init_boot FILE ROLE
  [ -n "$deb" ] || { echo "no .deb (its build failed)"; return 1; }
  local w
  w=$(mktemp -d /var/tmp/telemetryd-boot.XXXXXX)
  # A throwaway root: the host's root as the lower layer of an overlay in a private mount
  # namespace, so dpkg, useradd and the role files change only $w/upper, gone with the namespace.
  # upper and work are on a tmpfs mounted there: an overlayfs upperdir cannot be on overlayfs,
  # which /var/tmp is on some CI machines (containers).
  unshare -m --propagation private /bin/bash -c '
    set -e
    w=$1; shift
    mount -t tmpfs tmpfs "$w"
    mkdir -p "$w/upper" "$w/work" "$w/merged"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/merged"
    mount -t proc proc "$w/merged/proc"
    mount --rbind /dev "$w/merged/dev"
    mount -t tmpfs tmpfs "$w/merged/tmp"
    mount -t tmpfs tmpfs "$w/merged/run"
    exec python3 scripts/lib/cloud_init_boot.py "$w/merged" "$@"' boot "$w" "$1" --deb "$deb" \
    --role "$2" --var kafka_bootstrap=10.0.1.10:9092 --var mongodb_uri=mongodb://10.0.1.11:27017/ \
    --var "gpu_model=A100 40GB" --var price_per_hour_usd=1.10 --var producer_rate=100 \
    --var gpu_sample_interval_ms=1000 --var gpu_metrics_naming=telemetryd
  local rc=$?
  rm -rf "$w"
  return "$rc"
}
cloud_init_old_fails() {
  local rc
  cloud_init_boot tests/fixtures/cloud-init/old-processor.yaml processor > "$work/old-boot.log" 2>&1
  rc=$?
  cat "$work/old-boot.log"
  if [ "$rc" = 0 ]; then
    echo "FAIL: the old file order booted; the test no longer reproduces the failure"
    return 1
  fi
  grep -q 'end of file on stdin at conffile prompt' "$work/old-boot.log" &&
    grep -q 'BOOT FAILED: user telemetryd missing' "$work/old-boot.log" &&
    echo "reproduced: dpkg stopped at the conffile prompt, package unconfigured, no telemetryd user"
}

# ------------------------------------------------------------------------------------------- run

[ -x "$bin" ] || echo "warning: no telemetryd binary at $bin (build it or set TELEMETRYD_BIN)"

run_case "lean: run-all.sh's packages pull no JDK, Go, clang, Prometheus or InfluxDB" lean_closure
run_case "lean: no server package enabled for the next boot" no_server_enabled
run_case "lean: scripts/run-all.sh serves the all role, /ready 200" run_all_ready

run_case "image: build (scripts/build-image.sh), size, user, labels" image_build
grep -h '^image size' "$work/case$n.out" | sed 's/^/     /'
run_case "image: the all role answers /ready 200 in the image's root (unshare + chroot)" image_ready
grep -h '^GET /ready' "$work/case$n.out" | sed 's/^/     /'
run_case "image: podman loads image.tar and reads its config" image_podman_load

if run_case "helm: tools (helm $HELM_VERSION and kustomize $KUSTOMIZE_VERSION from the Go module proxy, CRDs, kubernetes-validate)" helm_ready &&
  [ -x "$HELM_BIN" ] && [ -x "$KUSTOMIZE_BIN" ] && [ -x "$DEPLOY_VENV/bin/python" ]; then
  run_case "helm: lint --strict (defaults and every values file)" helm_lint
  run_case "helm: template defaults, validated (k8s ${k8s_versions[*]}, CRDs)" helm_matrix_case default
  for f in tests/fixtures/helm/values-*.yaml; do
    run_case "helm: template $(basename "$f"), validated (k8s ${k8s_versions[*]}, CRDs)" \
      helm_matrix_case "$(basename "$f" .yaml)" "$f"
  done
  run_case "helm: rendered role files pass check-config" helm_role_files
  run_case "helm: broken values fail lint and validation" helm_broken_values
  run_case "kustomize: deploy/kubernetes equals helm template; kustomize build validated" kustomize_in_sync
fi
run_case "helm: chart alerts are deploy/prometheus/alerts.yml" helm_alerts_in_sync

run_case "cloud-init: build the .deb" cloud_init_deb
run_case "cloud-init: old file order fails at the conffile prompt (reproduced)" cloud_init_old_fails
for role in processor producer worker gpu-exporter; do
  run_case "cloud-init: $role.yaml boots (package configured, user, check-config)" \
    cloud_init_boot "cloud-init/$role.yaml" "$role"
done

write_cases_junit "$junit" deploy
echo "deploy-checks: $((n - failed)) of $n passed, $failed failed; report: $junit"
[ "$failed" = 0 ]
