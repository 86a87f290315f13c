#!/usr/bin/env bash
# Worked example of docs/retraining.md: the future_labels reserve as new labels, full recipe, gate.
set -euo pipefail
cd "$(dirname "$0")/.."
W=var/worked
export FINSENTRY_MODEL__REGISTRY_DIR=$W/registry
export FINSENTRY_MODEL__RETRAIN__LABELS_DIR=$W/labels
export FINSENTRY_MODEL__RETRAIN__WORK_DIR=runs/worked
# torch (OpenMP) threads sleep instead of spinning at barriers: on a shared, oversubscribed CPU this keeps a
# 2-thread training from wasting its time slices waiting for a descheduled sibling
export OMP_WAIT_POLICY=PASSIVE
echo "waiting for the shipped model ($(date -u +%T))"
while [ ! -f model/artifacts/current/card.json ]; do sleep 30; done
# the build writes card.json last; give a concurrent re-write a moment, then go
sleep 1
echo "shipped model ready ($(date -u +%T))"; ls -la model/artifacts/current
rm -rf $W runs/worked/v0*
mkdir -p $W
.venv/bin/python - <<'PY'
import pandas as pd
from finsentry.model.datasets import read_split
from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
t = read_split("topic_future_labels")
s = read_split("sentiment_future_labels")
rows = pd.concat([
    pd.DataFrame({"text": t.text, "topic": [TOPIC_LABELS[i] for i in t.label]}),
    pd.DataFrame({"text": s.text, "sentiment": [SENTIMENT_LABELS[i] for i in s.label]}),
])
rows.to_csv("var/worked/future_labels.csv", index=False)
print(f"{len(t)} topic + {len(s)} sentiment labels -> var/worked/future_labels.csv")
PY
.venv/bin/finsentry labels import $W/future_labels.csv --labeler future_labels-reserve --labeled-at 2026-11-29T00:00:00Z
.venv/bin/finsentry labels stats
start=$(date +%s)
set +e
/usr/bin/time -v .venv/bin/finsentry model retrain --no-publish --no-progress
rc=$?
set -e
echo "retrain exit code $rc after $(( $(date +%s) - start )) s ($(date -u +%T))"
.venv/bin/finsentry model list
.venv/bin/finsentry labels stats --json | head -5
