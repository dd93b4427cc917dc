#!/usr/bin/env bash
# `make test-deploy`: the Compose stack built and run for real (tests/test_deploy_live.py).
# Installs Docker and Compose where missing, starts a private dockerd (stopped again on exit,
# whatever happens), builds the images without any image registry, runs the test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
started=$(date +%s)
bash "$here/deploy-tools.sh"
# shellcheck source=scripts/deploy-env.sh
. "$here/deploy-env.sh"
trap 'bash "$here/deploy-dockerd.sh" stop' EXIT
bash "$here/deploy-dockerd.sh" start
bash "$here/deploy-images.sh"
echo "deploy: tools, engine and images ready in $(($(date +%s) - started))s"
.venv/bin/python -m pytest -q -m deploy tests/test_deploy_live.py "$@"
echo "deploy: make test-deploy took $(($(date +%s) - started))s"
