#!/usr/bin/env bash
# One command on a fresh clone: set up (runtime only, no torch) and run the whole monitor on the embedded
# default (local broker, shipped model, real StockNet replay of the 2015-08-24 sell-off). Extra arguments go
# to `finsentry run` (e.g. --speed 5000, --with-prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
exec .venv/bin/finsentry run "$@"
