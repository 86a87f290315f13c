"""Typed records the monitor reads: one ``sentiment.keyed`` message, and the fan-out of a ``news.scored`` record.

The shapes are the ones in ``docs/contracts.md``. Parsing is strict on what the aggregation needs
(``id``, ``key``, ``published_at`` with a time zone, ``sentiment``, ``sentiment_score``) and lenient on the
rest, so a producer may add fields without breaking the aggregators.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.normalize import MAX_TICKER_CHARS, TICKER_RE
from finsentry.model.labels import TOPIC_SLUGS, slugify

KEY_PATTERN = re.compile(
    rf"^(all|topic:(?:{'|'.join(TOPIC_SLUGS)})|ticker:{TICKER_RE.pattern.removeprefix('^').removesuffix('$')})$"
)
"""Aggregate keys: ``all``, ``topic:<slug>`` of one of the model's 20 topics
(:data:`~finsentry.model.labels.TOPIC_SLUGS`), ``ticker:<SYMBOL>`` with a symbol of
:data:`~finsentry.ingest.normalize.TICKER_RE` (upper case, no ``$``, at most 15 characters): exactly the keys the
scorer produces."""

MAX_KEY_CHARS = max(len("ticker:") + MAX_TICKER_CHARS, *(len(f"topic:{s}") for s in TOPIC_SLUGS))
"""Longest aggregate key, characters (31: ``topic:treasuries_corporate_debt``; a ticker key has at most 22)."""


def key_problem(key: str) -> str | None:
    """Why ``key`` is not an aggregate key of :data:`KEY_PATTERN` (one line), or None when it is one.

    An aggregator holds state, and exports series, per key, so it accepts only the keys the scorer can
    produce: anything else written to ``sentiment.keyed`` would grow it by one key per distinct string.

    >>> key_problem("ticker:BRK.A") is None and key_problem("topic:fed_central_banks") is None
    True
    >>> key_problem("ticker:" + "A" * 5000)
    'key is 5,007 characters; an aggregate key has at most 31'
    >>> key_problem("topic:crypto")
    "topic slug 'crypto' is not one of the model's 20 topics (finsentry.model.labels.TOPIC_SLUGS)"
    """
    if KEY_PATTERN.fullmatch(key):
        return None
    if len(key) > MAX_KEY_CHARS:
        return f"key is {len(key):,} characters; an aggregate key has at most {MAX_KEY_CHARS}"
    if key.startswith("topic:"):
        return f"topic slug {key[6:]!r} is not one of the model's 20 topics (finsentry.model.labels.TOPIC_SLUGS)"
    if key.startswith("ticker:"):
        return (
            f"ticker symbol {key[7:]!r} is not an upper-case symbol like AAPL, BRK.A or RDS-B (a letter, up to 9"
            " letters or digits, an optional .X / -X class suffix; no $)"
        )
    return f"key {key!r} is not all, topic:<slug> or ticker:<SYMBOL>"


def _check_key(key: str) -> str:
    problem = key_problem(key)
    if problem is not None:
        raise PydanticCustomError(DlqReason.INVALID_KEY.value, problem)
    return key


class KeyedItem(BaseModel):
    """One ``sentiment.keyed`` message value: an item scored by the model, under one aggregate key.

    Attributes:
        id: item id (dedup is by ``(id, key)``). key: aggregate key (:data:`KEY_PATTERN`).
        published_at: event time, timezone-aware (UTC on the wire). sentiment: the argmax label.
        sentiment_probs: ``(neg, neu, pos)``. sentiment_score: ``P(pos) - P(neg)`` in [-1, 1].
        topic: the verbatim topic name. tickers: upper-case symbols. text, url: for evidence.
        model_version: version of the model that scored it.
        truncated: part of the text was not scored by the model (too long); False when absent (records
            written before the field existed).
        received_at: when the source sent the item (its ``news.raw`` record's Kafka timestamp), or None.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    key: Annotated[str, AfterValidator(_check_key)]
    published_at: AwareDatetime
    sentiment: Literal["negative", "neutral", "positive"]
    sentiment_probs: tuple[float, float, float] | None = None
    sentiment_score: float = Field(ge=-1.0, le=1.0)
    topic: str | None = None
    tickers: list[str] = Field(default_factory=list)
    text: str = ""
    url: str | None = None
    model_version: str | None = None
    truncated: bool = False
    received_at: AwareDatetime | None = None


_VALUE_ERRORS = {
    "literal_error",
    "string_pattern_mismatch",
    "string_too_short",
    "greater_than_equal",
    "less_than_equal",
    "finite_number",
}
"""pydantic error types that mean a right type with a wrong value (``invalid_value``)."""


class KeyedMessageError(ValueError):
    """A ``sentiment.keyed`` value cannot be used; ``reason`` is a DLQ reason code (:class:`DlqReason` value)."""

    def __init__(self, reason: DlqReason, message: str) -> None:
        super().__init__(message)
        self.reason = str(reason)


def parse_keyed(value: bytes | str, kafka_key: bytes | str | None = None) -> KeyedItem:
    """Parse and validate one ``sentiment.keyed`` value (JSON bytes).

    Args:
        value: the message value. kafka_key: the message key; when given it must equal the value's ``key``.

    Raises:
        KeyedMessageError: with ``reason`` (``news.dlq`` codes of :class:`~finsentry.ingest.dlq.DlqReason`)
            ``invalid_utf8``, ``invalid_json``, ``not_an_object``, ``missing_field``, ``wrong_type``,
            ``bad_timestamp``, ``missing_timezone``, ``invalid_key`` (not an aggregate key of
            :data:`KEY_PATTERN`: too long, a bad character, an unknown topic slug; :func:`key_problem`) or
            ``invalid_value`` (out of range, unknown label, a key that differs from the message key).
    """
    if value is None or value in (b"", ""):
        raise KeyedMessageError(DlqReason.EMPTY_MESSAGE, "value is empty (a tombstone or an empty record)")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyedMessageError(DlqReason.INVALID_UTF8, f"value is not UTF-8: {exc}") from exc
    try:
        data = json.loads(value)
    except (json.JSONDecodeError, RecursionError, ValueError, TypeError) as exc:
        # RecursionError: deeply nested arrays; ValueError: integers over Python's 4300-digit limit
        raise KeyedMessageError(
            DlqReason.INVALID_JSON, f"value is not usable JSON: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise KeyedMessageError(DlqReason.NOT_AN_OBJECT, f"value is a JSON {type(data).__name__}, not an object")
    try:
        item = KeyedItem.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if kind == "missing":
            reason = DlqReason.MISSING_FIELD
        elif kind == DlqReason.INVALID_KEY.value:
            reason = DlqReason.INVALID_KEY
        elif kind == "timezone_aware":
            reason = DlqReason.MISSING_TIMEZONE
        elif field == "published_at":
            reason = DlqReason.BAD_TIMESTAMP
        elif kind in _VALUE_ERRORS:
            reason = DlqReason.INVALID_VALUE
        else:
            reason = DlqReason.WRONG_TYPE
        raise KeyedMessageError(reason, f"{field}: {err['msg']}") from exc
    if kafka_key is not None:
        k = kafka_key.decode("utf-8", "replace") if isinstance(kafka_key, bytes) else kafka_key
        if k != item.key:
            raise KeyedMessageError(DlqReason.INVALID_VALUE, f"message key {k!r} differs from value key {item.key!r}")
    return item


def aggregate_keys(topic: str | None, tickers: list[str] | None) -> list[str]:
    """The aggregate keys an item fans out to: ``all``, ``topic:<slug>`` and ``ticker:<SYMBOL>`` per ticker.

    Tickers are upper-cased and stripped of ``$``; duplicates are dropped; order is stable.

    >>> aggregate_keys("Stock Movement", ["$aapl", "MSFT", "AAPL"])
    ['all', 'topic:stock_movement', 'ticker:AAPL', 'ticker:MSFT']
    """
    keys = ["all"]
    if topic:
        keys.append(f"topic:{slugify(topic)}")
    for t in tickers or []:
        key = f"ticker:{t.strip().lstrip('$').upper()}"
        if key != "ticker:" and key not in keys:
            keys.append(key)
    return keys


def keyed_from_scored(record: dict[str, Any]) -> list[KeyedItem]:
    """Fan one ``news.scored`` record out to its :class:`KeyedItem` per aggregate key (as the scorer does).

    Raises:
        KeyedMessageError: the record lacks a field the aggregation needs or has a wrong type.
    """
    items = []
    for key in aggregate_keys(record.get("topic"), record.get("tickers")):
        items.append(parse_keyed(json.dumps({**record, "key": key})))
    return items


def to_epoch(ts: datetime) -> float:
    """Seconds since the Unix epoch of an aware datetime."""
    return ts.timestamp()


def iso(epoch: float) -> str:
    """ISO-8601 UTC string (``...Z``) of epoch seconds; whole seconds print without a fraction."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")
