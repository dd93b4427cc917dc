#!/bin/sh
# apache/kafka's convention: every KAFKA_* variable but the JVM ones is a server property,
# lower-cased, '_' -> '.', '__' -> '_', '___' -> '-'. The storage is formatted once with
# CLUSTER_ID, so a restart (or a down/up with the volume kept) reuses the data.
set -eu
props=/opt/kafka/config/server.properties
env | grep '^KAFKA_' | grep -Ev '^KAFKA_(HEAP_OPTS|JVM_PERFORMANCE_OPTS|OPTS|LOG4J_OPTS)=' \
  | while IFS='=' read -r name value; do
      key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' \
        | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
      printf '%s=%s\n' "$key" "$value"
    done >"$props"
java_cmd() {
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several JVM flags
  exec_or_run=$1; shift
  $exec_or_run java ${KAFKA_HEAP_OPTS:--Xmx1g} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml -cp '/opt/kafka/libs/*' "$@"
}
java_cmd "" kafka.tools.StorageTool format --ignore-formatted --cluster-id="${CLUSTER_ID:?set CLUSTER_ID}" -c "$props"
java_cmd exec kafka.Kafka "$props"
