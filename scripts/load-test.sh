#!/usr/bin/env bash
# Load test: a producer run at a fixed rate, and what a running processor made of it.
#
# Usage: scripts/load-test.sh [--rate R] [--seconds S] [--brokers H:P[,H:P...]]
#                             [--processor URL] [--topics GPU,USAGE] [--binary PATH]
#                             [--grace G] [--allow-remote]
#   --rate R        events per second (default 2000)
#   --seconds S     run length (default 20): the producer sends R*S events
#                   (`telemetryd run --role producer --count R*S --set producer.rate=R`)
#   --brokers       default $TELEMETRYD_TEST_KAFKA_BROKERS, else 127.0.0.1:9092
#   --topics        gpu and usage topics; default fresh ones (loadtest-gpu-<time>, ...). With
#                   --processor give the processor's processor.topics.* here, or it sees nothing
#   --processor URL a running processor's base URL: /metrics is scraped before and after, and
#                   the summary gives consumed and stored per second, end-to-end p50/p99 from
#                   processor_end_to_end_latency_seconds and the consumer lag at the end
#   --binary        telemetryd binary (default build/src/telemetryd)
#   --grace G       seconds allowed beyond S for start-up, delivery and draining (default 60)
#   --allow-remote  permit brokers or a processor URL that are not on the loopback interface
# Bounded: the producer is killed after S+G seconds; the drain wait also ends at S+G. Prints one
# summary block; exit 0 when the producer delivered every event (and, with --processor, the
# processor consumed them all), 1 otherwise, 2 usage.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rate=2000
seconds=20
brokers=${TELEMETRYD_TEST_KAFKA_BROKERS:-127.0.0.1:9092}
processor=
topics=
binary=$root/build/src/telemetryd
grace=60
allow_remote=0

usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
die() {
    echo "load-test: $*" >&2
    exit 2
}
need() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }

while (($#)); do
    case $1 in
    --rate) need "$@"; rate=$2; shift ;;
    --seconds) need "$@"; seconds=$2; shift ;;
    --brokers) need "$@"; brokers=$2; shift ;;
    --processor) need "$@"; processor=${2%/}; shift ;;
    --topics) need "$@"; topics=$2; shift ;;
    --binary) need "$@"; binary=$2; shift ;;
    --grace) need "$@"; grace=$2; shift ;;
    --allow-remote) allow_remote=1 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

if ! [[ $rate =~ ^[0-9]+$ ]] || ((rate == 0)); then die "--rate must be a positive integer"; fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then die "--seconds must be a positive integer"; fi
[[ $grace =~ ^[0-9]+$ ]] || die "--grace must be a non-negative integer"
[[ -x $binary ]] || die "no telemetryd binary at $binary (build: ninja -C build src/telemetryd)"

is_loopback() {
    local h=${1,,}
    h=${h#[}
    h=${h%]}
    [[ $h == localhost || $h == ::1 || $h =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]]
}
IFS=, read -r -a broker_list <<<"$brokers"
((${#broker_list[@]})) || die "--brokers is empty"
for b in "${broker_list[@]}"; do
    [[ $b =~ ^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):[0-9]+$ ]] || die "broker '$b' is not HOST:PORT"
    if ((!allow_remote)) && ! is_loopback "${b%:*}"; then
        die "broker '$b' is not on the loopback interface (add --allow-remote to permit it)"
    fi
done
if [[ -n $processor ]]; then
    [[ $processor =~ ^https?://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+)(:[0-9]+)?$ ]] ||
        die "--processor must be a base URL like http://127.0.0.1:8000"
    if ((!allow_remote)) && ! is_loopback "${BASH_REMATCH[1]}"; then
        die "processor '$processor' is not on the loopback interface (add --allow-remote to permit it)"
    fi
    [[ -n $topics ]] || die "with --processor, give --topics GPU,USAGE matching the processor's processor.topics.*"
fi
tag=$(date +%s)-$$
fresh=0
if [[ -z $topics ]]; then
    topics=loadtest-gpu-$tag,loadtest-usage-$tag
    fresh=1
fi
IFS=, read -r gpu_topic usage_topic extra <<<"$topics"
[[ -n $gpu_topic && -n $usage_topic && -z ${extra:-} ]] || die "--topics must be GPU,USAGE"

count=$((rate * seconds))
deadline=$((SECONDS + seconds + grace))
work=$(mktemp -d "${TMPDIR:-/tmp}/load-test.XXXXXX")
producer_pid=
cleanup() {
    if [[ -n $producer_pid ]] && kill -0 "$producer_pid" 2>/dev/null; then
        kill -TERM "$producer_pid" 2>/dev/null
        sleep 1
        kill -KILL "$producer_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
scrape() { # scrape FILE: processor /metrics into FILE; records the time in FILE.t
    now >"$1.t"
    curl -sS -f -m 5 "$processor/metrics" -o "$1" 2>/dev/null
}
metric_sum() { # metric_sum FILE NAME
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.17g\n", s + 0 }' "$1"
}

echo "load-test: $count events at $rate/s (${seconds} s) to $brokers, topics $gpu_topic, $usage_topic$( ((fresh)) && echo ' (fresh)')"
if [[ -n $processor ]]; then
    scrape "$work/before" || die "cannot scrape $processor/metrics"
fi

t0=$(now)
timeout --kill-after=5 "$((seconds + grace))" "$binary" run --role producer --count "$count" \
    --set "producer.rate=$rate" --set http.listen=127.0.0.1:0 --set "kafka.brokers=$brokers" \
    --set "producer.topics.gpu_metrics=$gpu_topic" --set "producer.topics.token_usage=$usage_topic" \
    --set daemon.log_level=warn >"$work/producer.log" 2>&1 &
producer_pid=$!
wait "$producer_pid"
producer_rc=$?
producer_pid=
t1=$(now)
produce_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

consumed=0 result=ok
if ((producer_rc != 0)); then
    result="FAILED (producer exit $producer_rc$( ((producer_rc == 124 || producer_rc == 137)) && echo ', killed at the time limit'))"
fi
if [[ -n $processor ]]; then
    # Wait (bounded) until the processor has consumed what was sent, then scrape once more.
    base_consumed=$(metric_sum "$work/before" processor_messages_consumed_total)
    while :; do
        if scrape "$work/after"; then
            consumed=$(awk -v a="$(metric_sum "$work/after" processor_messages_consumed_total)" -v b="$base_consumed" 'BEGIN { printf "%d", a - b }')
            lag=$(metric_sum "$work/after" processor_kafka_consumer_lag)
            ((consumed >= count)) && awk -v l="$lag" 'BEGIN { exit !(l == 0) }' && break
        fi
        ((SECONDS < deadline)) || break
        sleep 0.5
    done
    if ((consumed < count)) && [[ $result == ok ]]; then
        result="FAILED (processor consumed $consumed of $count within the time limit)"
    fi
fi

echo "load-test: summary"
printf '  %-13s %s\n' producer "$count events requested, exit $producer_rc after ${produce_s} s ($(awk -v n="$count" -v s="$produce_s" 'BEGIN { printf "%.0f", n / s }') events/s incl. start-up)"
if ((producer_rc != 0)); then
    printf '  %-13s %s\n' "producer log" "$(tail -n 3 "$work/producer.log" | tr '\n' ' ' | cut -c1-400)"
fi
if [[ -n $processor ]]; then
    python3 - "$work/before" "$work/after" "$count" <<'EOF'
import re, sys

def load(path):
    text = open(path).read()
    t = float(open(path + ".t").read())
    return text, t

def total(text, name):
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

def buckets(text, name):
    out = {}
    for m in re.finditer(rf'^{name}_bucket{{(?:[^}}]*,)?le="([^"]+)"[^}}]*}} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        out[le] = out.get(le, 0.0) + float(m.group(2))
    return out

def quantile(before, after, q):
    deltas = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not deltas or deltas[-1][1] <= 0:
        return None, 0
    count = deltas[-1][1]
    target, prev_le, prev_n = q * count, 0.0, 0.0
    for le, n in deltas:
        if n >= target:
            if le == float("inf"):
                return prev_le, count
            return prev_le + (le - prev_le) * (target - prev_n) / max(n - prev_n, 1e-9), count
        prev_le, prev_n = le, n
    return None, count

(b, tb), (a, ta) = load(sys.argv[1]), load(sys.argv[2])
secs = max(ta - tb, 1e-9)
d = {n: total(a, n) - total(b, n) for n in ("processor_messages_consumed_total", "processor_db_writes_total",
                                            "processor_duplicates_total", "processor_dead_letters_total")}
name = "processor_end_to_end_latency_seconds"
p50, n = quantile(buckets(b, name), buckets(a, name), 0.50)
p99, _ = quantile(buckets(b, name), buckets(a, name), 0.99)
ms = lambda v: "n/a" if v is None else f"{v * 1000:.0f} ms"
print(f"  {'processor':13} consumed {d['processor_messages_consumed_total']:.0f} "
      f"({d['processor_messages_consumed_total'] / secs:.0f}/s), stored {d['processor_db_writes_total']:.0f} "
      f"({d['processor_db_writes_total'] / secs:.0f}/s), duplicates {d['processor_duplicates_total']:.0f}, "
      f"dead letters {d['processor_dead_letters_total']:.0f}, over {secs:.1f} s between scrapes")
print(f"  {'end-to-end':13} p50 {ms(p50)}, p99 {ms(p99)} (histogram estimate over {n:.0f} events)")
print(f"  {'consumer lag':13} {total(a, 'processor_kafka_consumer_lag'):.0f} at the end")
EOF
fi
printf '  %-13s %s\n' result "$result"
[[ $result == ok ]]
