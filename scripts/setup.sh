#!/usr/bin/env bash
# Set up finsentry in ./.venv from scratch: Debian packages (when root), torch (CPU build, train extra only),
# the package and its extras. Usage: scripts/setup.sh [runtime|dev]   (default: runtime)
#   runtime: what `finsentry run` needs (onnxruntime, no torch)
#   dev:     everything the tests need (train extra with torch 2.13.0 CPU, dev tools, prometheus, alertmanager, chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"
py="${PYTHON:-python3}"

if [ "$profile" = "dev" ] && [ -f .ci/apt-packages.txt ]; then
  missing=()
  for pkg in $(grep -v '^#' .ci/apt-packages.txt); do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
      echo "missing Debian packages: ${missing[*]} — run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
fi

[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$profile" = "dev" ]; then
  # torch first: the CPU build on local disk. A plain `torch` requirement would pull a multi-GB CUDA build.
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e '.[cpu,train,dev]'
else
  .venv/bin/pip install -q -e '.[cpu]'
fi
echo "finsentry set up in .venv ($profile)"
