"""Hot swap on a real broker and real ONNX sessions: a promote during a replay loses nothing and every scored message
names the model that scored it; corrupt or incompatible artifacts are refused while the old model keeps serving."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from ingest_testkit import wait_for
from prometheus_client import generate_latest
from retrain_testkit import Reader, produce, variant_artifact
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.ingest.hot_swap import HotSwapMetrics, ModelWatcher, verify_artifact
from finsentry.ingest.model_events import publish_event
from finsentry.ingest.replay import replay
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.topics import NEWS_DLQ, NEWS_SCORED
from finsentry.model.datasets import load_examples
from finsentry.model.registry import Registry
from finsentry.model.scorer import Scorer
from finsentry.settings import load_settings

pytestmark = [pytest.mark.broker, pytest.mark.train]  # train: the variants are written with the onnx package


@pytest.fixture(scope="module")
def registry(model_dir, tmp_path_factory) -> Registry:
    """v0001 = the model as is (hs-a), v0002 = sentiment bias shifted (hs-b), v0003 = v0002 with model.onnx cut in
    half (hs-c), v0004 = hs-a with a renamed topic (hs-d)."""
    root = tmp_path_factory.mktemp("hot-swap")
    reg = Registry(root / "registry")
    a = variant_artifact(model_dir, root / "a", "hs-a", shift=False)
    b = variant_artifact(model_dir, root / "b", "hs-b", shift=True)
    c = variant_artifact(model_dir, root / "c", "hs-c", shift=True)
    c_onnx = c / "model.onnx"
    c_onnx.write_bytes(c_onnx.read_bytes()[: c_onnx.stat().st_size // 2])
    topics = json.loads((a / "labels.json").read_text())["topic"]
    d = variant_artifact(model_dir, root / "d", "hs-d", shift=False, labels_patch={"topic": ["Crypto", *topics[1:]]})
    for folder in (a, b, c, d):
        reg.add(folder, status="passed")
    reg.promote("v0001")
    return reg


def start_service(broker, registry: Registry, group: str):
    settings = load_settings(
        ingest={
            "kafka": broker.kafka_settings(session_timeout_ms=2000, heartbeat_interval_ms=300).model_dump(),
            "scorer": {"group_id": group, "metrics_port": 0, "max_batch_items": 32},
        },
        model={"registry_dir": str(registry.root), "path": str(registry.root / "v0001")},
    )
    service = ScorerService.from_settings(settings.ingest, settings.model, companies=None, serve_metrics=False)
    watcher = ModelWatcher(
        service, settings.ingest.kafka, settings.model, HotSwapMetrics(service.metrics.registry), poll_ms=100
    )
    service.start_thread()
    watcher.start()
    return settings, service, watcher


def log_odds(probs) -> float:
    """log(P(pos) / P(neg)): the shifted variant moves it by exactly +4 / T (+4 in logits; T: the temperature)."""
    return math.log(probs[2]) - math.log(probs[0])


def test_verify_artifact_refusals(registry):
    a = registry.version("v0001").path
    labels = (tuple(json.loads((a / "labels.json").read_text())["topic"]), ("negative", "neutral", "positive"))
    assert verify_artifact(registry.version("v0002").path, labels) <= 1e-3
    reasons = {}
    for name in ("v0003", "v0004"):
        with pytest.raises(Exception) as err:
            verify_artifact(registry.version(name).path, labels)
        reasons[name] = err.value.reason
    assert reasons == {"v0003": "load_failed", "v0004": "label_space"}
    bad = Path(str(registry.root) + "-bad-card")
    bad.mkdir()
    for f in ("model.onnx", "tokenizer.json", "labels.json"):
        (bad / f).symlink_to(registry.version("v0002").path / f)
    other_card = json.loads((a / "card.json").read_text())
    (bad / "card.json").write_text(json.dumps(other_card))  # another model's card: its files' hashes differ
    with pytest.raises(Exception, match="labels.json is not the file its card describes") as err:
        verify_artifact(bad, labels)
    assert err.value.reason == "hash_mismatch"
    own_hashes = json.loads((registry.version("v0002").path / "card.json").read_text())["artifact_files"]
    # the right hashes, another model's reference logits
    (bad / "card.json").write_text(json.dumps(other_card | {"artifact_files": own_hashes}))
    with pytest.raises(Exception, match="differ from the card's reference logits") as err:
        verify_artifact(bad, labels)
    assert err.value.reason == "reference_mismatch"


@pytest.mark.slow
def test_promote_during_replay_loses_nothing_and_each_message_names_its_model(broker, registry, tmp_path, monkeypatch):
    texts = [e.text for e in load_examples("fpb_test", 400)]
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": f"hs{i}", "text": t, "published_at": f"2026-11-02T10:{i // 60:02d}:{i % 60:02d}Z"}) + "\n"
            for i, t in enumerate(texts)
        )
    )
    settings, service, watcher = start_service(broker, registry, "hot-swap-replay")
    reader = Reader(settings.ingest.kafka, NEWS_SCORED, NEWS_DLQ)
    # 25 items/s (16 s for 400): slower than the scorer, so the swap lands mid-replay whatever the scorer's speed
    # (at 100/s a scorer that keeps up had scored ~300 with hs-a by the time hs-b was loaded)
    pace = {"rate": 25, "progress": False}
    sender = threading.Thread(target=replay, args=([items], settings.ingest.kafka), kwargs=pace)
    try:
        sender.start()
        reader.until(lambda r: len(r.records[NEWS_SCORED]) >= 100, 60, "the first 100 scored items")
        monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
        monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap_servers)
        result = CliRunner().invoke(app, ["model", "promote", "v0002"])
        assert result.exit_code == 0, result.output
        assert "published promote of v0002 on models.events" in result.output
        reader.until(lambda r: len({v["id"] for v in r.values(NEWS_SCORED)}) >= len(texts), 120, "every item scored")
        sender.join(30)
    finally:
        service.stop_and_join(30)
        watcher.stop()
        reader.close()

    scored = {v["id"]: v for v in reader.values(NEWS_SCORED)}
    assert set(scored) == {f"hs{i}" for i in range(len(texts))}  # 0 lost
    assert reader.records[NEWS_DLQ] == []
    assert watcher.swapped == ["hs-b"] and watcher.refused == []

    # each partition of news.scored switches from hs-a to hs-b exactly once (the swap happens between batches)
    sequences = defaultdict(list)
    for record in reader.records[NEWS_SCORED]:
        sequences[record.partition].append(json.loads(record.value)["model_version"])
    for seq in sequences.values():
        assert seq == sorted(seq), "an hs-a message after an hs-b one in the same partition"
    versions = [v["model_version"] for v in scored.values()]
    assert versions.count("hs-a") >= 100 and versions.count("hs-b") >= 100

    # and the named model is the one that scored it: its log-odds match that model's, not the other's (4 apart)
    m = settings.model
    models = {
        v: Scorer.load(registry.root / n, max_length=m.max_length) for v, n in (("hs-a", "v0001"), ("hs-b", "v0002"))
    }
    ids = sorted(scored)
    expected = {v: s.predict([scored[i]["text"] for i in ids]) for v, s in models.items()}
    # probabilities are softmax(logits / T) (labels.json's temperature): log-odds times T are in logit units
    t = models["hs-a"].temperature["sentiment"]
    assert t == models["hs-b"].temperature["sentiment"]
    for k, item_id in enumerate(ids):
        named = scored[item_id]["model_version"]
        other = "hs-b" if named == "hs-a" else "hs-a"
        got = t * log_odds(scored[item_id]["sentiment_probs"])
        assert abs(got - t * log_odds(expected[named][k].sentiment_probs)) < 1.0
        assert abs(got - t * log_odds(expected[other][k].sentiment_probs)) > 3.0
    metrics = generate_latest(service.metrics.registry).decode()
    assert "finsentry_model_swaps_total 1.0" in metrics
    assert 'finsentry_model_info{model_version="hs-b"} 1.0' in metrics


def test_truncated_or_incompatible_artifact_is_refused_and_the_old_model_keeps_serving(broker, registry, caplog):
    registry.promote("v0001")
    settings, service, watcher = start_service(broker, registry, "hot-swap-refuse")
    reader = Reader(settings.ingest.kafka, NEWS_SCORED)
    caplog.set_level(logging.INFO, logger="finsentry.ingest.hot_swap")
    try:
        for n, name in enumerate(("v0003", "v0004"), 1):  # one at a time: of queued requests the newest wins
            publish_event(settings.ingest.kafka, registry.promote(name))
            wait_for(lambda n=n: len(watcher.refused) == n, 60, f"{name} to be refused")
        texts = [e.text for e in load_examples("fpb_dev", 40)]
        at = "2026-11-02T11:00:00Z"
        values = [json.dumps({"id": f"rf{i}", "text": t, "published_at": at}).encode() for i, t in enumerate(texts)]
        produce(settings.ingest.kafka, "news.raw", values)
        reader.until(lambda r: sum(v["id"].startswith("rf") for v in r.values(NEWS_SCORED)) >= 40, 60, "40 items")
    finally:
        service.stop_and_join(30)
        watcher.stop()
        reader.close()
    assert [reason for _, reason in watcher.refused] == ["load_failed", "label_space"]
    assert watcher.swapped == []
    assert {v["model_version"] for v in reader.values(NEWS_SCORED) if v["id"].startswith("rf")} == {"hs-a"}
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("refusing model" in m and "v0003" in m and "still serving hs-a" in m for m in refusals)
    assert any("label spaces differ" in m for m in refusals)
    metrics = generate_latest(service.metrics.registry).decode()
    assert 'finsentry_model_swap_refusals_total{reason="load_failed"} 1.0' in metrics
    assert 'finsentry_model_swap_refusals_total{reason="label_space"} 1.0' in metrics


def test_watcher_follows_the_pointer_on_start(broker, registry):
    registry.promote("v0002")  # no event read by this watcher: it starts after the promote
    settings, service, watcher = start_service(broker, registry, "hot-swap-start")
    try:
        wait_for(lambda: watcher.swapped == ["hs-b"], 60, "the pointer's model to be loaded")
        assert service.model.model_version == "hs-b"
    finally:
        service.stop_and_join(30)
        watcher.stop()


def test_an_event_naming_a_path_outside_the_registry_is_refused_and_the_old_model_keeps_serving(
    broker, registry, caplog
):
    registry.promote("v0001")
    settings, service, watcher = start_service(broker, registry, "hot-swap-paths")
    caplog.set_level(logging.INFO, logger="finsentry.ingest.hot_swap")
    forged = {
        "action": "promote",
        "version": "/etc",
        "model_version": "forged",
        "previous": "v0001",
        "path": "/etc",
        "at": "2026-11-02T12:00:00+00:00",
    }
    try:
        publish_event(settings.ingest.kafka, forged)  # a path as the version
        wait_for(lambda: len(watcher.refused) == 1, 60, "the forged version to be refused")
        publish_event(settings.ingest.kafka, forged | {"version": "v0099"})  # a version this registry lacks
        wait_for(lambda: len(watcher.refused) == 2, 60, "the unknown version to be refused")
    finally:
        service.stop_and_join(30)
        watcher.stop()
    # neither record made the watcher open /etc: the first is refused before loading, the second is looked up
    # in the registry only
    assert watcher.refused == [("'/etc'", "outside_registry"), (str(registry.root / "v0099"), "not_found")]
    assert watcher.swapped == [] and service.model.model_version == "hs-a"
    refusals = [r.getMessage() for r in caplog.records if r.name == "finsentry.ingest.hot_swap" and r.levelno >= 40]
    assert len(refusals) == 2 and all("still serving hs-a" in m for m in refusals)
    assert refusals[0].startswith("refusing model '/etc': version '/etc' is not a registry version name")
    assert refusals[1].endswith(f"{registry.root / 'v0099'} does not exist (not_found); still serving hs-a")
    metrics = generate_latest(service.metrics.registry).decode()
    assert 'finsentry_model_swap_refusals_total{reason="outside_registry"} 1.0' in metrics
    assert 'finsentry_model_swap_refusals_total{reason="not_found"} 1.0' in metrics
