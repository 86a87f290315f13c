"""What ``finsentry score --input`` says about the rows it did not score as given, and its ``--rejects`` file.

The summary lines (for standard error) name the rows skipped because the live scorer dead-letters them or their
event time cannot be read, what ``finsentry report`` will make of the output's times, the rows whose language the
live scorer would not score, the lines that are not valid UTF-8 and the JSONL lines rejected on reading. Each
function returns text; :mod:`finsentry.cli_score` prints it. :func:`write_rejects` writes the skipped rows.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING

from finsentry.common.textfiles import MAX_JSON_DEPTH

if TYPE_CHECKING:
    from finsentry.ingest.dlq import InvalidRecord

REJECTED_SHOWN = 20
"""Rejected input lines listed one by one by ``finsentry score --input`` (the rest are counted)."""

SKIPPED_LINES_SHOWN = 5
"""Line numbers named per dead-letter reason in ``finsentry score --input``'s summary (the rest are counted)."""

LANGS_SHOWN = 5
"""Detected languages named, with their counts, in ``finsentry score --input``'s language warning."""


def _line_numbers(lines: list[int]) -> str:
    """``line 3`` / ``lines 3, 9`` / ``lines 1, 2, 3, 4, 5 and 2 more``: the first :data:`SKIPPED_LINES_SHOWN`.

    >>> _line_numbers([1, 2, 3, 4, 5, 6, 7])
    'lines 1, 2, 3, 4, 5 and 2 more'
    """
    where = ", ".join(str(line) for line in lines[:SKIPPED_LINES_SHOWN])
    more = len(lines) - SKIPPED_LINES_SHOWN
    return f"line{'s' if len(lines) > 1 else ''} {where}{f' and {more} more' if more > 0 else ''}"


def dead_letter_lines(dead: list[tuple[int, dict, InvalidRecord]], text_column: str) -> list[str]:
    """One summary line per dead-letter reason of the rows ``score`` skipped (``(line, row, why)``), in
    :class:`~finsentry.ingest.dlq.DlqReason` order: how many, the first :data:`SKIPPED_LINES_SHOWN` line numbers,
    and the first row's message.

    >>> from finsentry.ingest.dlq import DlqReason, InvalidRecord
    >>> long = InvalidRecord(DlqReason.TEXT_TOO_LONG, "text: String should have at most 10000 characters")
    >>> dead_letter_lines([(3, {}, long), (9, {}, long)], "text")[0]
    'skipped 2 rows: the live scorer dead-letters them (text_too_long; lines 3, 9; first: text: String should \
have at most 10000 characters)'
    """
    from finsentry.ingest.dlq import DlqReason

    found: dict[DlqReason, list[tuple[int, str]]] = {}
    for line, _, problem in dead:
        found.setdefault(problem.reason, []).append((line, problem.message))
    out = []
    for reason in (r for r in DlqReason if r in found):
        where = _line_numbers([line for line, _ in found[reason]])
        if reason is DlqReason.EMPTY_TEXT:
            what, first = f" whose '{text_column}' is only links, entities or invisible characters", ""
        else:
            what, first = "", f"; first: {found[reason][0][1]}"
        out.append(
            f"skipped {len(found[reason])} rows{what}: the live scorer dead-letters them ({reason}; {where}{first})"
        )
    return out


def untimed_line(untimed: list[tuple[int, dict, str]], time_column: str) -> str:
    """The summary line of the rows ``score`` skipped for an event time it cannot read (``(line, row, why)``, at
    least one): how many, the first :data:`SKIPPED_LINES_SHOWN` line numbers and the first row's reason.

    >>> untimed_line([(2, {}, "no value in 'ts'")], "ts")
    "skipped 1 rows without a readable event time in 'ts' (finsentry replay skips them too; line 2; first: no \
value in 'ts')"
    """
    where = _line_numbers([line for line, _, _ in untimed])
    return (
        f"skipped {len(untimed)} rows without a readable event time in {time_column!r} (finsentry replay skips them "
        f"too; {where}; first: {untimed[0][2]})"
    )


def report_time_lines(timed: bool, scored: int, with_time: int, unread: list[tuple[int, str]]) -> list[str]:
    """Notes on what ``finsentry report`` will make of the output when no time column was named (``timed``
    False): it needs a zoned ``published_at`` (and the id score derives from it), so say when no scored row has
    one (``with_time``: how many of the ``scored`` rows have one), or how many have one it cannot read
    (``unread``: ``(line, why)``, first in input order).

    >>> report_time_lines(False, 3, 0, [])[0][:78]
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


def language_lines(declared: int, detected: Counter[str], scored: int, allowed: list[str]) -> list[str]:
    """The summary warnings about language: rows whose declared ``lang`` the live scorer dead-letters (``declared``
    of ``scored``), and rows without one whose text reads as another language by detection (``detected``: rows
    per language code; py3langid; the live scorer never detects, so those are scored live; the model, trained on
    English, may score them poorly). ``allowed``: ``ingest.scorer.allowed_langs``.

    >>> from collections import Counter
    >>> language_lines(0, Counter({"pcm": 20, "de": 6}), 4994, ["en"])[0][:97]
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


def invalid_utf8_line(path: Path, not_utf8: list[tuple[int, str]]) -> str:
    """The warning about the lines of ``path`` that are not valid UTF-8 (``(line, where)``, at least one, as
    :func:`finsentry.common.textfiles.invalid_utf8_lines` gives them): how many, and the first.

    >>> invalid_utf8_line(Path("in.csv"), [(4, "byte 12")])[:62]
    'warning: 1 lines of in.csv are not valid UTF-8 (first: line 4,'
    """
    line, where = not_utf8[0]
    return (
        f"warning: {len(not_utf8)} lines of {path} are not valid UTF-8 (first: line {line}, {where}); each bad "
        "byte was read as U+FFFD and the rows were scored; the live scorer would dead-letter them (invalid_utf8)"
    )


def rejected_lines(path: Path, rejected: list[tuple[int, str]]) -> list[str]:
    """The JSONL lines of ``path`` rejected on reading (``(line, reason)``, at least one): the first
    :data:`REJECTED_SHOWN` one per line, then how many in all and what a line must be.

    >>> rejected_lines(Path("in.jsonl"), [(2, "not JSON")])[0]
    '  in.jsonl:2: not JSON'
    """
    out = [f"  {path}:{line}: {reason}" for line, reason in rejected[:REJECTED_SHOWN]]
    more = len(rejected) - REJECTED_SHOWN
    out.append(
        f"rejected {len(rejected)} lines of {path}{f' ({more} more not shown)' if more > 0 else ''}; "
        f"each line must be one JSON object (valid text, at most {MAX_JSON_DEPTH} levels deep)"
    )
    return out


def write_rejects(
    sink: IO[str], dead: list[tuple[int, dict, InvalidRecord]], untimed: list[tuple[int, dict, str]]
) -> None:
    """Write the skipped rows to ``sink`` (the ``--rejects`` file, open for writing), one JSON line each in input
    order: ``line`` (of the input), ``reason`` (the dead-letter code of a row of ``dead``, or
    ``unreadable_event_time``, replay's name, for a row of ``untimed``), ``message`` and ``row`` (the row as
    read); then close it.

    Raises:
        OSError: the file cannot be written or closed (it is closed, or its closing tried, before).
    """
    skipped = [(line, row, str(problem.reason), problem.message) for line, row, problem in dead]
    skipped += [(line, row, "unreadable_event_time", why) for line, row, why in untimed]
    with sink:
        for line, row, reason, message in sorted(skipped, key=lambda s: s[0]):
            record = {"line": line, "reason": reason, "message": message, "row": row}
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
