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

import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.contract import MAX_TICKERS, NewsRaw, decode_json_object, dlq_reason, iso_utc
from finsentry.ingest.dlq import DlqReason, InvalidRecord
from finsentry.ingest.normalize import NormalizedText, cashtags, normalize_text, unique
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


def reason_for(error: dict[str, Any]) -> DlqReason:
    """Map one pydantic error (``ValidationError.errors()`` item) of :class:`NewsRaw` to a :class:`DlqReason`
    (:func:`~finsentry.ingest.contract.dlq_reason` with ``news.raw``'s required fields and length reasons)."""
    return dlq_reason(error, required=REQUIRED_FIELDS, length_reasons=_LENGTH_REASONS)


def parse_news_raw(value: bytes | None, max_message_bytes: int = 65_536) -> NewsRaw:
    """Validate a ``news.raw`` value against the contract; returns the :class:`NewsRaw` model.

    Raises:
        InvalidRecord: the first problem found (see the module doc for the order), with its reason code.
    """
    obj = decode_json_object(value, max_message_bytes)
    try:
        return NewsRaw.model_validate(obj)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)[0]) from None


def _invalid(error: dict[str, Any]) -> InvalidRecord:
    """The :class:`InvalidRecord` of one pydantic error of :class:`NewsRaw`: its reason and ``field: message``."""
    loc = ".".join(str(p) for p in error.get("loc", ())) or "value"
    return InvalidRecord(reason_for(error), f"{loc}: {error['msg']}")


def check_given_fields(fields: Mapping[str, Any]) -> None:
    """:class:`NewsRaw`'s checks of the fields present in ``fields``, as :func:`parse_news_raw` applies them; a
    required field that is absent is not asked for. For ``finsentry score``, whose rows are texts that need no
    ``id`` or ``published_at``: it skips a row the live scorer would dead-letter for its text or tickers.

    >>> check_given_fields({"text": "Apple beats estimates", "tickers": ["$aapl"]})
    >>> check_given_fields({"text": "beats" + chr(0) + "estimates"})
    Traceback (most recent call last):
    ...
    finsentry.ingest.dlq.InvalidRecord: control_characters: text: control character U+0000 at index 5

    Raises:
        InvalidRecord: the first problem in contract field order, with its reason code (``text_too_long``,
            ``control_characters``, ``invalid_ticker``, ...).
    """
    try:
        NewsRaw.model_validate(fields)
    except ValidationError as exc:
        given = [e for e in exc.errors(include_url=False) if e["type"] != "missing"]
        if given:
            raise _invalid(given[0]) from None


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
    norm, found = text_and_tickers(raw.text, raw.tickers or (), companies)
    tickers = tuple(found[:max_tickers])
    url = raw.url if raw.url is not None else (norm.urls[0] if norm.urls else None)
    return NewsItem(raw.id, norm.text, raw.published_at, raw.source, url, tickers, raw.lang, len(found) - len(tickers))


def text_and_tickers(
    text: str, given: Sequence[str] = (), companies: CompanyTickerMap | None = None
) -> tuple[NormalizedText, list[str]]:
    """The normalized text the scorer scores and every ticker of the item: ``given`` first, then cashtags and
    company names in text order, without repeats (uncapped; :func:`normalize_item` keeps the first
    ``max_tickers``). Shared by the live scorer and ``finsentry score``, so both score the same text.

    >>> norm, tickers = text_and_tickers("Apple &amp; $MSFT slump https://t.co/x", ["AAPL"])
    >>> norm.text, tickers
    ('Apple & $MSFT slump', ['AAPL', 'MSFT'])

    Raises:
        InvalidRecord: ``empty_text`` if nothing but links, entities or whitespace is left.
    """
    norm = normalize_text(text)
    if not norm.text:
        raise InvalidRecord(DlqReason.EMPTY_TEXT, "no text left after decoding entities and removing URLs")
    if not any(unicodedata.category(c)[0] in "LNPS" for c in norm.text):
        raise InvalidRecord(
            DlqReason.EMPTY_TEXT, "no visible character (only zero-width, direction, combining or space characters)"
        )
    return norm, unique([*given, *cashtags(norm.text), *(companies.find(norm.text) if companies else ())])


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
