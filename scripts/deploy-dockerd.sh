#!/usr/bin/env bash
# `deploy-dockerd.sh start|stop`: a Docker engine of our own, on a private socket, data root and
# exec root, so nothing of the machine's own Docker (if any) is touched or needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/deploy-env.sh
. "$here/deploy-env.sh"
pidfile=$DEPLOY_RUN_DIR/docker.pid

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
running() { [ -f "$pidfile" ] && $SUDO kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if running; then
    echo "deploy: dockerd already running (pid $(cat "$pidfile"))"
    return
  fi
  mkdir -p "$DEPLOY_RUN_DIR" "$DEPLOY_DATA_ROOT"
  $SUDO dockerd -H "$DOCKER_HOST" --data-root "$DEPLOY_DATA_ROOT" --exec-root "$DEPLOY_RUN_DIR/exec" \
    --pidfile "$pidfile" >"$DEPLOY_RUN_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 120); do
    docker version >/dev/null 2>&1 && { echo "deploy: dockerd up on $DOCKER_HOST (data: $DEPLOY_DATA_ROOT)"; return; }
    sleep 0.5
  done
  echo "deploy: dockerd did not start; last lines of $DEPLOY_RUN_DIR/dockerd.log:" >&2
  tail -20 "$DEPLOY_RUN_DIR/dockerd.log" >&2
  exit 1
}

stop() {
  running || return 0
  local pid
  pid=$(cat "$pidfile")
  $SUDO kill "$pid"
  for _ in $(seq 60); do $SUDO kill -0 "$pid" 2>/dev/null || { echo "deploy: dockerd stopped"; return; }; sleep 0.5; done
  $SUDO kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
