"""Dead letters: the closed enum of reason codes, one documented example each, and the ``news.dlq`` headers.

A record that cannot be scored goes to ``news.dlq`` with its original bytes as the value and these headers
(``docs/contracts.md``): ``reason`` (a :class:`DlqReason` value), ``message`` (what exactly was wrong),
``source_topic``, ``source_partition``, ``source_offset``. ``docs/dlq.md`` is generated from this module
(``python -m finsentry.ingest.dlq > docs/dlq.md``); a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DlqReason(StrEnum):
    """Why a record went to the dead-letter topic (snake_case, closed: consumers may switch on it)."""

    MESSAGE_TOO_LARGE = "message_too_large"
    EMPTY_MESSAGE = "empty_message"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    DUPLICATE_FIELD = "duplicate_field"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_ID = "invalid_id"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    CONTROL_CHARACTERS = "control_characters"
    INVALID_UNICODE = "invalid_unicode"
    BAD_TIMESTAMP = "bad_timestamp"
    MISSING_TIMEZONE = "missing_timezone"
    INVALID_URL = "invalid_url"
    INVALID_TICKER = "invalid_ticker"
    INVALID_KEY = "invalid_key"
    INVALID_VALUE = "invalid_value"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    INVALID_LABEL = "invalid_label"
    SCORING_FAILED = "scoring_failed"


@dataclass(frozen=True, slots=True)
class ReasonDoc:
    """Documentation of one reason: what it means, which stage emits it, and an example value (bytes)."""

    meaning: str
    stage: str
    example: bytes | None


_OK = b'"id": "1", "published_at": "2014-01-02T15:04:05Z"'
"""Valid fields shared by the examples below."""

REASON_DOCS: dict[DlqReason, ReasonDoc] = {
    DlqReason.MESSAGE_TOO_LARGE: ReasonDoc(
        "the value is longer than `ingest.scorer.max_message_bytes` (default 65,536 bytes)",
        "scorer",
        b'{"id": "1", "text": "' + b"x" * 70_000 + b'", ...}',
    ),
    DlqReason.EMPTY_MESSAGE: ReasonDoc("the value is empty or null (a tombstone)", "scorer", b""),
    DlqReason.INVALID_UTF8: ReasonDoc("the value is not valid UTF-8", "scorer", b'{"id": "1", "text": "caf\xe9"}'),
    DlqReason.INVALID_JSON: ReasonDoc(
        "not one JSON document (syntax error, trailing data, NaN/Infinity, nesting too deep)",
        "scorer",
        b'{"id": "1", "text": "unterminated',
    ),
    DlqReason.DUPLICATE_FIELD: ReasonDoc(
        "the same key appears twice in the object (ambiguous)", "scorer", b'{"id": "1", "id": "2", "text": "hi"}'
    ),
    DlqReason.NOT_AN_OBJECT: ReasonDoc("valid JSON, but not an object", "scorer", b'["id", "text"]'),
    DlqReason.MISSING_FIELD: ReasonDoc(
        "a required field (`id`, `text`, `published_at`) is absent or null",
        "scorer",
        b'{"id": "1", "text": "Apple beats estimates"}',
    ),
    DlqReason.UNKNOWN_FIELD: ReasonDoc(
        "a field outside the contract (`ingest/news_raw.schema.json` allows no others)",
        "scorer",
        b"{" + _OK + b', "text": "hi", "sentiment": "positive"}',
    ),
    DlqReason.WRONG_TYPE: ReasonDoc(
        "a field has the wrong JSON type (number id, object text, string tickers, ...)",
        "scorer",
        b'{"id": 1, "text": "hi", "published_at": "2014-01-02T15:04:05Z"}',
    ),
    DlqReason.INVALID_ID: ReasonDoc(
        "`id` is empty, holds whitespace, or is longer than 256 characters",
        "scorer",
        b'{"id": "tweet 1", "text": "hi", "published_at": "2014-01-02T15:04:05Z"}',
    ),
    DlqReason.EMPTY_TEXT: ReasonDoc(
        "`text` is empty or whitespace only, also after decoding entities and removing URLs",
        "scorer",
        b"{" + _OK + b', "text": "  https://t.co/x1 "}',
    ),
    DlqReason.TEXT_TOO_LONG: ReasonDoc(
        "`text` is longer than 10,000 characters", "scorer", b"{" + _OK + b', "text": "' + b"a" * 10_001 + b'"}'
    ),
    DlqReason.CONTROL_CHARACTERS: ReasonDoc(
        "a string holds a C0 control character (U+0000-U+001F) other than tab, line feed, carriage return"
        " (C1 controls and DEL, mojibake in real feeds, are removed from the text instead)",
        "scorer",
        b"{" + _OK + b', "text": "beats\\u0000estimates"}',
    ),
    DlqReason.INVALID_UNICODE: ReasonDoc(
        "a string holds a lone surrogate escape that is not a character", "scorer", b"{" + _OK + b', "text": "\\ud800"}'
    ),
    DlqReason.BAD_TIMESTAMP: ReasonDoc(
        "`published_at` is not an ISO-8601 date-time, lies before 1970, or lies more than"
        " `ingest.scorer.max_future_seconds` (default 600 s, the clock skew tolerated) after the scorer's clock",
        "scorer",
        b'{"id": "1", "text": "hi", "published_at": "yesterday"}',
    ),
    DlqReason.MISSING_TIMEZONE: ReasonDoc(
        "`published_at` has no UTC offset (`Z` or `+hh:mm`)",
        "scorer",
        b'{"id": "1", "text": "hi", "published_at": "2014-01-02T15:04:05"}',
    ),
    DlqReason.INVALID_URL: ReasonDoc(
        "`url` is not an absolute http(s) URL of at most 2,048 characters",
        "scorer",
        b"{" + _OK + b', "text": "hi", "url": "javascript:alert(1)"}',
    ),
    DlqReason.INVALID_TICKER: ReasonDoc(
        "a ticker is not a symbol (letters, digits, one `.` or `-` class suffix), or more than 64 tickers",
        "scorer",
        b"{" + _OK + b', "text": "hi", "tickers": ["AAPL", "not a ticker"]}',
    ),
    DlqReason.INVALID_KEY: ReasonDoc(
        "the aggregate key of a `sentiment.keyed` record is not `all`, `topic:<slug>` of one of the model's 20"
        " topics, or `ticker:<SYMBOL>` with a symbol as `tickers` allow (letters and digits, one `.` or `-`"
        " class suffix, at most 15 characters); e.g. `ticker:` + 5,000 letters, `ticker:$aapl`, `topic:x1`. An"
        " aggregator would otherwise hold (and export) a key per distinct string written to the topic",
        "aggregator",
        None,
    ),
    DlqReason.INVALID_VALUE: ReasonDoc(
        "another field value out of range (`source` longer than 200 characters)",
        "scorer",
        b"{" + _OK + b', "text": "hi", "source": "' + b"s" * 201 + b'"}',
    ),
    DlqReason.UNSUPPORTED_LANGUAGE: ReasonDoc(
        "`lang` is present and not in `ingest.scorer.allowed_langs` (default `en`); never guessed from the text",
        "scorer",
        b"{" + _OK + b', "text": "Apple supera las estimaciones", "lang": "es"}',
    ),
    DlqReason.INVALID_LABEL: ReasonDoc(
        "an analyst label on `news.labels` names no known topic or sentiment", "labels consumer", None
    ),
    DlqReason.SCORING_FAILED: ReasonDoc(
        "the model rejected a validated item (should not happen; the message holds the model's error)",
        "scorer",
        None,
    ),
}
"""One entry per :class:`DlqReason` (a test checks the keys are complete and each example gives its reason)."""


class InvalidRecord(ValueError):
    """A record that cannot be scored: ``reason`` (:class:`DlqReason`) and a human-readable ``message``."""

    def __init__(self, reason: DlqReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


def render_markdown() -> str:
    """``docs/dlq.md``: the reason catalogue as Markdown (examples longer than 120 bytes are abbreviated)."""
    lines = [
        "# Dead-letter reason codes (`news.dlq`)",
        "",
        "<!-- generated by `python -m finsentry.ingest.dlq > docs/dlq.md`; edit ingest/dlq.py instead -->",
        "",
        "Every record a stage cannot process goes to `news.dlq` with the original bytes as the value and the",
        "headers `reason` (one code below), `message` (what exactly was wrong), `source_topic`,",
        "`source_partition`, `source_offset`, and `value_truncated` (the original length in bytes) when only the",
        "first bytes of a huge value are copied: `ingest.scorer.dlq_max_value_bytes` for the scorer, 1 MiB for every",
        "other consumer (`ingest/consume_loop.py` `MAX_DLQ_VALUE_BYTES`).",
        "The scorer checks size, emptiness, UTF-8, JSON syntax, duplicate keys and object shape first, then the",
        "fields in contract order (`id`, `text`, `published_at`, `source`, `url`, `tickers`), then `lang`, then the",
        "text after normalization; a record gets the first reason found. The list is closed: adding a code is a",
        "contract change (`ingest/dlq.py`, this page, `docs/contracts.md`).",
        "The metric `finsentry_dead_letters_total{reason}` counts them.",
        "",
        "| reason | stage | meaning | example value |",
        "|---|---|---|---|",
    ]
    for reason in DlqReason:
        doc = REASON_DOCS[reason]
        if doc.example is None:
            example = "(see meaning)"
        else:
            text = doc.example.decode("utf-8", "backslashreplace")
            if len(text) > 120:
                text = text[:100] + f"... ({len(doc.example):,} bytes)"
            example = "`" + text.replace("|", "\\|") + "`" if text else "(empty)"
        lines.append(f"| `{reason.value}` | {doc.stage} | {doc.meaning} | {example} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
