"""Labels consumer on a real broker: good labels stored, bad ones dead-lettered as invalid_label, offsets committed."""

from __future__ import annotations

import json
import threading

import pytest
from ingest_testkit import wait_for
from retrain_testkit import Reader, produce
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.ingest.labels_consumer import LabelsConsumer, decode_label
from finsentry.ingest.topics import NEWS_DLQ, NEWS_LABELS
from finsentry.model.label_store import InvalidLabel, LabelStore

pytestmark = pytest.mark.broker

GOOD = {"text": "Profit warning sinks shares", "labeler": "ann", "labeled_at": "2026-11-02T09:00:00Z"}


def test_decode_label_reasons():
    assert decode_label(json.dumps(GOOD | {"id": "1", "sentiment": "negative"}).encode()).sentiment == "negative"
    cases = [(b"\xff\xfe", "invalid_utf8"), (b"{nope", "invalid_json"), (b'{"id": "1"}', "invalid_label")]
    for value, reason in cases:
        with pytest.raises(InvalidLabel) as err:
            decode_label(value)
        assert err.value.reason.value == reason


def test_decode_label_reads_json_strictly_as_every_other_record():
    """A label value too deeply nested escaped ``json.loads`` as RecursionError (the consumer's batch failed and
    was retried for ever); NaN, a repeated key and a non-object value were read as JSON."""
    cases = [
        (b"[" * 100_000, "invalid_json"),
        (json.dumps(GOOD | {"id": "1"}).replace('"ann"', "NaN").encode(), "invalid_json"),
        (b'{"id": "1", "id": "2"}', "duplicate_field"),
        (b"[1]", "not_an_object"),
        (b"", "empty_message"),
    ]
    got = []
    for value, _reason in cases:
        with pytest.raises(InvalidLabel) as err:
            decode_label(value)
        got.append(err.value.reason.value)
    assert got == [reason for _v, reason in cases]


def test_consumer_stores_good_labels_and_dead_letters_bad_ones(broker, tmp_path):
    kafka = broker.kafka_settings(session_timeout_ms=2000, heartbeat_interval_ms=300)
    values = [
        json.dumps(GOOD | {"id": "L1", "sentiment": "negative"}).encode(),
        json.dumps(GOOD | {"id": "L2", "topic": "Crypto"}).encode(),  # unknown topic
        b"not json at all",
        json.dumps(GOOD | {"id": "L3", "topic": "earnings", "sentiment": "Positive"}).encode(),
        json.dumps(GOOD | {"id": "L4"}).encode(),  # no label
        json.dumps(GOOD | {"id": "L5", "sentiment": "neutral", "labeled_at": "2026-11-02 09:00"}).encode(),
    ]
    produce(kafka, NEWS_LABELS, values, keys=[f"k{i}".encode() for i in range(len(values))])
    store = LabelStore(tmp_path / "labels")
    consumer = LabelsConsumer(store, kafka, group_id="labels-test", poll_ms=200)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop, 60))
    thread.start()
    try:
        wait_for(lambda: consumer.stats.consumed >= len(values), 40, "the labels to be consumed")
    finally:
        stop.set()
        thread.join(30)
    raw = store.read()
    assert list(raw["id"]) == ["L1", "L3"]
    assert list(raw["source"]) == ["news.labels:0:0", "news.labels:0:3"]
    assert store.resolved().loc["L3", "topic"] == "Earnings"
    assert consumer.stats.dead_letters == {"invalid_label": 3, "invalid_json": 1}

    reader = Reader(kafka, NEWS_DLQ)
    try:
        reader.until(lambda r: len(r.records[NEWS_DLQ]) >= 4, 30, "4 dead letters")
        dead = {r.key: (dict((k, v.decode()) for k, v in r.headers), r.value) for r in reader.records[NEWS_DLQ]}
    finally:
        reader.close()
    headers, value = dead[b"k1"]
    assert headers["reason"] == "invalid_label" and headers["source_topic"] == NEWS_LABELS
    assert "topic: 'Crypto' is not one of the 20 topic names" in headers["message"]
    assert value == values[1]  # the original bytes, nothing lost
    assert dead[b"k2"][0]["reason"] == "invalid_json"
    assert "labeled_at" in dead[b"k5"][0]["message"]

    # offsets were committed: a second run of the group reads nothing again
    again = LabelsConsumer(store, kafka, group_id="labels-test", poll_ms=200)
    assert again.run(max_seconds=5).consumed == 0
    assert len(store.read()) == 2


def test_cli_consume_runs_for_a_bounded_time(broker, tmp_path, monkeypatch):
    kafka = broker.kafka_settings()
    produce(kafka, NEWS_LABELS, [json.dumps(GOOD | {"id": "C1", "topic": "Dividend"}).encode()])
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    monkeypatch.setenv("FINSENTRY_MODEL__RETRAIN__LABELS_DIR", str(tmp_path / "labels"))
    result = CliRunner().invoke(app, ["labels", "consume", "--group-id", "cli-labels", "--max-seconds", "8"])
    assert result.exit_code == 0, result.output
    assert "C1" in set(LabelStore(tmp_path / "labels").read()["id"])
