"""Champion/challenger end to end with real training (short recipe, small subsets, same recipe for both):
correct extra labels pass the gate and are promoted; sentiment labels shuffled to a wrong class are rejected and
the rejected challenger is kept; nothing new exits 3."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.model.datasets import read_split
from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.model.registry import Registry
from finsentry.model.retrain import build_artifact
from finsentry.model.train_config import TrainConfig

pytestmark = [pytest.mark.train, pytest.mark.slow]
runner = CliRunner()

SHORT = TrainConfig(epochs=1, batch_size=16, max_length=48, subset=160, dev_subset=48, threads=2, seed=13)
"""The short recipe of champion and challengers: one epoch over 160 examples per base source + the labels.
With so little training, a challenger needs clearly more data to be clearly better: 480 topic and 240 sentiment
labels (the gate compares on fixed random samples of 300 rows per frozen set)."""

ENV = {
    "FINSENTRY_MODEL__RETRAIN__EVAL_LIMIT": "300",
    "FINSENTRY_MODEL__RETRAIN__BOOTSTRAP_RESAMPLES": "400",
    "FINSENTRY_MODEL__RETRAIN__EXPORT_GPU_VARIANTS": "false",
    "FINSENTRY_MODEL__RETRAIN__EXPORT_MAX_DISAGREEMENT": "0.1",  # barely trained models flip near-ties
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A registry whose v0001 is a champion trained with :data:`SHORT` on the base data only."""
    root = tmp_path_factory.mktemp("retrain")
    champion = root / "champion"
    build_artifact(
        SHORT,
        root / "runs" / "champion",
        champion,
        "short-v0001",
        gpu_variants=False,
        max_disagreement=0.1,
        parity_limit=300,
    )
    (champion / "card.json").write_text(json.dumps({"training_config": SHORT.model_dump()}))  # the recipe to reuse
    registry = Registry(root / "registry")
    registry.promote(registry.add(champion, status="imported").name)
    return root


@pytest.fixture
def env(workspace, monkeypatch) -> Path:
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(workspace / "registry"))
    monkeypatch.setenv("FINSENTRY_MODEL__RETRAIN__LABELS_DIR", str(workspace / "labels"))
    monkeypatch.setenv("FINSENTRY_MODEL__RETRAIN__WORK_DIR", str(workspace / "runs"))
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return workspace


def future_labels(task: str, rows: slice, wrong: bool = False) -> pd.DataFrame:
    """Rows of the reserve the models never trained on, as a label file; ``wrong`` rotates sentiment one class."""
    frame = read_split(f"{task}_future_labels").iloc[rows]
    names = TOPIC_LABELS if task == "topic" else SENTIMENT_LABELS
    ids = (frame["label"] + 1) % 3 if wrong else frame["label"]
    return pd.DataFrame({"text": frame["text"], task: [names[i] for i in ids], "labeler": "analyst-1"})


def test_correct_labels_pass_then_nothing_new_then_wrong_labels_are_rejected(env):
    registry = Registry(env / "registry")
    labels = pd.concat([future_labels("topic", slice(0, 480)), future_labels("sentiment", slice(0, 240))])
    labels.to_csv(env / "good.csv", index=False)
    assert runner.invoke(app, ["labels", "import", str(env / "good.csv")]).exit_code == 0

    result = runner.invoke(app, ["model", "retrain", "--no-publish", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "challenger v0002: promote (promoted)" in result.output
    assert registry.current().name == "v0002" and registry.version("v0002").status == "passed"
    card = json.loads((env / "registry" / "v0002" / "card.json").read_text())
    gate = card["gate"]
    assert gate["decision"] == "promote" and gate["reasons"] == []
    assert [r["set"] for r in gate["frozen"]] == ["topic_valid", "fpb_test", "sentiment_valid"]
    assert all(r["passed"] and r["n"] == 300 for r in gate["frozen"])
    held = gate["new_label_slice"]
    assert held["delta"] >= 0 and sum(t["n"] for t in held["tasks"].values()) == card["retrain"]["items_holdout"]
    assert 100 <= card["retrain"]["items_holdout"] <= 190  # ~20% of 720 items, fixed by id hash
    assert card["training_config"] == SHORT.model_dump()  # the champion's recipe and seed
    assert "## Quality gate (champion/challenger)" in (env / "registry" / "v0002" / "card.md").read_text()
    # served as static INT8 with temperatures fitted on dev, like the shipped model (batch-independent)
    quantization = card["quantization"]
    served = json.loads((env / "registry" / "v0002" / "labels.json").read_text())
    assert quantization["quantization"] == served["quantization"] == "static", (quantization, served)
    assert served["int8_recipe"] == quantization["int8_recipe"] == "static_ffn_down_fp32", quantization
    assert set(served["temperature"]) == {"sentiment", "topic"}, served

    result = runner.invoke(app, ["model", "retrain", "--no-publish", "--no-progress"])
    assert result.exit_code == 3 and "nothing new to train on" in result.output

    bad = future_labels("sentiment", slice(240, 840), wrong=True)
    bad.assign(labeler="analyst-2").to_csv(env / "wrong.csv", index=False)
    assert runner.invoke(app, ["labels", "import", str(env / "wrong.csv")]).exit_code == 0
    result = runner.invoke(app, ["model", "retrain", "--no-publish", "--no-progress"])
    assert result.exit_code == 4, result.output
    assert "challenger v0003: reject" in result.output
    gate = json.loads((env / "registry" / "v0003" / "card.json").read_text())["gate"]
    failed = {r["set"] for r in gate["frozen"] if not r["passed"]}
    assert failed & {"fpb_test", "sentiment_valid"}  # rejected for the sentiment task
    sentiment = {r["set"]: r for r in gate["frozen"]}["sentiment_valid"]
    assert sentiment["delta"] < -sentiment["tolerance"]
    assert registry.current().name == "v0002"  # not promoted
    rejected = registry.version("v0003")
    assert rejected.status == "rejected" and (rejected.path / "model.onnx").is_file()  # kept for inspection
