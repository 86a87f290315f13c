"""From a ``news.raw`` value (bytes) to a normalized :class:`NewsItem`, or an :class:`InvalidRecord` with a reason.

Checks, in order (the first failure decides the reason): size (``message_too_large``), empty or null value
(``empty_message``), UTF-8 (``invalid_utf8``), one JSON document without NaN/Infinity or excessive nesting
(``invalid_json``), no repeated keys (``duplicate_field``), an object (``not_an_object``), the contract fields
in order (:class:`~finsentry.ingest.contract.NewsRaw`: ``missing_field``, ``wrong_type``, ``unknown_field``,
``invalid_id``, ``empty_text``, ...), an event time no further ahead of the wall clock than
``ingest.scorer.max_future_seconds`` (``bad_timestamp``; default 600 s, the clock skew tolerated between the
sources and the scorer), the language (``unsupported_language``), and finally a text that is empty after
normalization (``empty_text``, e.g. only a link).

Why the future bound is tight: the aggregator closes a key's buckets at its partition's watermark (the
largest ``published_at`` seen there, minus the grace), so a single item dated hours ahead would make every
real item of that partition look late, for as long as it is ahead. The contract itself
(:data:`~finsentry.ingest.contract.MAX_FUTURE_SECONDS`) only rules out more than a day.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.contract import MAX_TICKERS, NewsRaw, iso_utc
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.normalize import cashtags, normalize_text, unique
from finsentry.ingest.settings import CLOCK_SKEW_SECONDS

REQUIRED_FIELDS: tuple[str, ...] = ("id", "text", "published_at")

_LENGTH_REASONS: dict[str, DlqReason] = {
    "id": DlqReason.INVALID_ID,
    "text": DlqReason.TEXT_TOO_LONG,
    "lang": DlqReason.UNSUPPORTED_LANGUAGE,
    "tickers": DlqReason.INVALID_TICKER,
    "url": DlqReason.INVALID_URL,
    "source": DlqReason.INVALID_VALUE,
}
_REASON_VALUES = {r.value: r for r in DlqReason}


@dataclass(frozen=True, slots=True)
class NewsItem:
    """A validated, normalized item ready to score.

    Attributes:
        id: item id (str). text: normalized text (entities decoded, URLs removed, whitespace collapsed; non-empty).
        published_at: event time, aware ``datetime`` in UTC. source, url, lang: optional str (``url`` falls back
        to the first link found in the text). tickers: upper-case symbols: the given ones, then cashtags, then
        company names found in the text, without repeats; at most ``max_tickers`` of :func:`normalize_item`.
        tickers_dropped: distinct tickers found beyond that cap and left out (0 normally).
    """

    id: str
    text: str
    published_at: datetime
    source: str | None
    url: str | None
    tickers: tuple[str, ...]
    lang: str | None
    tickers_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready input fields (``published_at`` as ISO-8601 ``...Z``, ``tickers`` as a list)."""
        return {
            "id": self.id,
            "text": self.text,
            "published_at": iso_utc(self.published_at),
            "source": self.source,
            "url": self.url,
            "tickers": list(self.tickers),
            "lang": self.lang,
        }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRecord(DlqReason.DUPLICATE_FIELD, f"key {key[:60]!r} appears more than once")
        out[key] = value
    return out


def decode_json_object(value: bytes | None, max_message_bytes: int) -> dict[str, Any]:
    """Bytes -> JSON object (dict), checking size, emptiness, UTF-8, syntax, repeated keys and shape.

    Raises:
        InvalidRecord: with ``message_too_large``, ``empty_message``, ``invalid_utf8``, ``invalid_json``,
            ``duplicate_field`` or ``not_an_object``.
    """
    if value is not None and len(value) > max_message_bytes:
        raise InvalidRecord(DlqReason.MESSAGE_TOO_LARGE, f"{len(value):,} bytes; at most {max_message_bytes:,}")
    if not value:
        raise InvalidRecord(DlqReason.EMPTY_MESSAGE, "the value is null (tombstone)" if value is None else "empty")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(DlqReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except InvalidRecord:
        raise
    except RecursionError:
        raise InvalidRecord(DlqReason.INVALID_JSON, "nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise InvalidRecord(DlqReason.INVALID_JSON, str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(DlqReason.NOT_AN_OBJECT, f"a JSON {type(obj).__name__}, expected an object")
    return obj


def reason_for(error: dict[str, Any]) -> DlqReason:
    """Map one pydantic error (``ValidationError.errors()`` item) of :class:`NewsRaw` to a :class:`DlqReason`."""
    kind = error["type"]
    field = str(error["loc"][0]) if error.get("loc") else ""
    if kind == "missing" or (field in REQUIRED_FIELDS and len(error["loc"]) == 1 and error.get("input", 0) is None):
        return DlqReason.MISSING_FIELD
    if kind in _REASON_VALUES:
        return _REASON_VALUES[kind]
    if kind == "string_unicode":
        return DlqReason.INVALID_UNICODE
    if kind == "extra_forbidden":
        return DlqReason.UNKNOWN_FIELD
    if kind in ("string_too_short", "string_too_long", "too_long", "too_short"):
        if field == "text" and kind == "string_too_short":
            return DlqReason.EMPTY_TEXT
        return _LENGTH_REASONS.get(field, DlqReason.INVALID_VALUE)
    if kind.endswith("_type") or kind in ("is_instance_of", "model_attributes_type"):
        return DlqReason.WRONG_TYPE
    return DlqReason.INVALID_VALUE


def parse_news_raw(value: bytes | None, max_message_bytes: int = 65_536) -> NewsRaw:
    """Validate a ``news.raw`` value against the contract; returns the :class:`NewsRaw` model.

    Raises:
        InvalidRecord: the first problem found (see the module doc for the order), with its reason code.
    """
    obj = decode_json_object(value, max_message_bytes)
    try:
        return NewsRaw.model_validate(obj)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise InvalidRecord(reason_for(first), f"{loc}: {first['msg']}") from None


def language_allowed(lang: str | None, allowed: Collection[str]) -> bool:
    """True if ``lang`` is None (never guessed) or its primary subtag (``en`` of ``en-US``) is in ``allowed``."""
    if lang is None:
        return True
    primary = lang.strip().lower().replace("_", "-").split("-")[0]
    return primary in {a.lower() for a in allowed}


def normalize_item(raw: NewsRaw, companies: CompanyTickerMap | None = None, max_tickers: int = MAX_TICKERS) -> NewsItem:
    """Normalize the text of a validated item and collect its tickers (given, cashtags, company names).

    Every ticker becomes an aggregate key (``ticker:<SYMBOL>``, one ``sentiment.keyed`` message and one key held
    by an aggregator), so an item keeps at most ``max_tickers`` (setting ``ingest.scorer.max_tickers_per_item``):
    the first ones in the order given, then cashtags and company names in text order. The rest are counted in
    ``tickers_dropped`` (the contract already refuses more than 64 *given* tickers; cashtags in the text are
    not bounded by it).

    >>> raw = NewsRaw.model_validate({"id": "1", "text": "$A $B $C $B up", "published_at": "2015-08-24T13:30:00Z"})
    >>> item = normalize_item(raw, max_tickers=2)
    >>> item.tickers, item.tickers_dropped
    (('A', 'B'), 1)

    Raises:
        InvalidRecord: ``empty_text`` if nothing but links, entities or whitespace is left.
    """
    norm = normalize_text(raw.text)
    if not norm.text:
        raise InvalidRecord(DlqReason.EMPTY_TEXT, "no text left after decoding entities and removing URLs")
    if not any(unicodedata.category(c)[0] in "LNPS" for c in norm.text):
        raise InvalidRecord(
            DlqReason.EMPTY_TEXT, "no visible character (only zero-width, direction, combining or space characters)"
        )
    found = unique([*(raw.tickers or ()), *cashtags(norm.text), *(companies.find(norm.text) if companies else ())])
    tickers = tuple(found[:max_tickers])
    url = raw.url if raw.url is not None else (norm.urls[0] if norm.urls else None)
    return NewsItem(raw.id, norm.text, raw.published_at, raw.source, url, tickers, raw.lang, len(found) - len(tickers))


def check_not_future(published_at: datetime, max_future_seconds: float, now: datetime | None = None) -> None:
    """Refuse an event time more than ``max_future_seconds`` after ``now`` (default: the wall clock, UTC).

    >>> from datetime import timedelta
    >>> now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    >>> check_not_future(now + timedelta(seconds=600), 600, now)   # at the bound: accepted
    >>> check_not_future(now + timedelta(hours=23), 600, now)
    Traceback (most recent call last):
    ...
    finsentry.ingest.dlq.InvalidRecord: bad_timestamp: published_at 2026-12-02T11:00:00Z lies 82800 s in the \
future (the wall clock is 2026-12-01T12:00:00Z); at most ingest.scorer.max_future_seconds = 600 s ahead is accepted

    Raises:
        InvalidRecord: ``bad_timestamp``; the message gives both times and the bound.
    """
    now = datetime.now(UTC) if now is None else now
    ahead = (published_at - now).total_seconds()
    if ahead > max_future_seconds:
        raise InvalidRecord(
            DlqReason.BAD_TIMESTAMP,
            f"published_at {iso_utc(published_at.astimezone(UTC))} lies {ahead:.0f} s in the future (the wall clock"
            f" is {iso_utc(now.astimezone(UTC).replace(microsecond=0))}); at most"
            f" ingest.scorer.max_future_seconds = {max_future_seconds:g} s ahead is accepted",
        )


def validate_news_raw(
    value: bytes | None,
    *,
    max_message_bytes: int = 65_536,
    allowed_langs: Collection[str] = ("en",),
    companies: CompanyTickerMap | None = None,
    max_future_seconds: float = CLOCK_SKEW_SECONDS,
    now: datetime | None = None,
    max_tickers: int = MAX_TICKERS,
) -> NewsItem:
    """Everything the scorer checks before scoring: contract, event time, language, normalization.

    Args:
        value: the Kafka record value (bytes or None). max_message_bytes: size limit, bytes.
        allowed_langs: language codes scored (by the ``lang`` field only). companies: name -> ticker map.
        max_future_seconds: how far ``published_at`` may lie after ``now``, seconds (``ingest.scorer``
            setting of the same name). now: the wall clock to compare with (aware; default: the current time).
        max_tickers: tickers kept per item (``ingest.scorer.max_tickers_per_item``; :func:`normalize_item`).

    Raises:
        InvalidRecord: with the reason code of the first problem.
    """
    raw = parse_news_raw(value, max_message_bytes)
    check_not_future(raw.published_at, max_future_seconds, now)
    if not language_allowed(raw.lang, allowed_langs):
        raise InvalidRecord(DlqReason.UNSUPPORTED_LANGUAGE, f"lang {raw.lang!r} is not one of {sorted(allowed_langs)}")
    return normalize_item(raw, companies, max_tickers)
