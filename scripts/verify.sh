#!/usr/bin/env bash
# Verifies running telemetryd instances from the outside, step by step, over HTTP.
#
# Usage: scripts/verify.sh [--producer URL] [--processor URL] [--worker URL] [--all URL]
#   Each option names the base URL of one instance of that role; a bare option (no URL, or the
#   next word starts with --) means http://127.0.0.1:8000. At least one role is required.
#
# Steps, each printed as `verify: <step>: ok|FAILED (detail)`:
#   health     GET /health answers 200 (every given role)
#   ready      GET /ready answers 200 (every given role)
#   flowing    two /metrics scrapes 5 s apart (VERIFY_INTERVAL_S): producer_messages_sent_total
#              grows (producer), processor_messages_consumed_total grows (processor, all)
#   documents  processor_db_writes_total grows between the same scrapes and GET /gpu/info is 200
#              with a ts no older than 60 s (processor, all); with VERIFY_QUERY_TOKEN set, sent
#              as its bearer token (a processor's query API needs one: docs/security.md)
# The worker only has health and ready (it does not move data yet).
#
# Exit status names the first failed step: 0 ok, 10 health, 11 ready, 12 flowing,
# 13 documents, 2 usage. Every request times out after 5 s; the whole run takes about 6 s.
set -uo pipefail

DEFAULT_URL=http://127.0.0.1:8000
INTERVAL=${VERIFY_INTERVAL_S:-5}
MAX_AGE_S=60

usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

roles=()
declare -A url=()
while (($#)); do
    case $1 in
    --producer | --processor | --worker | --all)
        role=${1#--}
        if [[ $# -ge 2 && $2 != --* ]]; then
            url[$role]=${2%/}
            shift
        else
            url[$role]=$DEFAULT_URL
        fi
        [[ " ${roles[*]} " == *" $role "* ]] || roles+=("$role")
        ;;
    -h | --help) usage ;;
    *)
        echo "verify: unknown argument '$1'" >&2
        usage
        ;;
    esac
    shift
done
((${#roles[@]})) || usage
for role in "${roles[@]}"; do
    [[ ${url[$role]} =~ ^https?://[^/[:space:]]+$ ]] || {
        echo "verify: --$role: expected a base URL like $DEFAULT_URL, got '${url[$role]}'" >&2
        exit 2
    }
done

first_failure=0
report() { # report STEP CODE ok|FAILED DETAIL
    local step=$1 code=$2 result=$3 detail=$4
    printf 'verify: %s: %s (%s)\n' "$step" "$result" "$detail"
    if [[ $result != ok ]] && ((first_failure == 0)); then first_failure=$code; fi
}

tmp=$(mktemp "${TMPDIR:-/tmp}/verify.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# http_get URL: sets $status (000 when unreachable) and $body
http_get() {
    : >"$tmp"
    local auth=()
    [[ -z ${VERIFY_QUERY_TOKEN:-} ]] || auth=(-H "Authorization: Bearer $VERIFY_QUERY_TOKEN")
    status=$(curl -sS -m 5 "${auth[@]}" -o "$tmp" -w '%{http_code}' "$1" 2>/dev/null) || true
    [[ $status =~ ^[0-9]{3}$ ]] || status=000
    body=$(<"$tmp")
}

# metric_sum TEXT NAME -> sum over every series of NAME (empty when absent)
metric_sum() {
    awk -v n="$2" '
        $1 == n || index($1, n "{") == 1 { s += $NF; found = 1 }
        END { if (found) printf "%.17g\n", s }' <<<"$1"
}

status=000 body=''
# ------------------------------------------------------------------------------ health
for role in "${roles[@]}"; do
    http_get "${url[$role]}/health"
    if [[ $status == 200 ]]; then
        report "$role health" 10 ok "GET ${url[$role]}/health 200"
    else
        report "$role health" 10 FAILED "GET ${url[$role]}/health $status ${body:0:200}"
    fi
done

# ------------------------------------------------------------------------------- ready
for role in "${roles[@]}"; do
    http_get "${url[$role]}/ready"
    if [[ $status == 200 ]]; then
        report "$role ready" 11 ok "GET ${url[$role]}/ready 200"
    else
        report "$role ready" 11 FAILED "GET ${url[$role]}/ready $status ${body:0:300}"
    fi
done

# ---------------------------------------------------------------- flowing and documents
declare -A before=() after=() scrape_ok=()
moving=()
for role in "${roles[@]}"; do [[ $role != worker ]] && moving+=("$role"); done
if ((${#moving[@]})); then
    for role in "${moving[@]}"; do
        http_get "${url[$role]}/metrics"
        before[$role]=$body
        scrape_ok[$role]=$status
    done
    sleep "$INTERVAL"
    for role in "${moving[@]}"; do
        http_get "${url[$role]}/metrics"
        after[$role]=$body
        [[ $status == 200 ]] || scrape_ok[$role]=$status
    done
fi

grows() { # grows ROLE METRIC -> prints "a -> b", succeeds when b > a
    local a b
    a=$(metric_sum "${before[$1]}" "$2")
    b=$(metric_sum "${after[$1]}" "$2")
    printf '%s %s -> %s in %ss' "$2" "${a:-absent}" "${b:-absent}" "$INTERVAL"
    [[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > a) }'
}

for role in "${moving[@]}"; do
    if [[ ${scrape_ok[$role]} != 200 ]]; then
        report "$role flowing" 12 FAILED "GET ${url[$role]}/metrics ${scrape_ok[$role]}"
        continue
    fi
    case $role in
    producer) metric=producer_messages_sent_total ;;
    *) metric=processor_messages_consumed_total ;;
    esac
    if detail=$(grows "$role" "$metric"); then
        report "$role flowing" 12 ok "$detail"
    else
        report "$role flowing" 12 FAILED "$detail"
    fi
done

for role in "${moving[@]}"; do
    [[ $role == producer ]] && continue
    if [[ ${scrape_ok[$role]} != 200 ]]; then
        report "$role documents" 13 FAILED "GET ${url[$role]}/metrics ${scrape_ok[$role]}"
        continue
    fi
    if ! detail=$(grows "$role" processor_db_writes_total); then
        report "$role documents" 13 FAILED "$detail"
        continue
    fi
    http_get "${url[$role]}/gpu/info"
    if [[ $status != 200 ]]; then
        hint=""
        [[ $status != 401 ]] || hint=" (set VERIFY_QUERY_TOKEN to a query API token)"
        report "$role documents" 13 FAILED "$detail; GET /gpu/info $status${hint} ${body:0:200}"
        continue
    fi
    # The latest sample's ts (RFC 3339) must be at most MAX_AGE_S old (a future ts is fine:
    # a fast synthetic source runs its simulated clock ahead).
    if age=$(python3 -c '
import datetime, json, sys
ts = json.loads(sys.stdin.read())["ts"]
t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
print(f"{(datetime.datetime.now(datetime.timezone.utc) - t).total_seconds():.1f}")
' <<<"$body" 2>/dev/null) && awk -v a="$age" -v m="$MAX_AGE_S" 'BEGIN { exit !(a <= m) }'; then
        report "$role documents" 13 ok "$detail; /gpu/info ts ${age}s old"
    else
        report "$role documents" 13 FAILED "$detail; /gpu/info ts ${age:-unreadable}s old (limit ${MAX_AGE_S}s): ${body:0:200}"
    fi
done

if ((first_failure)); then
    echo "verify: FAILED (exit $first_failure)"
else
    echo "verify: ok (${roles[*]})"
fi
exit "$first_failure"
