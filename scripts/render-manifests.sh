#!/usr/bin/env bash
# Writes deploy/kubernetes/telemetryd.yaml: the Helm chart deploy/helm/telemetryd rendered with
# its default values, for `kubectl apply -k deploy/kubernetes` without Helm. Run it after
# changing the chart; scripts/deploy-checks.sh fails while the committed file differs.
# helm comes from scripts/lib/deploy-tools.sh (built once from the Go module proxy).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=lib/services-common.sh
. scripts/lib/services-common.sh
# shellcheck source=lib/deploy-tools.sh
. scripts/lib/deploy-tools.sh
td_ensure_helm
"$HELM_BIN" template telemetryd deploy/helm/telemetryd --namespace telemetryd \
  > deploy/kubernetes/telemetryd.yaml
echo "wrote deploy/kubernetes/telemetryd.yaml ($(grep -c '^kind:' deploy/kubernetes/telemetryd.yaml) objects)"
