#!/usr/bin/env bash
# Installs what `make test-deploy` needs and the machine lacks: a Docker engine and debootstrap
# from Debian, and Compose v2 (Debian's docker-compose 1.29 is too old for compose/*.yml), built
# from its Go module with the machine's Go. Idempotent: each step checks for its result first.
set -euo pipefail
COMPOSE_VERSION=${COMPOSE_VERSION:-v2.29.7}

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  echo "deploy: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
if ! docker compose version >/dev/null 2>&1; then
  command -v go >/dev/null || { echo "deploy: Go is needed to build Compose v2 (apt-get install golang-go)" >&2; exit 1; }
  echo "deploy: building Docker Compose $COMPOSE_VERSION with $(go version | cut -d' ' -f3)"
  gobin=$(mktemp -d)
  GOBIN=$gobin nice -n 10 go install \
    -ldflags "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
  mkdir -p "$plugin_dir"
  install -m 0755 "$gobin/cmd" "$plugin_dir/docker-compose"
  rm -rf "$gobin"
fi
docker compose version
