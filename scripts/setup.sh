#!/usr/bin/env bash
# Set up everything the monitor needs on a fresh Debian machine with Python 3.11:
# system packages (as root, only those missing), a virtualenv in .venv with the
# project and its test tools, and the embedded speech model joined into the cache.
# Safe to run again; it only does what is not done yet.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=$(grep -v '^\s*#' scripts/apt-packages.txt | xargs || true)
missing=""
for pkg in $apt_packages; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: warning: missing system packages (need root/apt to install):$missing" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
log=.venv/setup.log
if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
       .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,cluster]'; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: pip install failed (log above)" >&2
  exit 1
fi
.venv/bin/monitor model >/dev/null
echo "setup: ready (.venv/bin/monitor)" >&2
