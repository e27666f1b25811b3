# shellcheck shell=bash
# Tools for scripts/deploy-checks.sh, fetched through the ordinary package clients and cached
# under ${TELEMETRYD_CACHE:-$HOME/.cache/telemetryd} (outside the repo). Source it after
# scripts/lib/services-common.sh; do not run it.
#
#   bin/helm-$HELM_VERSION           Helm v4, built from the Go module proxy source
#   bin/kustomize-$KUSTOMIZE_VERSION  kustomize (what `kubectl apply -k` runs), the same way
#   crds/keda-$KEDA_VERSION/          KEDA's CRDs (config/crd/bases of its Go module)
#   crds/prometheus-operator-$PROM_OPERATOR_VERSION/   the Prometheus operator's CRDs
#   venv-deploy/                      kubernetes-validate from PyPI (ships the OpenAPI schemas)
#
# The module proxy here answers @v/list only for some modules, so every module is fetched
# with `go mod download` of an exact version, in an empty directory (GOWORK=off,
# GOFLAGS=-mod=mod), and built with GOTOOLCHAIN=auto (the toolchain go.mod asks for comes from
# the same proxy), as services-common.sh does for FerretDB.

HELM_VERSION=v4.3.2
HELM_MODULE=helm.sh/helm/v4
HELM_BIN="$TD_CACHE/bin/helm-$HELM_VERSION"
# (v2.20 and later declare a go directive newer than the toolchains here; the ScaledObject
# fields the chart uses are the same.)
KUSTOMIZE_VERSION=v5.8.1
KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
KUSTOMIZE_BIN="$TD_CACHE/bin/kustomize-$KUSTOMIZE_VERSION"
KEDA_VERSION=v2.16.1
KEDA_MODULE=github.com/kedacore/keda/v2
KEDA_CRDS="$TD_CACHE/crds/keda-$KEDA_VERSION"
PROM_OPERATOR_VERSION=v0.85.0
PROM_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
PROM_OPERATOR_CRDS="$TD_CACHE/crds/prometheus-operator-$PROM_OPERATOR_VERSION"
KUBERNETES_VALIDATE_VERSION=1.37.0
DEPLOY_VENV="$TD_CACHE/venv-deploy-kv$KUBERNETES_VALIDATE_VERSION"

# Builds Go program PACKAGE of MODULE@VERSION into BIN from the module proxy's source, with
# LDFLAGS (may be empty): _td_go_build_tool NAME MODULE VERSION BIN PACKAGE [LDFLAGS].
_td_go_build_tool() {
    local name=$1 module=$2 version=$3 bin=$4 package=$5 ldflags=${6:-}
    [[ -x "$bin" ]] && return 0
    local go dir src gobuild t0=$SECONDS
    go="$(td_find_go)" || td_die "go not found (scripts/test.sh installs it)"
    td_msg "$name: downloading $module@$version source from the Go module proxy"
    dir="$(_td_go_mod_download_dir "$go" "$module@$version")"
    src="$TD_CACHE/$name-src-$version"
    rm -rf "$src"
    mkdir -p "$(dirname "$bin")"
    cp -R "$dir" "$src"
    chmod -R u+w "$src"
    gobuild="$(_td_go_for_module "$go" "$src")"
    td_msg "$name: building $bin with $gobuild (cold: up to a few minutes)"
    if ! (cd "$src" &&
        nice -n 10 env GOTOOLCHAIN=auto GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
            "$gobuild" build -p 2 -trimpath -ldflags "$ldflags" -o "$bin.tmp" "$package" >&2); then
        rm -f "$bin.tmp"
        td_die "building $name failed (see output above)"
    fi
    mv "$bin.tmp" "$bin"
    rm -rf "$src"
    td_msg "$name: built $version in $((SECONDS - t0))s"
}

# Makes sure $HELM_BIN exists (builds it from the module proxy source when absent).
td_ensure_helm() {
    [[ -x "$HELM_BIN" ]] && return 0
    # -X sets what `helm version` prints; the module zip has no git metadata to read.
    td_with_lock "$TD_CACHE/.helm-$HELM_VERSION.lock" _td_go_build_tool helm "$HELM_MODULE" \
        "$HELM_VERSION" "$HELM_BIN" ./cmd/helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
}

# Makes sure $KUSTOMIZE_BIN exists (builds it from the module proxy source when absent).
td_ensure_kustomize() {
    [[ -x "$KUSTOMIZE_BIN" ]] && return 0
    td_with_lock "$TD_CACHE/.kustomize-$KUSTOMIZE_VERSION.lock" _td_go_build_tool kustomize \
        "$KUSTOMIZE_MODULE" "$KUSTOMIZE_VERSION" "$KUSTOMIZE_BIN" .
}

# Copies CRD files $3... (paths inside module $1@$2) into directory $4 (the last argument).
_td_fetch_crds() {
    local module=$1 version=$2 dest=${!#} go dir f
    local files=("${@:3:$(($# - 3))}")
    [[ -d "$dest" ]] && return 0
    go="$(td_find_go)" || td_die "go not found (scripts/test.sh installs it)"
    td_msg "crds: downloading $module@$version from the Go module proxy (CRD files only are kept)"
    dir="$(_td_go_mod_download_dir "$go" "$module@$version")"
    rm -rf "$dest.tmp"
    mkdir -p "$dest.tmp"
    for f in "${files[@]}"; do
        [[ -f "$dir/$f" ]] || td_die "$module@$version has no $f"
        cp "$dir/$f" "$dest.tmp/"
    done
    chmod -R u+w "$dest.tmp"
    mv "$dest.tmp" "$dest"
}

td_ensure_crds() {
    td_with_lock "$TD_CACHE/.crds.lock" _td_fetch_crds "$KEDA_MODULE" "$KEDA_VERSION" \
        config/crd/bases/keda.sh_scaledobjects.yaml "$KEDA_CRDS"
    td_with_lock "$TD_CACHE/.crds.lock" _td_fetch_crds "$PROM_OPERATOR_MODULE" "$PROM_OPERATOR_VERSION" \
        example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
        example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml \
        "$PROM_OPERATOR_CRDS"
}

_td_make_deploy_venv() {
    [[ -x "$DEPLOY_VENV/bin/kubernetes-validate" ]] && return 0
    td_msg "venv: kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into $DEPLOY_VENV"
    # A venv's scripts name their interpreter by path, so it is built in place; a half-made one
    # (no kubernetes-validate script yet) is removed and built again.
    rm -rf "$DEPLOY_VENV"
    python3 -m venv "$DEPLOY_VENV" >&2 || td_die "python3 -m venv failed (python3-venv)"
    if ! "$DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2; then
        rm -rf "$DEPLOY_VENV"
        td_die "pip install kubernetes-validate failed"
    fi
}

td_ensure_deploy_venv() {
    [[ -x "$DEPLOY_VENV/bin/kubernetes-validate" ]] && return 0
    td_with_lock "$TD_CACHE/.venv-deploy.lock" _td_make_deploy_venv
}
