"""The wire contracts: one typed (pydantic) model per record that crosses Kafka, and what they share.

Every stage serializes its records with these models and validates what it reads with them; the JSON Schemas
of ``docs/contracts.md`` are generated from them (:func:`contracts_markdown`, written by
``python -m finsentry.ingest.contract``). The records:

- ``news.raw`` -> :class:`NewsRaw` (strict, closed; its schema is also the file ``ingest/news_raw.schema.json``).
- ``news.scored`` -> :class:`ScoredItem`.
- ``sentiment.keyed`` -> :class:`KeyedItem` (one per aggregate key of :func:`aggregate_keys`).
- ``sentiment.spikes`` -> :class:`SpikeRecord` (the monitor's :class:`~finsentry.monitor.spikes.SpikeEvent` on
  the wire).
- ``news.dlq`` headers -> :class:`DeadLetter` (:data:`DLQ_HEADERS`).
- ``models.events`` -> :class:`ModelEventRecord`.

Time on the wire is ISO-8601 UTC with a ``Z`` (:func:`iso_utc`, :func:`iso_epoch`). Every consumer reads a value
with :func:`decode_json_object` (strict JSON) and maps a pydantic error to its dead-letter reason with
:func:`dlq_reason`. This module lives in
``ingest/`` (the room that builds every Kafka client), not in ``common/``: the records need the model's topic
slugs and ingest's ticker syntax and dead-letter reasons, and ``common/`` imports no room.

``news.raw``: one JSON object per Kafka message::

    {"id": "418169902613008384", "text": "Dow #Stocks Trend $AXP ...", "published_at": "2014-01-01T00:00:48Z",
     "source": "stocknet", "url": null, "tickers": ["AXP", "CAT"], "lang": "en"}

``ingest/news_raw.schema.json`` is written by ``python -m finsentry.ingest.contract`` and must equal
``NewsRaw.model_json_schema()`` (a test checks). Validation is strict (no type coercion: ``"id": 1`` is wrong)
and closed (unknown fields are rejected). Every failure carries a :class:`~finsentry.ingest.dlq.DlqReason`
value as its pydantic error type, so :func:`finsentry.ingest.validation.parse_news_raw` can map it.

>>> iso_epoch(1420070400.5)
'2015-01-01T00:00:00.500000Z'
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
)
from pydantic_core import PydanticCustomError

from finsentry.common.textfiles import JsonSyntaxError, strict_json_loads
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.normalize import MAX_TICKER_CHARS, TICKER_RE, clean_ticker, is_rejected_control
from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_SLUGS, slugify

SCHEMA_PATH = Path(__file__).resolve().parent / "news_raw.schema.json"
"""The JSON Schema file of ``news.raw`` values."""

MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 10_000
"""Longest ``text``, characters. The model reads the first ``max_length`` tokens anyway (64 by default)."""
MAX_SOURCE_CHARS = 200
MAX_URL_CHARS = 2048
MAX_TICKERS = 64
MAX_LANG_CHARS = 35
"""BCP-47 tags are at most 35 characters."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE_SECONDS = 86_400
"""``published_at`` may lie at most this far (s) after the wall clock: one future-dated item would otherwise
move its partition's event-time watermark years ahead and make the aggregator drop everything after it as late."""


def iso_utc(ts: datetime) -> str:
    """ISO-8601 text of an aware ``datetime`` in UTC with a ``Z`` suffix (``2014-01-01T00:00:48Z``); a fraction
    of a second prints as microseconds. A naive ``datetime`` is taken as UTC already."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC)
    return ts.isoformat().replace("+00:00", "Z")


def iso_epoch(epoch: float) -> str:
    """:func:`iso_utc` of seconds since the Unix epoch (whole seconds print without a fraction)."""
    return iso_utc(datetime.fromtimestamp(epoch, tz=UTC))


def decode_json_object(value: bytes | str | None, max_message_bytes: int | None = None) -> dict[str, Any]:
    """One record value (UTF-8 bytes or text) -> its JSON object, strictly: size, emptiness, UTF-8, one JSON document
    (:func:`~finsentry.common.textfiles.strict_json_loads`: no NaN / Infinity, no number too large for a float,
    nesting within the recursion limit), no repeated key, an object; checked in that order.

    Args:
        value: the Kafka value (None: a tombstone). max_message_bytes: largest value, bytes (None: no limit).

    Raises:
        InvalidRecord: with ``message_too_large``, ``empty_message``, ``invalid_utf8``, ``invalid_json``,
            ``duplicate_field`` or ``not_an_object``.

    >>> decode_json_object(b'{"id": "1"}')
    {'id': '1'}
    >>> decode_json_object(b'{"id": "1", "id": "2"}')
    Traceback (most recent call last):
    finsentry.ingest.dlq.InvalidRecord: duplicate_field: key 'id' appears more than once
    """
    if value is not None and max_message_bytes is not None and len(value) > max_message_bytes:
        raise InvalidRecord(DlqReason.MESSAGE_TOO_LARGE, f"{len(value):,} bytes; at most {max_message_bytes:,}")
    if not value:
        raise InvalidRecord(DlqReason.EMPTY_MESSAGE, "the value is null (tombstone)" if value is None else "empty")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(DlqReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}") from None
    try:
        obj = strict_json_loads(value, unique_keys=True)
    except JsonSyntaxError as exc:
        reason = DlqReason.DUPLICATE_FIELD if exc.kind == "duplicate_key" else DlqReason.INVALID_JSON
        raise InvalidRecord(reason, str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(DlqReason.NOT_AN_OBJECT, f"a JSON {type(obj).__name__}, expected an object")
    return obj


_REASON_VALUES = {r.value: r for r in DlqReason}
_LENGTH_ERRORS = frozenset({"string_too_short", "string_too_long", "too_long", "too_short"})
_VALUE_ERRORS = frozenset(
    {"literal_error", "string_pattern_mismatch", "greater_than_equal", "less_than_equal", "finite_number"}
)
"""pydantic error types that mean a right type with a wrong value (``invalid_value``)."""
_TYPE_ERRORS = frozenset({"is_instance_of", "model_attributes_type"})


def dlq_reason(
    error: dict[str, Any],
    required: Collection[str] = (),
    time_fields: Collection[str] = (),
    length_reasons: dict[str, DlqReason] | None = None,
) -> DlqReason:
    """The dead-letter reason of one pydantic error (an item of ``ValidationError.errors()``) of a wire record.

    In order: absent (or, for a ``required`` field, null) -> ``missing_field``; an error whose type is a reason
    code (this module's validators raise those: ``invalid_key``, ``bad_timestamp``, ...) -> that reason; a
    datetime without a zone -> ``missing_timezone``; any other error of a ``time_fields`` field ->
    ``bad_timestamp``; a lone surrogate -> ``invalid_unicode``; an unknown field -> ``unknown_field``; a length
    out of bounds -> ``empty_text`` (``text`` too short), else ``length_reasons[field]`` or ``invalid_value``;
    the wrong JSON type (``*_type``, ``*_parsing``) -> ``wrong_type``; anything else -> ``invalid_value``.

    >>> str(dlq_reason({"type": "missing", "loc": ("key",)}))
    'missing_field'
    >>> str(dlq_reason({"type": "float_parsing", "loc": ("sentiment_score",)}))
    'wrong_type'
    >>> str(dlq_reason({"type": "too_short", "loc": ("sentiment_probs",)}))
    'invalid_value'
    """
    kind = error["type"]
    loc = error.get("loc") or ()
    field = str(loc[0]) if loc else ""
    if kind == "missing" or (field in required and len(loc) == 1 and error.get("input", 0) is None):
        return DlqReason.MISSING_FIELD
    if kind in _REASON_VALUES:
        return _REASON_VALUES[kind]
    if kind == "timezone_aware":
        return DlqReason.MISSING_TIMEZONE
    if field in time_fields:
        return DlqReason.BAD_TIMESTAMP
    if kind == "string_unicode":
        return DlqReason.INVALID_UNICODE
    if kind == "extra_forbidden":
        return DlqReason.UNKNOWN_FIELD
    if kind in _LENGTH_ERRORS:
        if field == "text" and kind == "string_too_short":
            return DlqReason.EMPTY_TEXT
        return (length_reasons or {}).get(field, DlqReason.INVALID_VALUE)
    if kind in _VALUE_ERRORS:
        return DlqReason.INVALID_VALUE
    if kind.endswith(("_type", "_parsing")) or kind in _TYPE_ERRORS:
        return DlqReason.WRONG_TYPE
    return DlqReason.INVALID_VALUE


def _fail(reason: DlqReason, message: str) -> PydanticCustomError:
    return PydanticCustomError(reason.value, message)


def _check_chars(value: str) -> str:
    """Reject C0 control characters and lone surrogates (the latter cannot be encoded as UTF-8 downstream)."""
    for i, ch in enumerate(value):
        if "\ud800" <= ch <= "\udfff":
            raise _fail(DlqReason.INVALID_UNICODE, f"lone surrogate U+{ord(ch):04X} at index {i}")
        if is_rejected_control(ch):
            raise _fail(DlqReason.CONTROL_CHARACTERS, f"control character U+{ord(ch):04X} at index {i}")
    return value


def _check_id(value: str) -> str:
    _check_chars(value)
    if not value or any(ch.isspace() for ch in value):
        raise _fail(DlqReason.INVALID_ID, "id must be non-empty and hold no whitespace")
    return value


def _check_text(value: str) -> str:
    _check_chars(value)
    if not value.strip():
        raise _fail(DlqReason.EMPTY_TEXT, "text is empty or whitespace only")
    return value


def _parse_published_at(value: Any) -> datetime:
    """ISO-8601 string with a UTC offset -> aware ``datetime`` in UTC."""
    if not isinstance(value, str):
        raise _fail(DlqReason.WRONG_TYPE, f"published_at must be an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise _fail(DlqReason.BAD_TIMESTAMP, f"published_at {value[:60]!r} is not ISO-8601 ({exc})") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _fail(DlqReason.MISSING_TIMEZONE, f"published_at {value[:60]!r} has no UTC offset (add Z or +hh:mm)")
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise _fail(DlqReason.BAD_TIMESTAMP, f"published_at {value[:60]!r} is out of range") from None
    if utc < EARLIEST:
        raise _fail(DlqReason.BAD_TIMESTAMP, f"published_at {value[:60]!r} lies before 1970")
    if utc > datetime.now(UTC) + timedelta(seconds=MAX_FUTURE_SECONDS):
        raise _fail(DlqReason.BAD_TIMESTAMP, f"published_at {value[:60]!r} lies more than a day in the future")
    return utc


def _check_source(value: str | None) -> str | None:
    if value is None:
        return None
    return _check_chars(value)


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    _check_chars(value)
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced [ in the host
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in value:
        raise _fail(DlqReason.INVALID_URL, f"url {value[:80]!r} is not an absolute http(s) URL")
    return value


def _check_tickers(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    out = []
    for raw in value:
        _check_chars(raw)
        symbol = clean_ticker(raw)
        if not TICKER_RE.match(symbol):
            raise _fail(DlqReason.INVALID_TICKER, f"ticker {raw[:40]!r} is not a symbol like AAPL, $aapl or RDS-B")
        out.append(symbol)
    return list(dict.fromkeys(out))


def _check_lang(value: str | None) -> str | None:
    if value is None:
        return None
    _check_chars(value)
    return value


class NewsRaw(BaseModel):
    """One ``news.raw`` item as validated from the wire (strict types, no unknown fields).

    ``published_at`` is converted to UTC; ``tickers`` are cleaned (``$aapl`` -> ``AAPL``, repeats dropped).
    Text is *not* normalized here; see :mod:`finsentry.ingest.validation`.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        title="news.raw",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "One news item on the Kafka topic news.raw (finsentry). Generated from "
            "finsentry.ingest.contract.NewsRaw by `python -m finsentry.ingest.contract`; do not edit.",
        },
    )

    id: Annotated[
        str,
        Field(min_length=1, max_length=MAX_ID_CHARS, description="unique item id (e.g. tweet id); the Kafka key"),
        AfterValidator(_check_id),
    ]
    text: Annotated[
        str,
        Field(min_length=1, max_length=MAX_TEXT_CHARS, description="headline or post text to score"),
        AfterValidator(_check_text),
    ]
    published_at: Annotated[
        datetime,
        BeforeValidator(_parse_published_at),
        Field(description="event time: ISO-8601 date-time with a UTC offset (Z or +hh:mm); stored in UTC"),
    ]
    source: Annotated[
        str | None,
        Field(max_length=MAX_SOURCE_CHARS, description="where the item came from (feed, account)"),
        AfterValidator(_check_source),
    ] = None
    url: Annotated[
        str | None,
        Field(max_length=MAX_URL_CHARS, description="link to the item: absolute http(s) URL"),
        AfterValidator(_check_url),
    ] = None
    tickers: Annotated[
        list[str] | None,
        Field(
            max_length=MAX_TICKERS,
            description="ticker symbols (AAPL, $aapl, RDS-B); cashtags in the text are added during scoring",
        ),
        AfterValidator(_check_tickers),
    ] = None
    lang: Annotated[
        str | None,
        Field(
            max_length=MAX_LANG_CHARS,
            description="language tag (BCP-47, e.g. en, en-US); only allowed languages are scored",
        ),
        AfterValidator(_check_lang),
    ] = None


# --- aggregate keys and sentiment.keyed -----------------------------------------------------------------------

ALL_KEY = "all"
"""The aggregate key of the whole stream."""


def aggregate_keys(topic: str | None, tickers: Sequence[str] | None) -> list[str]:
    """The aggregate keys an item fans out to: ``all``, ``topic:<slug>``, then ``ticker:<SYMBOL>`` per ticker.

    The slug is :func:`~finsentry.model.labels.slugify` of the topic (no topic key without a topic). Tickers are
    stripped of blanks and ``$`` and upper-cased; empty ones and repeats are dropped; order is stable. Kafka's key
    partitioner then sends every aggregate to exactly one partition, so one aggregator instance owns it.

    >>> aggregate_keys("Fed | Central Banks", ("AAPL", "RDS-B"))
    ['all', 'topic:fed_central_banks', 'ticker:AAPL', 'ticker:RDS-B']
    >>> aggregate_keys("Stock Movement", ["$aapl", " MSFT", "AAPL", ""])
    ['all', 'topic:stock_movement', 'ticker:AAPL', 'ticker:MSFT']
    """
    keys = [ALL_KEY]
    if topic:
        keys.append(f"topic:{slugify(topic)}")
    for t in tickers or ():
        key = f"ticker:{t.strip().lstrip('$').upper()}"
        if key != "ticker:" and key not in keys:
            keys.append(key)
    return keys


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


def _probs_tuple(value: Any) -> Any:
    """``sentiment_probs`` as ``(neg, neu, pos)``: a ``{"negative": p, "neutral": p, "positive": p}`` mapping (the
    named form ``finsentry score`` writes) becomes the tuple; anything else is left to the type check.

    Raises:
        PydanticCustomError: ``wrong_type``, a mapping with other keys (naming the missing and the unknown ones).

    >>> _probs_tuple({"positive": 0.1, "negative": 0.7, "neutral": 0.2})
    (0.7, 0.2, 0.1)
    """
    if not isinstance(value, dict):
        return value
    if set(value) == set(SENTIMENT_LABELS):
        return tuple(value[label] for label in SENTIMENT_LABELS)
    missing = [label for label in SENTIMENT_LABELS if label not in value]
    other = sorted(str(k) for k in value if k not in SENTIMENT_LABELS)
    wrong = []
    if missing:
        wrong.append(f"missing {', '.join(missing)}")
    if other:
        wrong.append(f"unknown {', '.join(other)}")
    expected = ", ".join(SENTIMENT_LABELS)
    raise _fail(DlqReason.WRONG_TYPE, f"a mapping needs exactly the keys {expected} ({'; '.join(wrong)})")


SentimentProbs = Annotated[tuple[float, float, float], BeforeValidator(_probs_tuple)]
"""``(neg, neu, pos)`` probabilities; the named mapping is accepted on input (:func:`_probs_tuple`)."""


class KeyedItem(BaseModel):
    """One ``sentiment.keyed`` message value: an item scored by the model, under one aggregate key.

    Attributes:
        id: item id (dedup is by ``(id, key)``). key: aggregate key (:data:`KEY_PATTERN`).
        published_at: event time, timezone-aware (UTC on the wire). sentiment: the argmax label.
        sentiment_probs: ``(neg, neu, pos)`` (a ``{"negative", "neutral", "positive"}`` mapping is read as that
            tuple). sentiment_score: ``P(pos) - P(neg)`` in [-1, 1].
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
    sentiment_probs: SentimentProbs | None = None
    sentiment_score: float = Field(ge=-1.0, le=1.0)
    topic: str | None = None
    tickers: list[str] = Field(default_factory=list)
    text: str = ""
    url: str | None = None
    model_version: str | None = None
    truncated: bool = False
    received_at: AwareDatetime | None = None

    @field_serializer("published_at", "received_at")
    def _iso(self, ts: datetime | None) -> str | None:
        return None if ts is None else iso_utc(ts)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready value, fields in declaration order; ``received_at`` left out when None."""
        return self.model_dump(mode="json", exclude={"received_at"} if self.received_at is None else None)


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
            ``empty_message``, ``invalid_utf8``, ``invalid_json``, ``duplicate_field``, ``not_an_object``
            (:func:`decode_json_object`), ``missing_field``, ``wrong_type``,
            ``bad_timestamp``, ``missing_timezone``, ``invalid_key`` (not an aggregate key of
            :data:`KEY_PATTERN`: too long, a bad character, an unknown topic slug; :func:`key_problem`) or
            ``invalid_value`` (out of range, unknown label, a key that differs from the message key).
    """
    try:
        data = decode_json_object(value)
    except InvalidRecord as exc:
        raise KeyedMessageError(exc.reason, f"value is not usable: {exc.message}") from exc
    try:
        item = KeyedItem.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise KeyedMessageError(dlq_reason(err, time_fields=("published_at",)), f"{field}: {err['msg']}") from exc
    if kafka_key is not None:
        k = kafka_key.decode("utf-8", "replace") if isinstance(kafka_key, bytes) else kafka_key
        if k != item.key:
            raise KeyedMessageError(DlqReason.INVALID_VALUE, f"message key {k!r} differs from value key {item.key!r}")
    return item


# --- news.scored ------------------------------------------------------------------------------------------------


class ScoredItem(BaseModel):
    """One ``news.scored`` value (Kafka key: the item id): the item's input fields, the model's prediction and
    ``scored_at``.

    Attributes:
        id, text, published_at, source, url, lang: the normalized item (:class:`~finsentry.ingest.validation.NewsItem`).
        tickers: the given ones, then cashtags and company names in text order, at most
            ``ingest.scorer.max_tickers_per_item``. topic, topic_prob: the predicted topic (verbatim name) and its
            probability. sentiment, sentiment_probs ``(neg, neu, pos)``, sentiment_score ``P(pos) - P(neg)``.
        model_version: the artifact that scored it. truncated: part of the text was not scored (beyond
            ``model.max_chunks`` windows or 20,000 characters). chunks: windows of ``model.max_length`` tokens
            scored and combined (:mod:`finsentry.model.scorer`). tickers_dropped: distinct tickers found beyond
            the cap and left out of ``tickers`` and of the fan-out. scored_at: when the scorer scored it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    text: str
    published_at: AwareDatetime
    source: str | None = None
    url: str | None = None
    tickers: list[str] = Field(default_factory=list)
    lang: str | None = None
    topic: str
    topic_prob: float
    sentiment: Literal["negative", "neutral", "positive"]
    sentiment_probs: SentimentProbs
    sentiment_score: float
    model_version: str
    truncated: bool = False
    chunks: int = Field(default=1, ge=1)
    tickers_dropped: int = Field(default=0, ge=0)
    scored_at: AwareDatetime

    @field_serializer("published_at", "scored_at")
    def _iso(self, ts: datetime) -> str:
        return iso_utc(ts)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready value, fields in declaration order."""
        return self.model_dump(mode="json")

    def keyed(self, received_at: datetime | None = None) -> list[KeyedItem]:
        """The ``sentiment.keyed`` records of this item: one :class:`KeyedItem` per key of :func:`aggregate_keys`.

        ``received_at``: the Kafka timestamp of the item's ``news.raw`` record, when the source sent it.
        """
        first, *rest = aggregate_keys(self.topic, self.tickers)
        base = KeyedItem(
            id=self.id,
            key=first,
            published_at=self.published_at,
            sentiment=self.sentiment,
            sentiment_probs=self.sentiment_probs,
            sentiment_score=self.sentiment_score,
            topic=self.topic,
            tickers=self.tickers,
            text=self.text,
            url=self.url,
            model_version=self.model_version,
            truncated=self.truncated,
            received_at=received_at,
        )
        return [base, *(base.model_copy(update={"key": key}) for key in rest)]


def to_json_bytes(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is): how every record goes on the wire."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- news.dlq headers -------------------------------------------------------------------------------------------

DLQ_HEADERS = ("reason", "message", "source_topic", "source_partition", "source_offset")
"""The Kafka header names of every dead letter (UTF-8 values); its value is the original record's bytes."""

MAX_DLQ_MESSAGE_CHARS = 1000
"""A dead letter's ``message`` header is cut to this many characters."""


class DeadLetter(BaseModel):
    """The headers of one ``news.dlq`` record (:data:`DLQ_HEADERS`).

    Attributes:
        reason: a :class:`~finsentry.ingest.dlq.DlqReason` value (closed enum). message: what exactly was wrong
            (at most 1,000 characters on the wire). source_topic, source_partition, source_offset: where the
            original record was read.
    """

    model_config = ConfigDict(frozen=True)

    reason: DlqReason
    message: str
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)

    def headers(self, **extra: str) -> list[tuple[str, bytes]]:
        """Kafka headers (``message`` cut to 1,000 characters, text encoded with ``backslashreplace``, so a lone
        surrogate cannot fail the send); ``extra`` adds headers beyond the contract (e.g. ``value_truncated``)."""
        values = {
            "reason": self.reason.value,
            "message": self.message[:MAX_DLQ_MESSAGE_CHARS],
            "source_topic": self.source_topic,
            "source_partition": str(self.source_partition),
            "source_offset": str(self.source_offset),
            **extra,
        }
        return [(k, v.encode("utf-8", "backslashreplace")) for k, v in values.items()]

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes]]) -> DeadLetter:
        """The dead letter of a record's headers (headers beyond :data:`DLQ_HEADERS` are ignored).

        Raises:
            pydantic.ValidationError: a contract header is missing or not valid.
        """
        values = {k: v.decode("utf-8", "replace") for k, v in headers if k in DLQ_HEADERS}
        return cls.model_validate(values)


def dlq_headers(
    reason: DlqReason | str, message: str, source_topic: str, source_partition: int, source_offset: int, **extra: str
) -> list[tuple[str, bytes]]:
    """The Kafka headers of a dead letter: :meth:`DeadLetter.headers`."""
    letter = DeadLetter(
        reason=DlqReason(reason),
        message=message,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
    )
    return letter.headers(**extra)


# --- models.events ----------------------------------------------------------------------------------------------


class ModelEvent(BaseModel):
    """One ``models.events`` value (key ``current``): a registry promote / rollback
    (:mod:`finsentry.ingest.model_events`). Unknown fields are ignored.

    Attributes:
        action: ``promote`` or ``rollback``. version: the registry version now current (``vNNNN``; a scorer
            loads only ``<its model.registry_dir>/<version>``). model_version: that artifact's model version.
        previous: the version it replaced, or None. path: where the publisher's registry keeps it
            (informational, never loaded from). at: when (ISO-8601 UTC).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["promote", "rollback"]
    version: str = Field(min_length=1)
    model_version: str | None = None
    previous: str | None = None
    path: str | None = None
    at: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready value."""
        return self.model_dump(mode="json")


# --- sentiment.spikes -------------------------------------------------------------------------------------------


class SpikeFiguresRecord(BaseModel):
    """A spike's figures at one closed bucket: its ``start``, its ``peak`` (and, flat, the event itself)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    bucket_end: AwareDatetime
    window_seconds: int = Field(ge=1)
    trigger: Literal["share", "volume"] | None = None
    z: float | None = None
    share_z: float | None = None
    share: float | None = None
    baseline_mean: float | None = None
    baseline_std: float | None = None
    items: int = Field(ge=0)
    negative: int = Field(ge=0)
    volume_baseline: float | None = None
    volume_z: float | None = None

    @field_serializer("bucket_end")
    def _iso(self, ts: datetime) -> str:
        return iso_utc(ts)


class SpikeRecord(SpikeFiguresRecord):
    """One ``sentiment.spikes`` value (key: the aggregate key): the monitor's
    :class:`~finsentry.monitor.spikes.SpikeEvent` on the wire (``SpikeEvent.to_dict``; read back by
    ``SpikeEvent.from_dict``). Figures as in :class:`SpikeFiguresRecord`; ``evidence``: the most negative
    distinct stories of the window (``{id, text, url, sentiment_score, published_at, truncated, attribution?}``);
    ``spike_id``: ``<key>@<ISO UTC bucket_end of the started event>``."""

    event: Literal["started", "updated", "ended"]
    key: Annotated[str, AfterValidator(_check_key)]
    bucket_start: AwareDatetime
    volume: int = Field(ge=0)
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    spike_id: str = ""
    start: SpikeFiguresRecord | None = None
    peak: SpikeFiguresRecord | None = None

    @field_serializer("bucket_start")
    def _iso_start(self, ts: datetime) -> str:
        return iso_utc(ts)


# --- the schemas of docs/contracts.md ---------------------------------------------------------------------------

WIRE_RECORDS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("news.raw", NewsRaw),
    ("news.scored", ScoredItem),
    ("sentiment.keyed", KeyedItem),
    ("sentiment.spikes", SpikeRecord),
    ("news.dlq (headers)", DeadLetter),
    ("models.events", ModelEvent),
)
"""Every record on the wire and its model, in data-flow order."""

SCHEMAS_BEGIN = "<!-- schemas: generated by python -m finsentry.ingest.contract; do not edit below -->"
"""Where the generated part of ``docs/contracts.md`` starts (it runs to the end of the file)."""


def contracts_markdown() -> str:
    """The generated part of ``docs/contracts.md``: one JSON Schema (validation mode) per :data:`WIRE_RECORDS`."""
    parts = [
        SCHEMAS_BEGIN,
        "",
        "## JSON Schemas of the records on the wire",
        "Generated from the pydantic models of `ingest/contract.py` (`python -m finsentry.ingest.contract`;",
        "`tests/test_generated_docs.py` fails when out of date). Readers are lenient where the prose above says so",
        "(unknown fields of every record but `news.raw` are ignored).",
    ]
    for topic, model in WIRE_RECORDS:
        schema = json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False)
        parts += ["", f"### `{topic}`: `{model.__name__}`", "```json", schema, "```"]
    return "\n".join(parts) + "\n"


def render_contracts_doc(current: str) -> str:
    """``docs/contracts.md`` text ``current`` with its generated part (from :data:`SCHEMAS_BEGIN`) made anew."""
    head = current.split(SCHEMAS_BEGIN, 1)[0].rstrip("\n")
    return head + "\n\n" + contracts_markdown()


def news_raw_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``news.raw`` values, from :class:`NewsRaw`."""
    return NewsRaw.model_json_schema()


def render_schema() -> str:
    """:func:`news_raw_schema` as the exact text of ``ingest/news_raw.schema.json`` (2-space indent, newline)."""
    return json.dumps(news_raw_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    from finsentry.common.paths import REPO_ROOT

    SCHEMA_PATH.write_text(render_schema())
    print(f"wrote {SCHEMA_PATH}")
    doc = REPO_ROOT / "docs" / "contracts.md"
    doc.write_text(render_contracts_doc(doc.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {doc} (JSON Schemas)")
