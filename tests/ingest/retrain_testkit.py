"""Helpers of the retraining tests: model variants with known weight changes, topic readers (waits: ingest_testkit)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.settings import KafkaSettings

SENTIMENT_SHIFT = np.array([-2.0, 0.0, 2.0], dtype=np.float32)
"""Added to the sentiment head's bias of a shifted variant: log(P(pos)/P(neg)) grows by exactly 4."""


def variant_artifact(src: Path, dst: Path, model_version: str, shift: bool, labels_patch: dict | None = None) -> Path:
    """Copy the CPU model of ``src`` into ``dst`` under ``model_version``; ``shift`` adds :data:`SENTIMENT_SHIFT`
    to the sentiment head's bias (a genuinely different model); ``labels_patch`` edits labels.json. The card
    holds the 32 reference logits of the new model and the sha256 of its files, as ``finsentry model eval
    --write-card`` would write."""
    import onnx
    from onnx import numpy_helper

    from finsentry.model.evaluate import reference_logits
    from finsentry.model.verify import artifact_hashes

    dst.mkdir(parents=True)
    shutil.copy2(src / "tokenizer.json", dst / "tokenizer.json")
    model = onnx.load(str(src / "model.onnx"))
    if shift:
        (bias,) = [t for t in model.graph.initializer if t.name == "sentiment_head.bias"]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + SENTIMENT_SHIFT, bias.name))
    onnx.save(model, str(dst / "model.onnx"))
    labels = json.loads((src / "labels.json").read_text()) | {"model_version": model_version}
    (dst / "labels.json").write_text(json.dumps(labels))
    card = {"model_version": model_version, "reference_logits": reference_logits(dst)}
    if labels_patch:
        (dst / "labels.json").write_text(json.dumps(labels | labels_patch))
    (dst / "card.json").write_text(json.dumps(card | {"artifact_files": artifact_hashes(dst)}))
    return dst


class Reader:
    """Reads topics from the beginning without a consumer group; ``records[topic]`` in read order."""

    def __init__(self, kafka: KafkaSettings, *topics: str) -> None:
        self.consumer = make_consumer(kafka, None, *topics)
        self.records: dict[str, list] = {t: [] for t in topics}

    def poll(self) -> None:
        for tp, recs in self.consumer.poll(timeout_ms=200).items():
            self.records[tp.topic].extend(recs)

    def until(self, done: Callable[[Reader], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                counts = {t: len(r) for t, r in self.records.items()}
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; have {counts}")
            self.poll()

    def values(self, topic: str) -> list[dict]:
        return [json.loads(r.value) for r in self.records[topic]]

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def produce(kafka: KafkaSettings, topic: str, values: list[bytes], keys: list[bytes] | None = None) -> None:
    """Send values to ``topic`` and wait for every acknowledgement."""
    producer = make_producer(kafka)
    try:
        futures = [producer.send(topic, key=(keys[i] if keys else None), value=v) for i, v in enumerate(values)]
        producer.flush(30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=5)
