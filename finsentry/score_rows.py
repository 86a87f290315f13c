"""Row preparation for ``finsentry score --input``: one input row as the live scorer would see it, and the output line.

A row is a ``dict`` as read from a CSV (text cells) or JSONL (JSON values) file. This module reads its event time
as ``finsentry replay`` reads it, refuses what the live scorer dead-letters for its text or tickers, gives the
text to score and the row's tickers as the live scorer gives them, and assembles the output line's fields. It
prints nothing and exits nothing: errors are raised for ``finsentry score`` (:mod:`finsentry.cli_score`) to count.
Imports of the rooms below are inside the functions, so that the CLI starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finsentry.common.textfiles import kind_of

if TYPE_CHECKING:
    from finsentry.ingest.company_tickers import CompanyTickerMap


def event_time(row: dict, column: str, assume_utc: bool) -> str:
    """The row's event time in ``column`` as ISO-8601 UTC text (``2023-03-10T18:43:00Z``), read as ``finsentry
    replay`` reads its time column (:func:`finsentry.ingest.replay_source.parse_event_time`): ISO-8601 with a zone
    (``Z``, ``+01:00``), or without one (a date ``2018-12-24``: midnight) as UTC only when ``assume_utc``.

    >>> event_time({"ts": "2023-03-10T13:43:00-05:00"}, "ts", False)
    '2023-03-10T18:43:00Z'
    >>> event_time({"date": "2018-12-24"}, "date", True)
    '2018-12-24T00:00:00Z'

    Raises:
        ValueError: why the value is not readable, naming the column and value (for the skipped-rows summary).
    """
    from finsentry.ingest.contract import iso_utc
    from finsentry.ingest.replay_source import parse_event_time

    value = row.get(column)
    parsed = parse_event_time(value, assume_utc)
    if parsed is not None:
        return iso_utc(parsed)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"no value in {column!r}")
    if not isinstance(value, str):
        raise ValueError(f"{column!r} is {kind_of(value)}, not ISO-8601 text")
    shown = repr(value[:40] + ("..." if len(value) > 40 else ""))
    if parse_event_time(value, assume_utc=True) is not None:
        raise ValueError(
            f"{column!r} {shown} has no time zone: add --assume-utc to read such times as UTC (as finsentry replay "
            "does)"
        )
    raise ValueError(f"{column!r} {shown} is not an ISO-8601 time (such as 2023-03-10T18:43:00Z)")


def why_no_event_time(rows: list[tuple[int, dict]], time_column: str, assume_utc: bool) -> str | None:
    """Why no row of ``rows`` (``(line, row)``) has an event time :func:`event_time` reads, or None when one has
    (checked before the model loads: every row would be skipped, as ``finsentry replay`` refuses such a file).

    >>> why_no_event_time([(2, {"date": "2018-12-24"})], "date", False)  # doctest: +ELLIPSIS
    "no row has a readable event time in 'date' (first: line 2: 'date' '2018-12-24' has no time zone: add ..."
    """
    first = None
    for line, row in rows:
        try:
            event_time(row, time_column, assume_utc)
            return None
        except ValueError as exc:
            first = first or f"line {line}: {exc}"
    return None if first is None else f"no row has a readable event time in {time_column!r} (first: {first})"


def with_replay_id(row: dict, text: str) -> dict:
    """``row`` with an ``id`` first when it has none but a readable, zoned ``published_at``: the id a replay of the
    same row gets (:func:`finsentry.ingest.replay_source.derived_id`), so ``finsentry report --input`` (which
    needs ids to count each story once) reads the output and a row scored twice keeps its id.

    >>> with_replay_id({"text": "Shares plunge", "published_at": "2015-08-24T10:00:00Z"}, "Shares plunge")["id"]
    'auto-0eef8a2cd7886177'
    """
    from finsentry.ingest.contract import iso_utc
    from finsentry.ingest.replay_source import derived_id, parse_event_time

    if row.get("id") not in (None, ""):
        return row
    parsed = parse_event_time(row.get("published_at"))
    return row if parsed is None else {"id": derived_id(iso_utc(parsed), text)} | row


def output_record(row: dict, text_column: str, published_at: str | None) -> dict:
    """The output line's fields before the prediction: ``row`` with ``text`` = the text column's value when that
    column has another name (``news.scored`` and the report's evidence read ``text``; the column itself is kept,
    and a row's own ``text`` field is replaced, as a replay with ``--map text=COLUMN`` replaces it),
    ``published_at`` = the event time read (ISO UTC; None: the row's own, if any, as given), and the id a replay
    gives it when it has none (:func:`with_replay_id`).

    >>> output_record({"title": "Shares plunge", "ts": "x"}, "title", "2015-08-24T10:00:00Z")
    {'id': 'auto-0eef8a2cd7886177', 'title': 'Shares plunge', 'ts': 'x', 'published_at': '2015-08-24T10:00:00Z', \
'text': 'Shares plunge'}
    """
    out = row if published_at is None else row | {"published_at": published_at}
    if text_column != "text":
        out = out | {"text": row[text_column]}
    return with_replay_id(out, row[text_column])


def named_probs(prediction: dict) -> dict:
    """A prediction dict with ``sentiment_probs`` as ``{"negative": p, "neutral": p, "positive": p}`` (not a list).

    >>> named_probs({"sentiment_probs": [0.7, 0.2, 0.1]})["sentiment_probs"]
    {'negative': 0.7, 'neutral': 0.2, 'positive': 0.1}
    """
    from finsentry.model.labels import SENTIMENT_LABELS

    probs = prediction.get("sentiment_probs")
    if isinstance(probs, list | tuple):
        prediction = prediction | {"sentiment_probs": dict(zip(SENTIMENT_LABELS, probs, strict=True))}
    return prediction


def readable_tickers(given: object) -> bool:
    """True if a row's ``tickers`` is absent, one CSV cell (text) or a list of text: what ``score`` reads as tickers
    (:func:`finsentry.ingest.replay_source.tickers_from_cell`); anything else is left as it is, for the report to
    name.

    >>> readable_tickers("AAPL;MSFT"), readable_tickers(["AAPL"]), readable_tickers([1])
    (True, True, False)
    """
    return (
        given is None or isinstance(given, str) or (isinstance(given, list) and all(isinstance(t, str) for t in given))
    )


def check_live(row: dict, text_column: str) -> None:
    """Refuse a row the live scorer would dead-letter for its text or tickers, by the contract's own checks
    (:func:`finsentry.ingest.validation.check_given_fields`): a text over 10,000 characters, a C0 control
    character (a NUL byte, ...), a ticker that is not a symbol, more than 64 tickers. The row's ``id``,
    ``published_at`` and other fields are not checked (a file of texts needs none; a replay derives them); a
    declared ``lang`` is warned about instead (:func:`finsentry.ingest.language.language_check`).

    Raises:
        InvalidRecord: the reason code and message the live scorer would give.
    """
    from finsentry.ingest.replay_source import tickers_from_cell
    from finsentry.ingest.validation import check_given_fields

    given = row.get("tickers")
    fields = {"text": row[text_column]}
    if given is not None and readable_tickers(given):
        fields["tickers"] = tickers_from_cell(given)  # the list a replay of the row sends
    check_given_fields(fields)


def as_live(row: dict, text_column: str, companies: CompanyTickerMap | None, max_tickers: int) -> tuple[dict, str]:
    """``(row, text to score)`` as the live scorer sees the row. The text is the normalized one (entities decoded,
    links removed: :func:`finsentry.ingest.validation.text_and_tickers`). The row's ``tickers`` are its own (a list
    or a CSV cell; cleaned as ``news.raw`` cleans them: ``$aapl`` -> ``AAPL``, repeats dropped), then the cashtags
    and company names of the text (``companies``: the ``ingest.company_table`` map; None: no company names),
    at most ``max_tickers``; a row whose ``tickers`` is neither keeps it as it is (the report names it). The row's
    own text field is left as given.

    Raises:
        InvalidRecord: ``empty_text``, no text left (only links, entities or invisible characters).
    """
    from finsentry.ingest.normalize import clean_ticker
    from finsentry.ingest.replay_source import tickers_from_cell
    from finsentry.ingest.validation import text_and_tickers

    given = row.get("tickers")
    readable = readable_tickers(given)
    # cleaned as news.raw cleans them ($aapl -> AAPL), so repeats go and the cap counts distinct symbols; one left
    # empty stays as given for the report to name
    symbols = [clean_ticker(t) or t for t in tickers_from_cell(given)] if readable else []
    norm, found = text_and_tickers(row[text_column], symbols, companies)
    out = dict(row)
    if readable and (found or given is not None):
        out["tickers"] = found[:max_tickers]
    return out, norm.text
