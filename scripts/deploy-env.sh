# Sourced by the scripts/deploy-*.sh: where `make test-deploy` keeps its Docker engine.
# The data root lives in the cache so a second run reuses the images (a "warm" run); the
# sockets live in a short /tmp path (unix socket paths are limited to 108 bytes).
SIGHTLINE_CACHE_DIR=${SIGHTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sightline}
DEPLOY_DATA_ROOT=${SIGHTLINE_DEPLOY_DATA_ROOT:-$SIGHTLINE_CACHE_DIR/deploy/docker}
DEPLOY_RUN_DIR=${SIGHTLINE_DEPLOY_RUN_DIR:-/tmp/sightline-deploy-$(id -u)}
export DOCKER_HOST=unix://$DEPLOY_RUN_DIR/docker.sock
# The base image every local image builds on (scripts/deploy-images.sh makes it with debootstrap).
DEPLOY_BASE_IMAGE=sightline-base:bookworm
export DEPLOY_BASE_IMAGE
