"""What a retrain trains on: fixed held-out slice, no evaluation texts, recency weight, cut-off, recipe."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from finsentry.common.paths import REPO_ROOT
from finsentry.model.datasets import load_eval_set
from finsentry.model.label_store import parse_label, resolve
from finsentry.model.registry import Registry
from finsentry.model.retrain import (
    challenger_recipe,
    champion_recipe,
    evaluation_texts,
    gate_sets,
    in_holdout,
    label_counts,
    label_examples,
    labels_cutoff,
    split_labels,
)
from finsentry.model.train_config import TrainConfig

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def resolved(rows: list[dict]) -> pd.DataFrame:
    records = [parse_label({"labeler": "ann", "labeled_at": T0} | r) for r in rows]
    frame = pd.DataFrame([r.model_dump() for r in records])
    frame["labeled_at"] = pd.to_datetime(frame["labeled_at"], utc=True)
    frame["ingested_at"] = pd.Timestamp(T0)
    frame["source"] = "test"
    return resolve(frame)


def test_holdout_slice_is_fixed_by_id_and_about_the_percentage():
    ids = [f"item-{i}" for i in range(5000)]
    first = [i for i in ids if in_holdout(i, 20)]
    assert first == [i for i in ids if in_holdout(i, 20)]  # same ids every time
    assert 0.18 < len(first) / len(ids) < 0.22
    assert set(first) <= {i for i in ids if in_holdout(i, 30)}  # a larger slice contains the smaller one


def test_split_drops_evaluation_texts_and_holds_out_by_id():
    leaked = load_eval_set("sentiment_valid", 1)[0].text
    rows = [{"id": f"n{i}", "text": f"Company {i} raises its dividend", "sentiment": "positive"} for i in range(200)]
    rows.append({"id": "leak", "text": "  " + leaked.lower() + "  https://t.co/abc", "sentiment": "negative"})
    split = split_labels(resolved(rows), 20, evaluation_texts())
    assert split.dropped_overlap == 1 and "leak" not in split.train.index and "leak" not in split.holdout.index
    assert set(split.holdout.index) == {f"n{i}" for i in range(200) if in_holdout(f"n{i}", 20)}
    assert len(split.train) + len(split.holdout) == 200


def test_examples_one_per_labelled_task_and_recent_copies():
    frame = resolved(
        [
            {"id": "a", "text": "Fed holds rates", "topic": "Fed | Central Banks", "sentiment": "neutral"},
            {"id": "b", "text": "Shares sink", "sentiment": "negative", "labeled_at": T0 + timedelta(days=10)},
        ]
    )
    plain = label_examples(frame)
    assert sorted((e.text, e.task, e.label) for e in plain) == [
        ("Fed holds rates", "sentiment", 1),
        ("Fed holds rates", "topic", 1),
        ("Shares sink", "sentiment", 0),
    ]
    weighted = label_examples(frame, recent_days=3, recent_copies=3)  # only b is within 3 days of the newest
    assert sum(e.text == "Shares sink" for e in weighted) == 3
    assert sum(e.text == "Fed holds rates" for e in weighted) == 2
    counts = label_counts(weighted)
    assert counts["sentiment"] == {"negative": 3, "neutral": 1, "positive": 0}
    assert counts["topic"]["Fed | Central Banks"] == 1 and sum(counts["topic"].values()) == 1


def test_cutoff_counts_only_decided_versions(tmp_path):
    reg = Registry(tmp_path)
    for status, until in (("passed", "2026-11-01T00:00:00+00:00"), ("failed", "2026-11-05T00:00:00+00:00")):
        path = reg.claim_version()
        (path / "labels.json").write_text("{}")
        reg.set_status(path.name, status, labels_ingested_until=until)
    assert labels_cutoff(reg) == datetime(2026, 11, 1, tzinfo=UTC)
    assert labels_cutoff(Registry(tmp_path / "empty")) is None


def test_recipe_is_the_champions_own_else_the_file(tmp_path):
    reg = Registry(tmp_path)
    path = reg.claim_version()
    reg.set_status(path.name, "imported")
    shipped = REPO_ROOT / "model" / "configs" / "shipped.yaml"
    assert champion_recipe(reg.version(path.name), shipped) == TrainConfig.from_yaml(shipped)
    short = TrainConfig(epochs=1, subset=64, seed=5)
    (path / "card.json").write_text(json.dumps({"training_config": short.model_dump()}))
    assert champion_recipe(reg.version(path.name), shipped) == short


def test_the_recipe_setting_wins_over_the_champions_own(tmp_path):
    """model.retrain.recipe was only the fallback for a champion without a card recipe, which every built model
    has: setting it to model/configs/tuned/trial-13.yaml trained the shipped recipe again."""
    reg = Registry(tmp_path)
    path = reg.claim_version()
    reg.set_status(path.name, "imported")
    short = TrainConfig(epochs=1, subset=64, seed=5)
    (path / "card.json").write_text(json.dumps({"training_config": short.model_dump()}))
    trial = REPO_ROOT / "model" / "configs" / "tuned" / "trial-13.yaml"
    assert challenger_recipe(reg.version(path.name), trial) == TrainConfig.from_yaml(trial)
    assert TrainConfig.from_yaml(trial).max_length == 96 and TrainConfig.from_yaml(trial).seed == 13
    assert challenger_recipe(reg.version(path.name), None) == short


def test_gate_samples_are_fixed_and_cover_the_label_space():
    full = gate_sets()
    assert {name: len(v) for name, v in full.items()} == {
        "topic_valid": len(load_eval_set("topic_valid")),
        "fpb_test": len(load_eval_set("fpb_test")),
        "sentiment_valid": len(load_eval_set("sentiment_valid")),
    }
    sample = gate_sets(300)
    assert sample == gate_sets(300) and all(len(v) == 300 for v in sample.values())
    assert len({e.label for e in sample["topic_valid"]}) >= 18  # the file's first 300 rows hold 3 topics
    assert len({e.label for e in load_eval_set("topic_valid", 300)}) == 3


def test_static_int8_in_place_puts_the_dynamic_export_back_when_no_static_recipe_passes(tmp_path, monkeypatch):
    """Pure logic of the fallback (requantize itself is exercised by test_retrain_training): requantize writes into
    the folder before its gate fails, so the dynamic export must be restored file for file."""
    from finsentry.model import requantize
    from finsentry.model.export import ExportParityError
    from finsentry.model.retrain import static_int8_in_place

    folder = tmp_path / "v0002"
    folder.mkdir()
    original = {"model.onnx": b"dynamic int8", "labels.json": b'{"quantization": "dynamic"}', "tokenizer.json": b"{}"}
    for name, data in original.items():
        (folder / name).write_bytes(data)

    def half_written(source, out, version, max_disagreement):
        (out / "model.onnx").write_bytes(b"static, failed its gate")
        raise ExportParityError("no static INT8 recipe within 1% of FP32 on the dev parity rows: {...}")

    monkeypatch.setattr(requantize, "requantize_static", half_written)
    result = static_int8_in_place(folder, tmp_path / "run", "minilm-mt-v0002", 0.01)
    assert result == {
        "quantization": "dynamic",
        "why": "static INT8: no static INT8 recipe within 1% of FP32 on the dev parity rows: {...}",
    }
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == original
