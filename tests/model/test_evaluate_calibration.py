"""Calibration in evaluation and the card: ECE before / after labels.json's temperatures, and the fit on dev."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import finsentry.model.evaluate as evaluate_module
from finsentry.model.calibration import TEMPERATURE_BOUNDS, expected_calibration_error, softmax
from finsentry.model.datasets import DEV_SETS, EVAL_SETS, load_eval_set
from finsentry.model.evaluate import evaluate, fit_temperatures, render_card_md, write_card
from finsentry.model.scorer import Scorer

TEMPERATURE = {"sentiment": 2.0, "topic": 1.5}
LIMIT = 40


def _with_temperature(model_dir: Path, folder: Path, temperature: dict[str, float] | None) -> Path:
    """The shipped model in ``folder`` (model.onnx linked, not copied) with ``temperature`` in its labels.json,
    or without the key when None."""
    (folder / "model.onnx").symlink_to(model_dir / "model.onnx")
    shutil.copyfile(model_dir / "tokenizer.json", folder / "tokenizer.json")
    labels = json.loads((model_dir / "labels.json").read_text())
    labels.pop("temperature", None)
    if temperature is not None:
        labels["temperature"] = temperature
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


@pytest.fixture(scope="module")
def calibrated(model_dir, tmp_path_factory) -> Path:
    """The shipped model with ``TEMPERATURE`` in its labels.json."""
    return _with_temperature(model_dir, tmp_path_factory.mktemp("calibrated"), TEMPERATURE)


@pytest.fixture(scope="module")
def reports(model_dir, calibrated, tmp_path_factory) -> tuple[dict, dict]:
    """Reports of the shipped model without any temperature (T = 1) and with ``TEMPERATURE``."""
    plain = _with_temperature(model_dir, tmp_path_factory.mktemp("plain"), None)
    return evaluate(plain, limit=LIMIT), evaluate(calibrated, limit=LIMIT)


def test_each_set_reports_ece_before_and_after_the_temperatures_of_labels_json(reports, calibrated):
    shipped, scaled = reports
    assert shipped["temperature"] == {"topic": 1.0, "sentiment": 1.0} and scaled["temperature"] == TEMPERATURE
    for name in EVAL_SETS:
        plain = shipped["sets"][name]["variants"]["onnx_int8"]
        hot = scaled["sets"][name]["variants"]["onnx_int8"]
        assert plain["ece"] == plain["ece_raw"], name  # no temperature: after = before
        assert hot["ece_raw"] == pytest.approx(plain["ece_raw"], abs=1e-12), name  # same raw logits
        assert hot["accuracy"] == plain["accuracy"], name  # temperature never moves the argmax
        assert hot["ece"] != hot["ece_raw"] and 0.0 <= hot["ece"] <= 1.0, (name, hot["ece"], hot["ece_raw"])
    # "after" is the ECE of softmax(logits / T) on the set, recomputed here from the scorer's own logits
    examples = load_eval_set("fpb_test", LIMIT)
    texts = sorted({e.text for name in EVAL_SETS for e in load_eval_set(name, LIMIT)})  # as evaluate batches them
    _, sent, _ = Scorer.load(calibrated, verify=False).logits(texts)
    rows = [texts.index(e.text) for e in examples]
    gold = np.array([e.label for e in examples])
    want = expected_calibration_error(softmax(sent[rows], TEMPERATURE["sentiment"]), gold)
    assert scaled["sets"]["fpb_test"]["variants"]["onnx_int8"]["ece"] == pytest.approx(want, abs=1e-12)


def test_card_md_shows_the_calibration_table_and_old_cards_render_without_it(reports):
    _, scaled = reports
    card = {
        "model_version": scaled["model_version"],
        "architecture": "test",
        "evaluation": scaled["sets"],
        "temperature": scaled["temperature"],
        "data_files": {},
        "packages": {},
    }
    md = render_card_md(card)
    assert "## Calibration (ECE, 15 bins)" in md and "| set | before | after |" in md
    assert "sentiment 2, topic 1.5" in md
    s = scaled["sets"]["topic_valid"]["variants"]["onnx_int8"]
    assert f"| topic_valid | {s['ece_raw']:.4f} | {s['ece']:.4f} |" in md
    old = json.loads(json.dumps(card))  # a card written before calibration was reported: no ece, no temperature
    del old["temperature"]
    for entry in old["evaluation"].values():
        for summary in entry["variants"].values():
            del summary["ece"], summary["ece_raw"]
    assert "Calibration" not in render_card_md(old) and render_card_md(old).startswith("# Model card")


def test_write_card_records_the_temperatures(reports, calibrated):
    _, scaled = reports
    card = write_card(calibrated, scaled)
    assert card["temperature"] == TEMPERATURE
    assert json.loads((calibrated / "card.json").read_text())["temperature"] == TEMPERATURE
    assert "| set | before | after |" in (calibrated / "card.md").read_text()


def test_fit_temperatures_reads_only_the_dev_sets_and_ignores_the_current_temperature(
    model_dir, calibrated, monkeypatch
):
    read: list[str] = []
    real = evaluate_module.load_examples

    def spy(name, limit=None):
        read.append(name)
        return real(name, limit)

    def no_eval_sets(*args, **kwargs):
        raise AssertionError("fit_temperatures read an evaluation set")

    monkeypatch.setattr(evaluate_module, "load_examples", spy)
    monkeypatch.setattr(evaluate_module, "load_eval_set", no_eval_sets)
    fitted = fit_temperatures(calibrated, limit=LIMIT)
    assert sorted(read) == sorted(DEV_SETS)
    assert set(fitted) == {"sentiment", "topic"}
    assert all(TEMPERATURE_BOUNDS[0] < t < TEMPERATURE_BOUNDS[1] for t in fitted.values()), fitted
    assert fit_temperatures(model_dir, "onnx_int8", limit=LIMIT) == fitted  # fitted on raw logits
