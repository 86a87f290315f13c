"""The artifact build steps of model/build.py: which texts the export checks parity on and calibrates with, and
which card fields a rewritten card keeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finsentry.model import build
from finsentry.model.datasets import load_examples


def test_export_checks_parity_on_fpb_test_and_calibrates_on_dev_rows(monkeypatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def fake_export(checkpoint, out_dir, model_version, **kwargs):
        calls.append({"args": (checkpoint, out_dir, model_version), **kwargs})
        return {"int8_disagreement": 0.0, "files": []}

    monkeypatch.setattr("finsentry.model.export.export_checkpoint", fake_export)
    assert build.export_artifact(tmp_path / "best.pt", tmp_path / "out", "v9") == {
        "int8_disagreement": 0.0,
        "files": [],
    }
    build.export_artifact(
        tmp_path / "best.pt", tmp_path / "o2", "v9", gpu_variants=False, max_disagreement=0.1, parity_limit=300
    )
    full, smoke = calls
    assert full["args"] == (tmp_path / "best.pt", tmp_path / "out", "v9")
    assert full["parity_texts"] == [e.text for e in load_examples("fpb_test")] and len(full["parity_texts"]) == 968
    dev = [e.text for e in load_examples("fpb_dev")[:128] + load_examples("topic_dev")[:128]]
    assert full["calibration_texts"] == dev and len(dev) == 256
    assert (full["gpu_variants"], full["max_disagreement"]) == (True, 0.01)
    assert len(smoke["parity_texts"]) == 300 and smoke["calibration_texts"] == dev
    assert (smoke["gpu_variants"], smoke["max_disagreement"]) == (False, 0.1)


def test_card_fields_keeps_the_provenance_in_order(tmp_path: Path) -> None:
    assert build.card_fields(tmp_path) == {}
    card = {"tuning": "t", "headline": {"a": 1}, "rebuild": "r", "chosen": "c", "model_version": "v1"}
    (tmp_path / "card.json").write_text(json.dumps(card))
    kept = build.card_fields(tmp_path)
    assert list(kept.items()) == [("chosen", "c"), ("rebuild", "r"), ("tuning", "t")]
    assert build.card_fields(tmp_path, ("model_version", "nope")) == {"model_version": "v1"}
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ValueError):
        build.card_fields(tmp_path)


def test_a_requantized_card_names_its_source_and_keeps_its_recipe(monkeypatch, tmp_path: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    recipe = {"seed": 13, "epochs": 3}
    card = {"model_version": "m-v1", "training_config": recipe, "chosen": "c", "rebuild": "old", "headline": {}}
    (source / "card.json").write_text(json.dumps(card))
    written: list[tuple[Path, dict[str, Any], dict[str, Any]]] = []

    def fake_write(folder, extra, **kwargs):
        written.append((folder, extra, kwargs))
        return {"headline": {"fpb_test_macro_f1": 0.8}}

    monkeypatch.setattr(build, "write_evaluated_card", fake_write)
    result = {"int8_recipe": "static_ffn_fp32", "disagreement": 0.004}
    report = build.write_requantized_card(source, out, result, "finsentry model requantize ...")
    assert report == {"headline": {"fpb_test_macro_f1": 0.8}}
    [(folder, extra, kwargs)] = written
    assert folder == out and kwargs == {"plots": out / "eval"}
    assert list(extra.items()) == [
        ("training_config", recipe),
        ("chosen", "c"),
        ("requantized_from", {"model_version": "m-v1", "int8_recipe": "static_ffn_fp32", "disagreement": 0.004}),
        ("rebuild", "finsentry model requantize ..."),
    ]


def test_eval_write_card_keeps_how_the_artifact_was_made(tmp_path: Path) -> None:
    """``finsentry model eval --write-card`` rewrites the figures and keeps the card's provenance fields."""
    import shutil

    from typer.testing import CliRunner

    from finsentry.cli import app
    from finsentry.common.paths import SHIPPED_MODEL_DIR

    folder = tmp_path / "current"
    shutil.copytree(SHIPPED_MODEL_DIR, folder, ignore=shutil.ignore_patterns("eval"))
    before = json.loads((folder / "card.json").read_text())
    res = CliRunner().invoke(app, ["model", "eval", "--model", str(folder), "--write-card", "--limit", "16"])
    assert res.exit_code == 0, res.output
    after = json.loads((folder / "card.json").read_text())
    for key in ("chosen", "rebuild", "training_config", "training_dev", "requantized_from"):
        assert after[key] == before[key]
    assert after["model_version"] == before["model_version"]
    assert {s: v["n"] for s, v in after["evaluation"].items()} == dict.fromkeys(after["evaluation"], 16)
