"""``finsentry score``: score one text or a CSV / JSONL file of texts with the model, no Kafka (JSON lines out).

This module is the command: its options, the order of its steps and its exit codes. What it delegates:
reading the input and refusing clashing paths (:mod:`finsentry.score_inputs`), each row as the live scorer sees
it and the output line (:mod:`finsentry.score_rows`), the summary on standard error and the ``--rejects`` file
(:mod:`finsentry.score_summary`). The model, tqdm and the rooms below are imported inside the functions, so
that the CLI starts fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from finsentry.cli_paths import nonempty_path
from finsentry.cli_settings import settings_from
from finsentry.common.textfiles import invalid_utf8_lines
from finsentry.score_inputs import UnusableInput, path_clash, read_inputs
from finsentry.score_rows import as_live, check_live, event_time, named_probs, output_record, why_no_event_time
from finsentry.score_summary import (
    dead_letter_lines,
    invalid_utf8_line,
    language_lines,
    rejected_lines,
    report_time_lines,
    untimed_line,
    write_rejects,
)

if TYPE_CHECKING:
    from finsentry.ingest.company_tickers import CompanyTickerMap
    from finsentry.ingest.dlq import InvalidRecord
    from finsentry.model.scorer import Scorer
    from finsentry.settings import Settings

BATCH_ROWS = 256
"""Rows of an ``--input`` file scored per model call (and per progress-bar step, and per flush of the output)."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: MESSAGE`` on standard error; return the :class:`typer.Exit` (``code``) for the caller to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@dataclass(frozen=True)
class _RowRules:
    """How ``score --input`` reads and scores each row: the options and the settings it needs."""

    text_column: str
    time_column: str  # the event-time column (replay's default, published_at, without --time-column)
    timed: bool  # --time-column or --assume-utc: event times read, rewritten as ISO UTC, unreadable ones skipped
    assume_utc: bool
    from_csv: bool  # an empty CSV cell declares no lang (a replay drops it too)
    companies: CompanyTickerMap | None  # ingest.company_table
    max_tickers: int  # ingest.scorer.max_tickers_per_item
    allowed: list[str]  # ingest.scorer.allowed_langs


@dataclass
class _Tally:
    """What scoring a file counted, for the summary and the ``--rejects`` file."""

    scored: int = 0  # rows written with their prediction
    written: int = 0  # scored rows flushed to the output (what a write error reports)
    skipped: int = 0  # rows without a non-empty text
    declared_flagged: int = 0  # scored rows whose declared lang the live scorer dead-letters
    with_time: int = 0  # scored rows with an event time read from the time column
    dead: list[tuple[int, dict, InvalidRecord]] = field(default_factory=list)  # (line, row, why): dead-lettered
    untimed: list[tuple[int, dict, str]] = field(default_factory=list)  # (line, row, why): no readable event time
    unread: list[tuple[int, str]] = field(default_factory=list)  # (line, why): own published_at not readable
    detected: Counter[str] = field(default_factory=Counter)  # languages by detection only, outside allowed_langs


def _check_arguments(
    text: str | None, input: Path | None, rejects: Path | None, time_column: str | None, assume_utc: bool
) -> None:
    """Refuse options that do not go together (before anything is read).

    Raises:
        typer.Exit: 2, naming the options.
    """
    if (text is None) == (input is None):
        raise _fail("give either TEXT or --input FILE")
    if text is not None and not text.strip():
        raise _fail("TEXT is empty")
    if text is not None and rejects is not None:
        raise _fail("--rejects goes with --input FILE, not with one TEXT")
    if text is not None and (time_column is not None or assume_utc):
        raise _fail("--time-column and --assume-utc go with --input FILE, not with one TEXT")


def _read_file(
    input: Path, text_column: str, time_column: str | None
) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """:func:`finsentry.score_inputs.read_inputs`, exiting 2 with its message when the file cannot be scored."""
    try:
        return read_inputs(input, text_column, time_column)
    except UnusableInput as exc:
        raise _fail(str(exc)) from exc


def _load_scorer(settings: Settings) -> Scorer:
    """The model of ``settings.model``; exits 2 with the reason when it cannot be loaded."""
    from finsentry.model.scorer import ModelLoadError, Scorer

    try:
        return Scorer.from_settings(settings.model)
    except ModelLoadError as exc:
        raise _fail(str(exc)) from exc


def _company_map(settings: Settings) -> CompanyTickerMap | None:
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


def _score_text(text: str, scorer: Scorer, rules: _RowRules) -> None:
    """Print the JSON line of one TEXT (and its language warning on standard error).

    Raises:
        typer.Exit: 2, the live scorer dead-letters the text.
    """
    from finsentry.ingest.dlq import DlqReason, InvalidRecord
    from finsentry.ingest.language import language_check

    try:
        check_live({"text": text}, "text")
        row, scored_text = as_live({"text": text}, "text", rules.companies, rules.max_tickers)
    except InvalidRecord as exc:
        if exc.reason is DlqReason.EMPTY_TEXT:
            raise _fail("TEXT is only links, entities or invisible characters: nothing to score") from exc
        raise _fail(f"TEXT: the live scorer dead-letters it ({exc})") from exc
    lang = language_check(scored_text, rules.allowed)
    typer.echo(json.dumps(row | named_probs(scorer.predict([scored_text])[0].to_dict()) | lang))
    if "warning" in lang:
        typer.echo(f"warning: {lang['warning']}", err=True)


def _open_outputs(output: Path | None, rejects: Path | None) -> tuple[IO[str] | None, IO[str]]:
    """``(rejects file or None, output file or standard output)``, opened for writing before anything is scored.

    Raises:
        typer.Exit: 2, either cannot be opened (nothing was scored; the other is closed).
    """
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
    return sink, out


def _prepare_batch(
    batch: list[tuple[int, dict]], rules: _RowRules, tally: _Tally
) -> tuple[list[tuple[dict, str]], list[str | None]]:
    """The rows of ``batch`` (``(line, row)``) to score: ``(row, text to score)`` as the live scorer sees each, and
    each one's event time (ISO UTC, or None). The others are counted in ``tally``: without a text, without a
    readable event time (when ``rules.timed``), or dead-lettered by the live scorer.
    """
    from finsentry.ingest.dlq import InvalidRecord

    ready: list[tuple[dict, str]] = []
    times: list[str | None] = []
    for line, row in batch:
        if not (isinstance(row.get(rules.text_column), str) and row[rules.text_column].strip()):
            tally.skipped += 1
            continue
        published_at = why = None  # without a time column, the row's own published_at is kept as given
        try:
            published_at = event_time(row, rules.time_column, rules.assume_utc)
        except ValueError as exc:
            if rules.timed:
                tally.untimed.append((line, row, str(exc)))
                continue
            why = None if row.get(rules.time_column) in (None, "") else str(exc)
        try:
            check_live(row, rules.text_column)
            ready.append(as_live(row, rules.text_column, rules.companies, rules.max_tickers))
            times.append(published_at)
            if why is not None:
                tally.unread.append((line, why))
        except InvalidRecord as exc:
            # a fresh copy: the caught one pins its traceback's frames (~2.4 KB a row, 1.1 GB RSS for
            # 200,000 such rows)
            tally.dead.append((line, row, InvalidRecord(exc.reason, exc.message)))
    return ready, times


def _write_batch(
    ready: list[tuple[dict, str]],
    times: list[str | None],
    scorer: Scorer,
    rules: _RowRules,
    out: IO[str],
    tally: _Tally,
) -> None:
    """Score ``ready`` (from :func:`_prepare_batch`) and write one JSON line each to ``out``, counted in ``tally``.

    Raises:
        OSError: ``out`` cannot be written.
    """
    from finsentry.ingest.language import language_check

    predictions = scorer.predict([t for _, t in ready])
    for (row, scored_text), published_at, pred in zip(ready, times, predictions, strict=True):
        declared = row.get("lang")
        if rules.from_csv and declared == "":  # an empty CSV cell declares nothing (a replay drops it too)
            declared = None
        lang = language_check(scored_text, rules.allowed, declared)
        if "warning" in lang and declared is not None:
            tally.declared_flagged += 1
        elif "warning" in lang:
            tally.detected[lang["detected_lang"]] += 1
        tally.with_time += published_at is not None
        fields = output_record(row, rules.text_column, published_at if rules.timed else None)
        out.write(json.dumps(fields | named_probs(pred.to_dict()) | lang, ensure_ascii=False) + "\n")
        tally.scored += 1


def _score_rows(
    rows: list[tuple[int, dict]],
    scorer: Scorer,
    rules: _RowRules,
    out: IO[str],
    output: Path | None,
    sink: IO[str] | None,
) -> _Tally:
    """Score ``rows`` in batches of :data:`BATCH_ROWS` into ``out`` (``output``, closed at the end; None: standard
    output, with no progress bar), and count what was skipped. ``sink`` (the ``--rejects`` file) is closed here
    only if scoring stops on an error.

    Raises:
        typer.Exit: 1, ``out`` cannot be written (the message says how many scored rows were written).
    """
    from tqdm import tqdm

    tally = _Tally()
    finished = False
    try:
        for start in tqdm(range(0, len(rows), BATCH_ROWS), desc="scoring", unit="batch", disable=output is None):
            ready, times = _prepare_batch(rows[start : start + BATCH_ROWS], rules, tally)
            _write_batch(ready, times, scorer, rules, out, tally)
            out.flush()  # so that a full disk is noticed here, with an exact count of the rows written
            tally.written = tally.scored
        if output:
            out.close()
        finished = True
    except OSError as exc:
        if output:
            with contextlib.suppress(OSError):
                out.close()
        where = f"--output {output}" if output else "standard output"
        raise _fail(
            f"cannot write {where}: {exc.strerror or exc}; {tally.written} scored rows were written before the "
            f"error (of {len(rows)} rows read)",
            1,
        ) from exc
    finally:
        if output and not out.closed:
            with contextlib.suppress(OSError):
                out.close()
        if sink is not None and not finished:
            with contextlib.suppress(OSError):
                sink.close()
    return tally


def _write_rejects(rejects: Path, sink: IO[str], tally: _Tally) -> None:
    """:func:`finsentry.score_summary.write_rejects`; exits 1 when ``rejects`` cannot be written (the message says
    the scored rows were written)."""
    try:
        write_rejects(sink, tally.dead, tally.untimed)
    except OSError as exc:
        raise _fail(
            f"cannot write --rejects {rejects}: {exc.strerror or exc}; the {tally.scored} scored rows were written", 1
        ) from exc


def _print_summary(tally: _Tally, rules: _RowRules, input: Path, not_utf8: list[tuple[int, str]]) -> None:
    """The summary of a scored file on standard error: rows scored and skipped (and why), what the report will
    make of the times, the language warnings, and the lines that are not valid UTF-8."""
    lines = [f"scored {tally.scored}, skipped {tally.skipped} rows without a non-empty '{rules.text_column}'"]
    if tally.untimed:
        lines.append(untimed_line(tally.untimed, rules.time_column))
    lines += dead_letter_lines(tally.dead, rules.text_column)
    lines += report_time_lines(rules.timed, tally.scored, tally.with_time, tally.unread)
    lines += language_lines(tally.declared_flagged, tally.detected, tally.scored, rules.allowed)
    if not_utf8:
        lines.append(invalid_utf8_line(input, not_utf8))
    for line in lines:
        typer.echo(line, err=True)


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
    _check_arguments(text, input, rejects, time_column, assume_utc)
    settings = settings_from(ctx)
    timed = time_column is not None or assume_utc  # event times read, rewritten as ISO UTC, unreadable ones skipped
    time_column = time_column or "published_at"  # replay's default column
    read_time = time_column if timed else None  # a column that must be there
    rows, rejected = _read_file(input, text_column, read_time) if input is not None else ([], [])
    clash = path_clash(input, output, rejects)
    if clash is not None:
        raise _fail(clash)
    if timed:
        nothing = why_no_event_time(rows, time_column, assume_utc)
        if nothing is not None:
            raise _fail(f"{input}: {nothing}; nothing was scored")
    not_utf8 = invalid_utf8_lines(input) if input is not None else []
    scorer = _load_scorer(settings)
    allowed = settings.ingest.scorer.allowed_langs
    rules = _RowRules(
        text_column=text_column,
        time_column=time_column,
        timed=timed,
        assume_utc=assume_utc,
        from_csv=input is not None and input.suffix.lower() == ".csv",
        companies=_company_map(settings),
        max_tickers=settings.ingest.scorer.max_tickers_per_item,
        allowed=allowed,
    )
    if text is not None:
        _score_text(text, scorer, rules)
        return
    sink, out = _open_outputs(output, rejects)
    tally = _score_rows(rows, scorer, rules, out, output, sink)
    if sink is not None:
        _write_rejects(rejects, sink, tally)
    _print_summary(tally, rules, input, not_utf8)
    if rejected:
        for line in rejected_lines(input, rejected):
            typer.echo(line, err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``score`` to the top-level app."""
    app.command("score")(score_cmd)
