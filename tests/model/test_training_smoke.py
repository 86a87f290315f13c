"""A training smoke run (tens of steps on a subset) through the CLI, and the config validation messages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.common.paths import REPO_ROOT

pytestmark = [pytest.mark.train, pytest.mark.slow]
runner = CliRunner()


def test_smoke_training_run_writes_checkpoint_log_and_dev_scores(tmp_path):
    result = runner.invoke(
        app, ["model", "train", "--config", str(REPO_ROOT / "model/configs/smoke.yaml"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["epoch"] == 1
    assert set(best["dev"]) == {"fpb_dev", "topic_dev", "sentiment_dev", "dev_score"}
    assert all(0.0 <= v <= 1.0 for v in best["dev"].values())
    assert (tmp_path / "best.pt").stat().st_size > 50_000_000  # the full MiniLM weights
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["epoch_end"] == 1 and log[-1]["step"] == 30


def test_same_seed_gives_the_same_run(tmp_path):
    from finsentry.model.train import train
    from finsentry.model.train_config import TrainConfig

    cfg = TrainConfig(epochs=1, batch_size=8, max_steps=6, subset=48, dev_subset=16, max_length=32)
    a = train(cfg, tmp_path / "a", progress=False, save_checkpoints=False)
    b = train(cfg, tmp_path / "b", progress=False, save_checkpoints=False)
    assert a["dev"] == b["dev"]


def test_bad_training_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: -1\nepochs: 3\nwarmup: 0.1\n")
    result = runner.invoke(app, ["model", "train", "--config", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "lr" in result.output and "warmup" in result.output
