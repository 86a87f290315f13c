"""Shared helpers of the monitor tests that feed ``sentiment.keyed`` records to an aggregator service."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from finsentry.ingest.topics import SENTIMENT_KEYED

T0 = datetime(2015, 8, 24, 13, 0, tzinfo=UTC)


def keyed_value(key: str, id_: str = "n1", minute: float = 0.0) -> dict:
    """A valid ``sentiment.keyed`` value (neutral, score 0) for ``key``, published ``minute`` minutes after
    :data:`T0`."""
    return {
        "id": id_,
        "key": key,
        "published_at": (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
        "sentiment": "neutral",
        "sentiment_score": 0.0,
    }


def keyed_record(offset: int, value: dict, partition: int = 0) -> SimpleNamespace:
    """A consumer record of ``value`` on ``sentiment.keyed`` (message key = the value's key), as kafka-python gives."""
    return SimpleNamespace(
        topic=SENTIMENT_KEYED,
        partition=partition,
        offset=offset,
        key=value["key"].encode(),
        value=json.dumps(value).encode(),
    )
