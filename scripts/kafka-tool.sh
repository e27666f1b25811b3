#!/usr/bin/env bash
# Runs a Kafka 3.7.2 Java class with the cached jar classpath and a quiet log4j config
# (WARN and above, to stderr). Fetches the jars from Maven Central first when absent.
#
# Usage: scripts/kafka-tool.sh CLASS [args...]
#   scripts/kafka-tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#   scripts/kafka-tool.sh kafka.tools.ConsoleProducer --bootstrap-server 127.0.0.1:9092 --topic t
#   scripts/kafka-tool.sh kafka.tools.ConsoleConsumer --bootstrap-server 127.0.0.1:9092 --topic t \
#       --from-beginning --max-messages 1 --timeout-ms 10000
#   scripts/kafka-tool.sh org.apache.kafka.tools.ProducerPerformance --topic t --num-records 100000 \
#       --record-size 200 --throughput -1 --producer-props bootstrap.servers=127.0.0.1:9092
# Extra JVM options: TELEMETRYD_KAFKA_TOOL_OPTS="-Xmx1g ...". Cache: $TELEMETRYD_CACHE.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/services-common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/services-common.sh"

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    [[ $# -ge 1 ]] && exit 0
    exit 2
fi

td_require_java
td_ensure_kafka_libs
opts=()
read -r -a opts <<<"${TELEMETRYD_KAFKA_TOOL_OPTS:-}"
exec java "${opts[@]}" -Dlog4j.configuration="file:$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" "$@"
