# shellcheck shell=bash
# Checks `scripts/setup.sh` makes before installing anything, as functions so tests can run them
# with a PATH of stand-in programs (tests/test_deploy.py). Plain bash only: no external commands,
# so they work on a bare machine and under a test's one-folder PATH.

MIN_PYTHON_MINOR=11  # Python 3.11, pyproject's requires-python
MIN_JAVA=17          # the Kafka 4 broker that `sightline dev up` runs needs Java 17+

# "3.11" for an interpreter, nothing when it does not run.
python_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

# The first Python >= 3.11 on PATH ($PYTHON if set, else python3.11, 3.12, 3.13, then python3):
# 3.11 first because CI and the images run it. Prints its path; otherwise says what to install
# on stderr and returns 1.
find_python() {
  local candidates=(python3.11 python3.12 python3.13 python3) found=() name path version
  [ -n "${PYTHON:-}" ] && candidates=("$PYTHON")
  for name in "${candidates[@]}"; do
    path=$(command -v "$name") || continue
    version=$(python_version "$path") || true
    if [[ "$version" =~ ^3\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= MIN_PYTHON_MINOR)); then
      echo "$path"
      return 0
    fi
    found+=("$name ${version:-(does not run)}")
  done
  {
    echo "setup: Sightline needs Python >= 3.$MIN_PYTHON_MINOR; found: ${found[*]:-no python3 on PATH}."
    if [ -n "${PYTHON:-}" ]; then
      echo "  PYTHON=$PYTHON is set: point it at a Python >= 3.$MIN_PYTHON_MINOR or unset it."
    fi
    echo "  Debian 12 and later: apt-get install python3 python3-venv (3.11 / 3.13)."
    echo "  Older systems: install Python 3.11 (e.g. pyenv) and run: PYTHON=/path/to/python3.11 make setup"
  } >&2
  return 1
}

# The major version of `java` on PATH (8 for "1.8.0_292", 17 for "17.0.12"); nothing without one.
java_major() {
  local line
  command -v java >/dev/null || return 1
  line=$(java -version 2>&1) || return 1
  [[ "$line" =~ version\ \"([0-9]+)(\.([0-9]+))? ]] || return 1
  if [ "${BASH_REMATCH[1]}" = 1 ]; then echo "${BASH_REMATCH[3]}"; else echo "${BASH_REMATCH[1]}"; fi
}

java_ok() {
  local major
  major=$(java_major) && ((major >= MIN_JAVA))
}

# Debian packages for what is missing beyond the fixed list: a Java runtime, Maven (it resolves
# the Kafka broker jars), and the venv module of a Debian Python ($1, the chosen interpreter).
extra_apt_packages() {
  local python=$1 version
  java_ok || echo default-jre-headless
  command -v mvn >/dev/null || echo maven
  if [[ "$python" == /usr/bin/python3* ]] && version=$(python_version "$python") \
    && ! "$python" -c 'import ensurepip' 2>/dev/null; then
    echo "python$version-venv"
  fi
}

# Whether Debian's python3 package (the apt candidate) is >= 3.11: then a machine without any
# Python (a minimal Debian 12+) gets it from apt instead of an error. Needs `apt-get update` first.
apt_python_ok() {
  local policy
  policy=$(apt-cache policy python3 2>/dev/null) || return 1
  [[ "$policy" =~ Candidate:\ 3\.([0-9]+)\. ]] && ((BASH_REMATCH[1] >= MIN_PYTHON_MINOR))
}
