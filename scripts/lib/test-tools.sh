# shellcheck shell=bash
# Clients the integration suite drives telemetryd with, fetched through the ordinary package
# clients and cached under ${TELEMETRYD_CACHE:-$HOME/.cache/telemetryd}. Source it after
# scripts/lib/services-common.sh; do not run it.
#
#   venv-otel-$OTEL_SDK_VERSION-pc$PROMETHEUS_CLIENT_VERSION/
#       the OpenTelemetry Python SDK and its OTLP/HTTP exporter (tests/tools/otlp_genai_client.py),
#       and prometheus_client, the library vLLM and SGLang expose their /metrics with
#       (tests/tools/model_server.py), from PyPI

OTEL_SDK_VERSION=1.45.2
PROMETHEUS_CLIENT_VERSION=0.26.0
OTEL_VENV="$TD_CACHE/venv-otel-$OTEL_SDK_VERSION-pc$PROMETHEUS_CLIENT_VERSION"

_td_make_otel_venv() {
    [[ -x "$OTEL_VENV/bin/python" && -f "$OTEL_VENV/.complete" ]] && return 0
    td_msg "venv: opentelemetry-sdk $OTEL_SDK_VERSION, prometheus-client $PROMETHEUS_CLIENT_VERSION from PyPI into $OTEL_VENV"
    rm -rf "$OTEL_VENV"
    python3 -m venv "$OTEL_VENV" >&2 || td_die "python3 -m venv failed (python3-venv)"
    if ! "$OTEL_VENV/bin/pip" install -q --disable-pip-version-check \
        "opentelemetry-sdk==$OTEL_SDK_VERSION" \
        "opentelemetry-exporter-otlp-proto-http==$OTEL_SDK_VERSION" \
        "prometheus-client==$PROMETHEUS_CLIENT_VERSION" >&2; then
        rm -rf "$OTEL_VENV"
        td_die "pip install opentelemetry-sdk failed"
    fi
    touch "$OTEL_VENV/.complete"
}

# Prints the venv's python, building the venv on first use.
td_ensure_otel_venv() {
    if ! [[ -f "$OTEL_VENV/.complete" ]]; then
        td_with_lock "$TD_CACHE/.venv-otel.lock" _td_make_otel_venv || return 1
    fi
    printf '%s\n' "$OTEL_VENV/bin/python"
}
