#!/usr/bin/env bash
# Builds every image `make test-deploy` runs, with no image registry: a Debian bookworm base from
# Debian's packages (debootstrap), Kafka from the Maven Central jars `sightline dev up` uses,
# Redis and Prometheus from Debian's packages, and the project's images on that base.
# Needs the engine from deploy-dockerd.sh. Layers are cached in its data root (warm runs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=scripts/deploy-env.sh
. "$here/deploy-env.sh"
cd "$repo"
SIGHTLINE=${SIGHTLINE:-.venv/bin/sightline}
PYTHON=${PYTHON:-.venv/bin/python}
# The legacy builder: BuildKit would fetch the `# syntax=` frontend image from Docker Hub.
# --network host: pip and apt inside a build reach the package registries as this machine does.
build() { DOCKER_BUILDKIT=0 nice -n 10 docker build -q --force-rm --network host "$@"; }

base_image() {
  docker image inspect "$DEPLOY_BASE_IMAGE" >/dev/null 2>&1 && return
  echo "deploy: building $DEPLOY_BASE_IMAGE with debootstrap"
  local rootfs
  rootfs=$(mktemp -d)
  nice -n 10 debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  # This machine's trust store, so pip inside builds trusts what the machine trusts (e.g. a TLS
  # proxy): as a bundle apt never rewrites, and its local CAs for a later `update-ca-certificates`.
  mkdir -p "$rootfs/etc/sightline-base" "$rootfs/usr/local/share/ca-certificates"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/sightline-base/ca-bundle.crt"
  cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/sightline-base/ca-bundle.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/sightline-base/ca-bundle.crt' \
    --change 'CMD ["bash"]' - "$DEPLOY_BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

kafka_image() {
  local libs version ctx
  libs=$("$SIGHTLINE" dev fetch 2>&1 | sed -n 's/^kafka jars: //p')
  [ -d "$libs" ] || { echo "deploy: could not resolve the Kafka jars" >&2; exit 1; }
  version=$("$PYTHON" -c "from sightline.config import DevSettings; print(DevSettings().kafka_version)")
  # kafka-broker-api-versions (the compose health check) lives in kafka-tools, outside the broker's pom.
  local tools=$SIGHTLINE_CACHE_DIR/kafka/tools-$version
  if [ ! -f "$tools/.complete" ]; then
    mkdir -p "$tools"
    cat >"$tools/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>dev.sightline</groupId><artifactId>kafka-tools-dist</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies><dependency>
    <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version>
  </dependency></dependencies>
</project>
POM
    (cd "$tools" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs) && touch "$tools/.complete"
  fi
  ctx=$(mktemp -d)
  mkdir "$ctx/libs"
  cp "$libs"/*.jar "$ctx/libs/"
  cp -n "$tools"/libs/*.jar "$ctx/libs/"  # the broker's own versions win
  cp compose/local/kafka-entrypoint.sh compose/local/kafka-broker-api-versions.sh compose/local/log4j2.yaml "$ctx/"
  build --build-arg BASE_IMAGE="$DEPLOY_BASE_IMAGE" -f compose/local/Dockerfile.kafka \
    -t "sightline-local/kafka:$version" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "deploy: sightline-local/kafka:$version"
}

debian_image() {  # name: compose/local/Dockerfile.<name> with an empty context
  build --build-arg BASE_IMAGE="$DEPLOY_BASE_IMAGE" -t "sightline-local/$1:bookworm" - <"compose/local/Dockerfile.$1" >/dev/null
  echo "deploy: sightline-local/$1:bookworm"
}

base_image
kafka_image
debian_image redis
debian_image prometheus
build --build-arg BASE_IMAGE="$DEPLOY_BASE_IMAGE" -f compose/Dockerfile -t sightline:latest . >/dev/null
echo "deploy: sightline:latest (on $DEPLOY_BASE_IMAGE)"
