"""The ``news.raw`` message contract: a pydantic model and the JSON Schema file generated from it.

One JSON object per Kafka message::

    {"id": "418169902613008384", "text": "Dow #Stocks Trend $AXP ...", "published_at": "2014-01-01T00:00:48Z",
     "source": "stocknet", "url": null, "tickers": ["AXP", "CAT"], "lang": "en"}

``ingest/news_raw.schema.json`` is written by ``python -m finsentry.ingest.contract`` and must equal
``NewsRaw.model_json_schema()`` (a test checks). Validation is strict (no type coercion: ``"id": 1`` is wrong)
and closed (unknown fields are rejected). Every failure carries a :class:`~finsentry.ingest.dlq.DlqReason`
value as its pydantic error type, so :func:`finsentry.ingest.validation.parse_news_raw` can map it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from finsentry.ingest.dlq import DlqReason
from finsentry.ingest.normalize import TICKER_RE, clean_ticker, is_rejected_control

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


def news_raw_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``news.raw`` values, from :class:`NewsRaw`."""
    return NewsRaw.model_json_schema()


def render_schema() -> str:
    """:func:`news_raw_schema` as the exact text of ``ingest/news_raw.schema.json`` (2-space indent, newline)."""
    return json.dumps(news_raw_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render_schema())
    print(f"wrote {SCHEMA_PATH}")
