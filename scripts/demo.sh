#!/usr/bin/env bash
# One command on a fresh clone: set up (runtime only, no torch) and run the whole monitor on the embedded
# default (local broker, shipped model, a real replay: CNBC headlines around the 2023 SVB collapse); open the printed
# dashboard URL (http://127.0.0.1:8600/), Ctrl-C stops everything. When Debian's prometheus and
# prometheus-alertmanager are installed, the real alert path runs too (--with-prometheus). Extra arguments go
# to `finsentry run` (e.g. --speed 4000, --demo stocknet, --http-port 0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
args=("$@")
if command -v prometheus >/dev/null && { command -v prometheus-alertmanager || command -v alertmanager; } >/dev/null \
   && [[ " ${args[*]-} " != *" --with-prometheus "* ]]; then
  args+=(--with-prometheus)
fi
exec .venv/bin/finsentry run "${args[@]}"
