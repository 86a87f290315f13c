"""``finsentry score``: score one text or a CSV / JSONL file of texts with the model, no Kafka (JSON lines out)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finsentry.cli_paths import nonempty_path
from finsentry.cli_settings import settings_from
from finsentry.common.textfiles import MAX_JSON_DEPTH, invalid_utf8_lines, kind_of

if TYPE_CHECKING:
    from finsentry.ingest.dlq import InvalidRecord


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


REJECTED_SHOWN = 20
"""Rejected input lines listed one by one by ``finsentry score --input`` (the rest are counted)."""

SKIPPED_LINES_SHOWN = 5
"""Line numbers named per dead-letter reason in ``finsentry score --input``'s summary (the rest are counted)."""


def _read_inputs(
    path: Path, text_column: str, time_column: str | None = None
) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """Rows of a ``.jsonl`` (one JSON object per line) or ``.csv`` (header row) file, and the rejected lines.

    Suffixes are matched case-insensitively; a UTF-8 byte-order mark is dropped (:mod:`finsentry.common.textfiles`).
    Returns ``(rows, rejected)``: ``rows`` holds ``(line number, row)`` (the line a CSV record starts on), and
    ``rejected`` holds ``(line number, reason)`` of JSONL lines that are not
    JSON, not a JSON object, nested too deeply, hold a number of more than 4300 digits or a lone surrogate
    (blank lines are skipped). Raises :class:`typer.Exit` (2, with a message naming the file and line) if the
    file is missing or a directory, has another suffix, is not readable CSV, or no row has ``text_column`` or
    (when given) ``time_column`` (a CSV header without it, or JSONL objects of which none has that field).
    """
    from finsentry.common.textfiles import BadLine, csv_header, describe_path_problem, iter_csv_rows, iter_json_lines

    needed = [(text_column, "text", "--text-column")]
    if time_column is not None:
        needed.append((time_column, "event-time", "--time-column"))
    problem = describe_path_problem(path)
    if problem is not None:
        raise _fail(problem)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows: list[tuple[int, dict]] = []
        rejected: list[tuple[int, str]] = []
        for n, value in iter_json_lines(path, errors="replace"):
            if isinstance(value, BadLine):
                rejected.append((n, value.reason))
            elif not isinstance(value, dict):
                rejected.append((n, f"expected a JSON object, got {kind_of(value, 'a string')}"))
            else:
                rows.append((n, value))
        for column, what, option in needed:
            if rows and not any(column in row for _, row in rows):
                fields = sorted({str(k) for _, row in rows for k in row})
                shown = ", ".join(fields[:20]) + (f" (+{len(fields) - 20} more)" if len(fields) > 20 else "")
                raise _fail(
                    f"{path}: no line has a field {column!r} (fields: {shown or 'none'}); "
                    f"name the {what} field with {option}"
                )
        return rows, rejected
    if suffix == ".csv":
        try:
            columns = csv_header(path, errors="replace")
            for column, what, option in needed:
                if columns and column not in columns:
                    raise _fail(
                        f"{path}: no column {column!r} in the header (columns: {', '.join(columns)}); "
                        f"name the {what} column with {option}"
                    )
            return list(iter_csv_rows(path, errors="replace")), []
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    raise _fail(f"{path}: expected a .csv or .jsonl file")


def _same_file(a: Path, b: Path) -> bool:
    """True if writing ``b`` would overwrite the regular file ``a`` (or both name one file not yet there): the same
    inode, or, for a path that does not exist, the same resolved path. A device or pipe both name (``/dev/stdout``
    on a terminal) is not a clash: each write goes through in turn.
    """
    import os
    import stat

    try:
        return os.path.samefile(a, b) and stat.S_ISREG(os.stat(a).st_mode)
    except OSError:  # one of them is not there (yet)
        return a.resolve() == b.resolve()


def _path_clash(input: Path | None, output: Path | None, rejects: Path | None) -> str | None:
    """Why ``--input``, ``--output`` and ``--rejects`` cannot be used together, or None: two of them name one file.
    Writing the input would erase it (score reads it whole first, so the run itself looks fine), and
    ``--output`` and ``--rejects`` on one file would each overwrite the other's lines from offset 0.

    >>> _path_clash(Path("in.csv"), Path("./in.csv"), None)
    '--output in.csv is the --input file: writing it would erase the input; name another file'
    >>> _path_clash(Path("in.csv"), Path("out.jsonl"), Path("rejects.jsonl")) is None
    True
    """
    named = [(opt, path) for opt, path in (("--input", input), ("--output", output), ("--rejects", rejects)) if path]
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if _same_file(a, b):
                if first == "--input":
                    return f"{second} {b} is the --input file: writing it would erase the input; name another file"
                return f"{first} and {second} name one file ({b}): the rejects would overwrite the scored rows"
    return None


def _with_id(row: dict, text: str) -> dict:
    """``row`` with an ``id`` first when it has none but a readable, zoned ``published_at``: the id a replay of the
    same row gets (:func:`finsentry.ingest.replay_source.derived_id`), so ``finsentry report --input`` (which
    needs ids to count each story once) reads the output and a row scored twice keeps its id.

    >>> _with_id({"text": "Shares plunge", "published_at": "2015-08-24T10:00:00Z"}, "Shares plunge")["id"]
    'auto-0eef8a2cd7886177'
    """
    from finsentry.ingest.contract import iso_utc
    from finsentry.ingest.replay_source import derived_id, parse_event_time

    if row.get("id") not in (None, ""):
        return row
    event_time = parse_event_time(row.get("published_at"))
    return row if event_time is None else {"id": derived_id(iso_utc(event_time), text)} | row


def _event_time(row: dict, column: str, assume_utc: bool) -> str:
    """The row's event time in ``column`` as ISO-8601 UTC text (``2023-03-10T18:43:00Z``), read as ``finsentry
    replay`` reads its time column (:func:`finsentry.ingest.replay_source.parse_event_time`): ISO-8601 with a zone
    (``Z``, ``+01:00``), or without one (a date ``2018-12-24``: midnight) as UTC only when ``assume_utc``.

    >>> _event_time({"ts": "2023-03-10T13:43:00-05:00"}, "ts", False)
    '2023-03-10T18:43:00Z'
    >>> _event_time({"date": "2018-12-24"}, "date", True)
    '2018-12-24T00:00:00Z'

    Raises:
        ValueError: why the value is not readable, naming the column and value (for the skipped-rows summary).
    """
    from finsentry.ingest.contract import iso_utc
    from finsentry.ingest.replay_source import parse_event_time

    value = row.get(column)
    event_time = parse_event_time(value, assume_utc)
    if event_time is not None:
        return iso_utc(event_time)
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


def _record(row: dict, text_column: str, published_at: str | None) -> dict:
    """The output line's fields before the prediction: ``row`` with ``text`` = the text column's value when that
    column has another name (``news.scored`` and the report's evidence read ``text``; the column itself is kept,
    and a row's own ``text`` field is replaced, as a replay with ``--map text=COLUMN`` replaces it),
    ``published_at`` = the event time read (ISO UTC; None: the row's own, if any, as given), and the id a replay
    gives it when it has none (:func:`_with_id`).

    >>> _record({"title": "Shares plunge", "ts": "x"}, "title", "2015-08-24T10:00:00Z")
    {'id': 'auto-0eef8a2cd7886177', 'title': 'Shares plunge', 'ts': 'x', 'published_at': '2015-08-24T10:00:00Z', \
'text': 'Shares plunge'}
    """
    out = row if published_at is None else row | {"published_at": published_at}
    if text_column != "text":
        out = out | {"text": row[text_column]}
    return _with_id(out, row[text_column])


def _company_map(settings):
    """The company name -> ticker map of ``ingest.company_table`` (None without one), loaded as the live scorer
    loads it (:func:`finsentry.ingest.scorer_setup.load_company_table`).

    Raises:
        typer.Exit: the table cannot be read (2, naming the setting).
    """
    from finsentry.ingest.scorer_setup import CompanyTableError, load_company_table

    try:
        return load_company_table(settings.ingest.company_table)
    except CompanyTableError as exc:
        raise _fail(f"ingest.company_table (env FINSENTRY_INGEST__COMPANY_TABLE): {exc}") from exc


def _readable_tickers(given: object) -> bool:
    """True if a row's ``tickers`` is absent, one CSV cell (text) or a list of text: what ``score`` reads as tickers
    (:func:`finsentry.ingest.replay_source.tickers_from_cell`); anything else is left as it is, for the report to
    name."""
    return (
        given is None or isinstance(given, str) or (isinstance(given, list) and all(isinstance(t, str) for t in given))
    )


def _check_live(row: dict, text_column: str) -> None:
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
    if given is not None and _readable_tickers(given):
        fields["tickers"] = tickers_from_cell(given)  # the list a replay of the row sends
    check_given_fields(fields)


def _as_live(row: dict, text_column: str, companies, max_tickers: int) -> tuple[dict, str]:
    """``(row, text to score)`` as the live scorer sees the row. The text is the normalized one (entities decoded,
    links removed: :func:`finsentry.ingest.validation.text_and_tickers`). The row's ``tickers`` are its own (a list
    or a CSV cell; cleaned as ``news.raw`` cleans them: ``$aapl`` -> ``AAPL``, repeats dropped), then the cashtags
    and company names of the text, at most ``max_tickers``; a row whose ``tickers`` is neither keeps it as it is
    (the report names it). The row's own text field is left as given.

    Raises:
        InvalidRecord: ``empty_text``, no text left (only links, entities or invisible characters).
    """
    from finsentry.ingest.normalize import clean_ticker
    from finsentry.ingest.replay_source import tickers_from_cell
    from finsentry.ingest.validation import text_and_tickers

    given = row.get("tickers")
    readable = _readable_tickers(given)
    # cleaned as news.raw cleans them ($aapl -> AAPL), so repeats go and the cap counts distinct symbols; one left
    # empty stays as given for the report to name
    symbols = [clean_ticker(t) or t for t in tickers_from_cell(given)] if readable else []
    norm, found = text_and_tickers(row[text_column], symbols, companies)
    out = dict(row)
    if readable and (found or given is not None):
        out["tickers"] = found[:max_tickers]
    return out, norm.text


def _named(prediction: dict) -> dict:
    """A prediction dict with ``sentiment_probs`` as ``{"negative": p, "neutral": p, "positive": p}`` (not a list).

    >>> _named({"sentiment_probs": [0.7, 0.2, 0.1]})["sentiment_probs"]
    {'negative': 0.7, 'neutral': 0.2, 'positive': 0.1}
    """
    from finsentry.model.labels import SENTIMENT_LABELS

    probs = prediction.get("sentiment_probs")
    if isinstance(probs, list | tuple):
        prediction = prediction | {"sentiment_probs": dict(zip(SENTIMENT_LABELS, probs, strict=True))}
    return prediction


def _skipped_lines(dead: list[tuple[int, dict, InvalidRecord]], text_column: str) -> list[str]:
    """One summary line per dead-letter reason of the rows ``score`` skipped, in :class:`DlqReason` order: how
    many, the first :data:`SKIPPED_LINES_SHOWN` line numbers, and the first row's message.

    >>> from finsentry.ingest.dlq import DlqReason, InvalidRecord
    >>> long = InvalidRecord(DlqReason.TEXT_TOO_LONG, "text: String should have at most 10000 characters")
    >>> _skipped_lines([(3, {}, long), (9, {}, long)], "text")[0]
    'skipped 2 rows: the live scorer dead-letters them (text_too_long; lines 3, 9; first: text: String should \
have at most 10000 characters)'
    """
    from finsentry.ingest.dlq import DlqReason

    found: dict[DlqReason, list[tuple[int, str]]] = {}
    for line, _, problem in dead:
        found.setdefault(problem.reason, []).append((line, problem.message))
    out = []
    for reason in (r for r in DlqReason if r in found):
        where = ", ".join(str(line) for line, _ in found[reason][:SKIPPED_LINES_SHOWN])
        more = len(found[reason]) - SKIPPED_LINES_SHOWN
        where = f"line{'s' if len(found[reason]) > 1 else ''} {where}{f' and {more} more' if more > 0 else ''}"
        if reason is DlqReason.EMPTY_TEXT:
            what, first = f" whose '{text_column}' is only links, entities or invisible characters", ""
        else:
            what, first = "", f"; first: {found[reason][0][1]}"
        out.append(
            f"skipped {len(found[reason])} rows{what}: the live scorer dead-letters them ({reason}; {where}{first})"
        )
    return out


def _untimed_line(untimed: list[tuple[int, dict, str]], time_column: str) -> str:
    """The summary line of the rows ``score`` skipped for an event time it cannot read (``(line, row, why)``): how
    many, the first :data:`SKIPPED_LINES_SHOWN` line numbers and the first row's reason.

    >>> _untimed_line([(2, {}, "no value in 'ts'")], "ts")
    "skipped 1 rows without a readable event time in 'ts' (finsentry replay skips them too; line 2; first: no \
value in 'ts')"
    """
    where = ", ".join(str(line) for line, _, _ in untimed[:SKIPPED_LINES_SHOWN])
    more = len(untimed) - SKIPPED_LINES_SHOWN
    where = f"line{'s' if len(untimed) > 1 else ''} {where}{f' and {more} more' if more > 0 else ''}"
    return (
        f"skipped {len(untimed)} rows without a readable event time in {time_column!r} (finsentry replay skips them "
        f"too; {where}; first: {untimed[0][2]})"
    )


def _no_event_time(rows: list[tuple[int, dict]], time_column: str, assume_utc: bool) -> str | None:
    """Why no row of ``rows`` (``(line, row)``) has an event time :func:`_event_time` reads, or None when one has
    (checked before the model loads: every row would be skipped, as ``finsentry replay`` refuses such a file).

    >>> _no_event_time([(2, {"date": "2018-12-24"})], "date", False)  # doctest: +ELLIPSIS
    "no row has a readable event time in 'date' (first: line 2: 'date' '2018-12-24' has no time zone: add ..."
    """
    first = None
    for line, row in rows:
        try:
            _event_time(row, time_column, assume_utc)
            return None
        except ValueError as exc:
            first = first or f"line {line}: {exc}"
    return None if first is None else f"no row has a readable event time in {time_column!r} (first: {first})"


def _report_time_lines(timed: bool, scored: int, with_time: int, unread: list[tuple[int, str]]) -> list[str]:
    """Notes on what ``finsentry report`` will make of the output when no time column was named (``timed``
    False): it needs a zoned ``published_at`` (and the id score derives from it), so say when no scored row has
    one, or how many have one it cannot read (``unread``: ``(line, why)``, first in input order).

    >>> _report_time_lines(False, 3, 0, [])[0][:78]
    'note: no scored row has a published_at, which finsentry report needs: name the'
    """
    if timed or not scored:
        return []
    out = []
    if unread:
        line, why = unread[0]
        out.append(
            f"warning: {len(unread)} scored rows have a published_at that finsentry report cannot read: it skips "
            f"them (first: line {line}: {why})"
        )
    elif not with_time:
        out.append(
            "note: no scored row has a published_at, which finsentry report needs: name the input's event-time "
            "column with --time-column COLUMN (and add --assume-utc for times without a zone) to write it"
        )
    return out


LANGS_SHOWN = 5
"""Detected languages named, with their counts, in ``finsentry score --input``'s language warning."""


def _language_lines(declared: int, detected: Counter[str], scored: int, allowed: list[str]) -> list[str]:
    """The summary warnings about language: rows whose declared ``lang`` the live scorer dead-letters, and rows
    without one whose text reads as another language by detection (py3langid; the live scorer never detects,
    so those are scored live; the model, trained on English, may score them poorly).

    >>> from collections import Counter
    >>> _language_lines(0, Counter({"pcm": 20, "de": 6}), 4994, ["en"])[0][:97]
    'warning: 26 of 4994 scored rows look like another language by detection (py3langid: pcm 20, de 6)'
    """
    names = ", ".join(allowed)
    out = []
    if declared:
        out.append(
            f"warning: {declared} of {scored} scored rows declare a lang the live scorer dead-letters (not text, or "
            f"outside ingest.scorer.allowed_langs ({names})): see each row's warning field"
        )
    total = sum(detected.values())
    if total:
        top = ", ".join(f"{code} {n}" for code, n in detected.most_common(LANGS_SHOWN))
        rest = len(detected) - LANGS_SHOWN
        top += f" and {rest} more languages" if rest > 0 else ""
        out.append(
            f"warning: {total} of {scored} scored rows look like another language by detection (py3langid: {top}); "
            "the model is trained on English, so check their scores (each row's warning field); the live scorer "
            "goes by the declared lang, never by detection: it dead-letters only rows whose declared lang is "
            f"outside ingest.scorer.allowed_langs ({names})"
        )
    return out


def _write_rejects(
    path: Path,
    sink,
    dead: list[tuple[int, dict, InvalidRecord]],
    untimed: list[tuple[int, dict, str]],
    scored: int,
) -> None:
    """Write the skipped rows to ``sink`` (``path`` opened for writing), one JSON line each in input order:
    ``line`` (of the input), ``reason`` (the dead-letter code, or ``unreadable_event_time``, replay's name, for a
    row of ``untimed``), ``message`` and ``row`` (the row as read); then close it.

    Raises:
        typer.Exit: 1, the file cannot be written (the message says the scored rows were written).
    """
    skipped = [(line, row, str(problem.reason), problem.message) for line, row, problem in dead]
    skipped += [(line, row, "unreadable_event_time", why) for line, row, why in untimed]
    try:
        with sink:
            for line, row, reason, message in sorted(skipped, key=lambda s: s[0]):
                record = {"line": line, "reason": reason, "message": message, "row": row}
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise _fail(
            f"cannot write --rejects {path}: {exc.strerror or exc}; the {scored} scored rows were written", 1
        ) from exc


def score_cmd(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="one text to score")] = None,
    input: Annotated[
        Path | None, typer.Option("--input", parser=nonempty_path("--input"), help="CSV or JSONL file of texts")
    ] = None,
    text_column: Annotated[str, typer.Option(help="column / field holding the text")] = "text",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "--out",
            parser=nonempty_path("--output"),
            help="JSONL output (default: stdout); `finsentry report --input` reads it (with --time-column)",
        ),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            parser=nonempty_path("--rejects"),
            help="JSONL file of the rows skipped because the live scorer dead-letters them, each with its reason",
        ),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            help="event-time column / field (ISO-8601, as finsentry replay's --time-column): written as "
            "published_at (ISO UTC) with the id a replay gives the row; rows without a readable time are skipped"
        ),
    ] = None,
    assume_utc: Annotated[
        bool, typer.Option(help="read event times without a zone (a date only: midnight) as UTC, as replay does")
    ] = False,
) -> None:
    """Score one text or a file of texts with the model (no Kafka); prints / writes JSON lines.

    It scores what the live scorer scores: the text with entities decoded and links removed, and it skips (a
    file's row) or refuses (TEXT, exit 2) what the live scorer dead-letters for its text or tickers, by the
    contract's own checks: no text left after that (``empty_text``), more than 10,000 characters
    (``text_too_long``), a control character such as NUL (``control_characters``), a ticker that is not a symbol or
    more than 64 of them (``invalid_ticker``). A row's ``id`` and ``published_at`` are not required. Each line
    keeps the row's fields and has the text column's value under ``text`` too (as ``news.scored``; the report's
    evidence reads it).

    ``--time-column COLUMN`` (and ``--assume-utc``, for times without a zone, a date only included) read the
    event time as ``finsentry replay`` reads it: each line gets ``published_at`` (ISO UTC) and, without an
    ``id``, the one a replay gives the row, so ``finsentry report --input`` reads the output; a row whose time
    cannot be read is skipped and counted with its reason, and a file of which no row has one is refused (exit 2,
    before scoring). Without them, a row's own ``published_at`` is kept as given.

    Each line also says the language of the scored text: ``detected_lang`` and ``detected_lang_confidence``
    (py3langid), and a ``warning`` when the live scorer would not score the text: a row's ``lang`` field outside
    ``ingest.scorer.allowed_langs`` (the scorer dead-letters it), or, without one, a text read with confidence
    0.5 or more as a language outside them (the scorer goes by the declared ``lang`` and never guesses, so it
    scores such a row: the warning says the text may not be English, which the model is trained on). The
    warnings are also counted (declared and detected apart, the detected languages named), or for one TEXT
    printed, on standard error.

    With ``--input``: exit 0 if every line was read, 1 if some JSONL lines were rejected (not JSON, not a
    JSON object, nested too deeply, a number of more than 4300 digits or a lone surrogate; listed with their
    line numbers; every other row is scored) or writing ``--output`` or ``--rejects`` failed part way (the message
    says how many rows were written), 2 on a bad file, a text or time column / field no row has (or no readable
    time in it), an unwritable
    ``--output`` or ``--rejects``, or two of ``--input``, ``--output`` and ``--rejects`` naming one file (nothing
    is written). Rows without a non-empty text are skipped and counted; rows the live scorer
    dead-letters are skipped and counted per reason, with their first line numbers (``--rejects FILE`` writes
    them, each with its ``line``, ``reason`` and ``message``). A row without an ``id`` but with a zoned
    ``published_at`` gets the id a replay would give it (``auto-`` + a hash of both). Lines that are not valid
    UTF-8 are read with U+FFFD in place of each bad byte, scored, and counted in a warning with the first line
    and byte (the live scorer dead-letters such an item as ``invalid_utf8``).
    """
    from tqdm import tqdm

    from finsentry.ingest.dlq import DlqReason, InvalidRecord
    from finsentry.ingest.language import language_check
    from finsentry.model.scorer import ModelLoadError, Scorer

    if (text is None) == (input is None):
        raise _fail("give either TEXT or --input FILE")
    if text is not None and not text.strip():
        raise _fail("TEXT is empty")
    if text is not None and rejects is not None:
        raise _fail("--rejects goes with --input FILE, not with one TEXT")
    if text is not None and (time_column is not None or assume_utc):
        raise _fail("--time-column and --assume-utc go with --input FILE, not with one TEXT")
    settings = settings_from(ctx)
    timed = time_column is not None or assume_utc  # event times read, rewritten as ISO UTC, unreadable ones skipped
    time_column = time_column or "published_at"  # replay's default column
    read_time = time_column if timed else None  # a column that must be there
    rows, rejected = _read_inputs(input, text_column, read_time) if input is not None else ([], [])
    clash = _path_clash(input, output, rejects)
    if clash is not None:
        raise _fail(clash)
    if timed:
        nothing = _no_event_time(rows, time_column, assume_utc)
        if nothing is not None:
            raise _fail(f"{input}: {nothing}; nothing was scored")
    not_utf8 = invalid_utf8_lines(input) if input is not None else []
    try:
        scorer = Scorer.from_settings(settings.model)
    except ModelLoadError as exc:
        raise _fail(str(exc)) from exc
    allowed = settings.ingest.scorer.allowed_langs
    companies = _company_map(settings)
    max_tickers = settings.ingest.scorer.max_tickers_per_item
    if text is not None:
        try:
            _check_live({"text": text}, "text")
            row, scored_text = _as_live({"text": text}, "text", companies, max_tickers)
        except InvalidRecord as exc:
            if exc.reason is DlqReason.EMPTY_TEXT:
                raise _fail("TEXT is only links, entities or invisible characters: nothing to score") from exc
            raise _fail(f"TEXT: the live scorer dead-letters it ({exc})") from exc
        lang = language_check(scored_text, allowed)
        typer.echo(json.dumps(row | _named(scorer.predict([scored_text])[0].to_dict()) | lang))
        if "warning" in lang:
            typer.echo(f"warning: {lang['warning']}", err=True)
        return
    try:
        sink = rejects.open("w", encoding="utf-8") if rejects else None
    except OSError as exc:
        raise _fail(f"cannot write --rejects {rejects}: {exc.strerror or exc}; nothing was scored") from exc
    try:
        out = output.open("w", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        if sink is not None:
            sink.close()
        raise _fail(f"cannot write --output {output}: {exc.strerror or exc}; nothing was scored") from exc
    scored = skipped = written = declared_flagged = with_time = 0
    finished = False
    dead: list[tuple[int, dict, InvalidRecord]] = []  # (line, row, why) of the rows the live scorer dead-letters
    untimed: list[tuple[int, dict, str]] = []  # (line, row, why) of the rows skipped for their event time
    unread: list[tuple[int, str]] = []  # (line, why) of the scored rows whose own published_at is not readable
    detected: Counter[str] = Counter()  # languages read by detection only, outside allowed_langs
    from_csv = input is not None and input.suffix.lower() == ".csv"
    try:
        for start in tqdm(range(0, len(rows), 256), desc="scoring", unit="batch", disable=output is None):
            ready: list[tuple[dict, str]] = []
            times: list[str | None] = []
            for line, row in rows[start : start + 256]:
                if not (isinstance(row.get(text_column), str) and row[text_column].strip()):
                    skipped += 1
                    continue
                published_at = why = None  # without a time column, the row's own published_at is kept as given
                try:
                    published_at = _event_time(row, time_column, assume_utc)
                except ValueError as exc:
                    if timed:
                        untimed.append((line, row, str(exc)))
                        continue
                    why = None if row.get(time_column) in (None, "") else str(exc)
                try:
                    _check_live(row, text_column)
                    ready.append(_as_live(row, text_column, companies, max_tickers))
                    times.append(published_at)
                    if why is not None:
                        unread.append((line, why))
                except InvalidRecord as exc:
                    # a fresh copy: the caught one pins its traceback's frames (~2.4 KB a row, 1.1 GB RSS for
                    # 200,000 such rows)
                    dead.append((line, row, InvalidRecord(exc.reason, exc.message)))
            predictions = scorer.predict([t for _, t in ready])
            for (row, scored_text), published_at, pred in zip(ready, times, predictions, strict=True):
                declared = row.get("lang")
                if from_csv and declared == "":  # an empty CSV cell declares nothing (a replay drops it too)
                    declared = None
                lang = language_check(scored_text, allowed, declared)
                if "warning" in lang and declared is not None:
                    declared_flagged += 1
                elif "warning" in lang:
                    detected[lang["detected_lang"]] += 1
                with_time += published_at is not None
                record = _record(row, text_column, published_at if timed else None) | _named(pred.to_dict()) | lang
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                scored += 1
            out.flush()  # so that a full disk is noticed here, with an exact count of the rows written
            written = scored
        if output:
            out.close()
        finished = True
    except OSError as exc:
        if output:
            with contextlib.suppress(OSError):
                out.close()
        where = f"--output {output}" if output else "standard output"
        raise _fail(
            f"cannot write {where}: {exc.strerror or exc}; {written} scored rows were written before the error "
            f"(of {len(rows)} rows read)",
            1,
        ) from exc
    finally:
        if output and not out.closed:
            with contextlib.suppress(OSError):
                out.close()
        if sink is not None and not finished:
            with contextlib.suppress(OSError):
                sink.close()
    if sink is not None:
        _write_rejects(rejects, sink, dead, untimed, scored)
    typer.echo(f"scored {scored}, skipped {skipped} rows without a non-empty '{text_column}'", err=True)
    if untimed:
        typer.echo(_untimed_line(untimed, time_column), err=True)
    for summary in _skipped_lines(dead, text_column):
        typer.echo(summary, err=True)
    for summary in _report_time_lines(timed, scored, with_time, unread):
        typer.echo(summary, err=True)
    for summary in _language_lines(declared_flagged, detected, scored, allowed):
        typer.echo(summary, err=True)
    if not_utf8:
        line, where = not_utf8[0]
        typer.echo(
            f"warning: {len(not_utf8)} lines of {input} are not valid UTF-8 (first: line {line}, {where}); each bad "
            "byte was read as U+FFFD and the rows were scored; the live scorer would dead-letter them (invalid_utf8)",
            err=True,
        )
    if rejected:
        for line, reason in rejected[:REJECTED_SHOWN]:
            typer.echo(f"  {input}:{line}: {reason}", err=True)
        more = len(rejected) - REJECTED_SHOWN
        typer.echo(
            f"rejected {len(rejected)} lines of {input}{f' ({more} more not shown)' if more > 0 else ''}; "
            f"each line must be one JSON object (valid text, at most {MAX_JSON_DEPTH} levels deep)",
            err=True,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``score`` to the top-level app."""
    app.command("score")(score_cmd)
