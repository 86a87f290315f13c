"""Shared test data of the ingest tests: the catalogue of malformed ``news.raw`` values and real StockNet rows."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from finsentry.common.paths import DATA_DIR
from finsentry.ingest.dlq import DlqReason as R
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.settings import IngestSettings, KafkaSettings
from finsentry.ingest.topics import NEWS_RAW, NEWS_SCORED

STOCKNET_MONTHLY = DATA_DIR / "stocknet_tweets" / "monthly"
T = "2014-01-02T15:04:05Z"


def ahead(seconds: float) -> str:
    """ISO-8601 UTC time ``seconds`` after the wall clock now (for future-dated items)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def obj(**fields) -> bytes:
    """A JSON object with valid defaults (id, text, published_at) overridden by ``fields`` (None = drop)."""
    base = {"id": "m1", "text": "Apple beats estimates", "published_at": T}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()


_DROP = object()

MALFORMED: list[tuple[str, bytes | None, R]] = [
    ("invalid utf-8 byte", b'{"id": "m1", "text": "caf\xe9", "published_at": "2014-01-02T15:04:05Z"}', R.INVALID_UTF8),
    ("truncated utf-8 sequence", obj()[:-2] + b"\xe2\x82", R.INVALID_UTF8),
    ("utf-16 encoded", obj().decode().encode("utf-16"), R.INVALID_UTF8),
    ("empty value", b"", R.EMPTY_MESSAGE),
    ("null value (tombstone)", None, R.EMPTY_MESSAGE),
    ("whitespace value", b"   \n", R.INVALID_JSON),
    ("truncated json", obj()[:-5], R.INVALID_JSON),
    ("trailing garbage", obj() + b" {}", R.INVALID_JSON),
    ("single-quoted json", b"{'id': 'm1', 'text': 'hi', 'published_at': '2014-01-02T15:04:05Z'}", R.INVALID_JSON),
    ("NaN constant", b'{"id": "m1", "text": "hi", "published_at": "2014-01-02T15:04:05Z", "x": NaN}', R.INVALID_JSON),
    ("byte-order mark", b"\xef\xbb\xbf" + obj(), R.INVALID_JSON),
    ("nested 20,000 deep", b'{"id": "m1", "text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", R.INVALID_JSON),
    (
        "duplicate key",
        b'{"id": "m1", "id": "m2", "text": "hi", "published_at": "2014-01-02T15:04:05Z"}',
        R.DUPLICATE_FIELD,
    ),
    ("top-level array", b'[{"id": "m1"}]', R.NOT_AN_OBJECT),
    ("top-level string", b'"Apple beats estimates"', R.NOT_AN_OBJECT),
    ("top-level null", b"null", R.NOT_AN_OBJECT),
    ("empty object", b"{}", R.MISSING_FIELD),
    ("missing id", obj(id=_DROP), R.MISSING_FIELD),
    ("missing text", obj(text=_DROP), R.MISSING_FIELD),
    ("missing published_at", obj(published_at=_DROP), R.MISSING_FIELD),
    ("null id", obj(id=None), R.MISSING_FIELD),
    ("null published_at", obj(published_at=None), R.MISSING_FIELD),
    ("unknown field", obj(sentiment="positive"), R.UNKNOWN_FIELD),
    ("numeric id", obj(id=418169902613008384), R.WRONG_TYPE),
    ("numeric text", obj(text=42), R.WRONG_TYPE),
    ("boolean text", obj(text=True), R.WRONG_TYPE),
    ("nested object as text", obj(text={"a": [1, {"b": None}]}), R.WRONG_TYPE),
    ("epoch number as published_at", obj(published_at=1388664245), R.WRONG_TYPE),
    ("tickers as a string", obj(tickers="AAPL"), R.WRONG_TYPE),
    ("nested list in tickers", obj(tickers=[["AAPL"]]), R.WRONG_TYPE),
    ("numeric lang", obj(lang=1), R.WRONG_TYPE),
    ("url as an object", obj(url={"href": "https://x.com"}), R.WRONG_TYPE),
    ("empty id", obj(id=""), R.INVALID_ID),
    ("id with a space", obj(id="tweet 1"), R.INVALID_ID),
    ("id of 300 characters", obj(id="x" * 300), R.INVALID_ID),
    ("empty text", obj(text=""), R.EMPTY_TEXT),
    ("whitespace-only text", obj(text=" \t\n  "), R.EMPTY_TEXT),
    ("text that is only a link", obj(text="  https://t.co/TvzJfd0RGT "), R.EMPTY_TEXT),
    ("text of only entities and spaces", obj(text="&nbsp; &#32; &nbsp;"), R.EMPTY_TEXT),
    ("text over 10,000 characters", obj(text="word " * 2001), R.TEXT_TOO_LONG),
    (
        "message over 64 KiB",
        obj(text="a" * 9000, source="s" * 150, url="https://x.com/" + "p" * 60_000),
        R.MESSAGE_TOO_LARGE,
    ),
    ("NUL in text", obj(text="beats\u0000estimates"), R.CONTROL_CHARACTERS),
    ("escape sequence in text", obj(text="\u001b[31mred alert"), R.CONTROL_CHARACTERS),
    ("backspace in text", obj(text="price\u0008 up"), R.CONTROL_CHARACTERS),
    ("vertical tab in text", obj(text="price\u000bup"), R.CONTROL_CHARACTERS),
    ("control character in id", obj(id="m\u00071"), R.CONTROL_CHARACTERS),
    (
        "lone surrogate in text",
        b'{"id": "m1", "text": "ok \\ud800", "published_at": "2014-01-02T15:04:05Z"}',
        R.INVALID_UNICODE,
    ),
    ("published_at without zone", obj(published_at="2014-01-02T15:04:05"), R.MISSING_TIMEZONE),
    ("published_at date only", obj(published_at="2014-01-02"), R.MISSING_TIMEZONE),
    ("published_at words", obj(published_at="yesterday at noon"), R.BAD_TIMESTAMP),
    ("published_at 30 February", obj(published_at="2014-02-30T10:00:00Z"), R.BAD_TIMESTAMP),
    ("published_at offset +25:00", obj(published_at="2014-01-02T15:04:05+25:00"), R.BAD_TIMESTAMP),
    ("published_at in 1850", obj(published_at="1850-01-02T15:04:05Z"), R.BAD_TIMESTAMP),
    ("published_at RFC 2822", obj(published_at="Thu, 02 Jan 2014 15:04:05 +0000"), R.BAD_TIMESTAMP),
    ("published_at 23 hours ahead", obj(published_at=ahead(23 * 3600)), R.BAD_TIMESTAMP),
    ("published_at 20 minutes ahead", obj(published_at=ahead(1200)), R.BAD_TIMESTAMP),
    ("javascript url", obj(url="javascript:alert(1)"), R.INVALID_URL),
    ("relative url", obj(url="/news/1"), R.INVALID_URL),
    ("ticker with spaces", obj(tickers=["AAPL", "not a ticker"]), R.INVALID_TICKER),
    ("ticker starting with a digit", obj(tickers=["1AB"]), R.INVALID_TICKER),
    ("65 tickers", obj(tickers=[f"T{i}" for i in range(65)]), R.INVALID_TICKER),
    ("source over 200 characters", obj(source="s" * 201), R.INVALID_VALUE),
    ("lang es", obj(lang="es"), R.UNSUPPORTED_LANGUAGE),
    ("lang und", obj(lang="und"), R.UNSUPPORTED_LANGUAGE),
    ("lang empty", obj(lang=""), R.UNSUPPORTED_LANGUAGE),
    ("lang of 40 characters", obj(lang="e" * 40), R.UNSUPPORTED_LANGUAGE),
]
"""(kind, value, expected reason): 63 kinds of bad ``news.raw`` values (catalogue asked for: 40)."""


def stocknet_rows(limit: int, month: str = "2014-01") -> list[dict[str, str]]:
    """The first ``limit`` rows of one StockNet monthly CSV (``created_at_utc, ticker, tweet_id, ..., text``)."""
    path = Path(STOCKNET_MONTHLY / f"stocknet_tweets_{month}.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append(row)
            if len(rows) >= limit:
                break
    return rows


def good_items(n: int, prefix: str = "g", month: str = "2014-02") -> list[dict]:
    """``n`` valid English ``news.raw`` dicts with distinct ids ``<prefix><i>`` and real StockNet texts."""
    out, seen = [], set()
    for row in stocknet_rows(20 * n + 100, month):
        if row["lang"] != "en" or row["tweet_id"] in seen:
            continue
        seen.add(row["tweet_id"])
        out.append(
            {"id": f"{prefix}{len(out)}", "text": row["text"], "published_at": row["created_at_utc"], "lang": "en"}
        )
        if len(out) == n:
            return out
    raise AssertionError(f"only {len(out)} English tweets found in {month}")


def scorer_settings(broker, group_id: str, **scorer: object) -> IngestSettings:
    """Ingest settings for a test scorer on ``broker``: short session (fast joins), /metrics on a free port."""
    kafka = broker.kafka_settings(session_timeout_ms=2000, heartbeat_interval_ms=300)
    return IngestSettings(kafka=kafka, scorer={"group_id": group_id, "metrics_port": 0, **scorer})


def produce(kafka: KafkaSettings, messages: list[tuple[bytes | None, bytes | None]], topic: str = NEWS_RAW) -> None:
    """Send ``(key, value)`` pairs to ``topic`` and wait for every acknowledgement (raises on a failed send)."""
    producer = make_producer(kafka)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in messages]
        producer.flush(30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=5)


def produce_items(kafka: KafkaSettings, items: list[dict]) -> None:
    """Send ``news.raw`` dicts (key = id)."""
    produce(kafka, [(i["id"].encode(), json.dumps(i).encode()) for i in items])


class TopicReader:
    """Reads whole topics from the beginning, without a consumer group, into :attr:`records` (topic -> list)."""

    def __init__(self, kafka: KafkaSettings, *topics: str) -> None:
        self.consumer = make_consumer(kafka, None, *topics)
        self.records: dict[str, list] = {t: [] for t in topics}

    def poll(self, timeout_ms: int = 200) -> int:
        """One poll; returns how many records arrived."""
        n = 0
        for tp, recs in self.consumer.poll(timeout_ms).items():
            self.records[tp.topic].extend(recs)
            n += len(recs)
        return n

    def read_until(self, done: Callable[[TopicReader], bool], timeout_s: float, what: str = "condition") -> None:
        """Poll until ``done(self)`` holds; raises AssertionError after ``timeout_s`` seconds (bounded loop)."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                counts = {t: len(r) for t, r in self.records.items()}
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; have {counts}")
            self.poll()

    def ids(self, topic: str = NEWS_SCORED) -> list[str]:
        """Item ids (JSON ``id`` field) of the records read from ``topic``, in read order."""
        return [json.loads(r.value)["id"] for r in self.records[topic]]

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def headers(record) -> dict[str, str]:
    """A record's headers as a str dict."""
    return {k: v.decode() for k, v in record.headers}


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Sleep-poll ``predicate`` every 50 ms; AssertionError after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
