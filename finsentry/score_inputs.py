"""The files of ``finsentry score --input``: reading the input's rows, and refusing options that name one file.

Nothing here prints or exits: a problem is raised as :class:`UnusableInput` or returned as text, for
:mod:`finsentry.cli_score` to print and exit 2 with.
"""

from __future__ import annotations

from pathlib import Path

from finsentry.common.textfiles import kind_of


class UnusableInput(Exception):
    """The ``--input`` file cannot be scored; the message names the file (and the line, or the column wanted)."""


def read_inputs(
    path: Path, text_column: str, time_column: str | None = None
) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """Rows of a ``.jsonl`` (one JSON object per line) or ``.csv`` (header row) file, and the rejected lines.

    Suffixes are matched case-insensitively; a UTF-8 byte-order mark is dropped (:mod:`finsentry.common.textfiles`).
    Returns ``(rows, rejected)``: ``rows`` holds ``(line number, row)`` (the line a CSV record starts on), and
    ``rejected`` holds ``(line number, reason)`` of JSONL lines that are not
    JSON, not a JSON object, nested too deeply, hold a number of more than 4300 digits or a lone surrogate
    (blank lines are skipped).

    Raises:
        UnusableInput: the file is missing or a directory, has another suffix, is not readable CSV, or no row has
            ``text_column`` or (when given) ``time_column`` (a CSV header without it, or JSONL objects of which
            none has that field); the message names the file and line, and the option to use.
    """
    from finsentry.common.textfiles import BadLine, csv_header, describe_path_problem, iter_csv_rows, iter_json_lines

    needed = [(text_column, "text", "--text-column")]
    if time_column is not None:
        needed.append((time_column, "event-time", "--time-column"))
    problem = describe_path_problem(path)
    if problem is not None:
        raise UnusableInput(problem)
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
                raise UnusableInput(
                    f"{path}: no line has a field {column!r} (fields: {shown or 'none'}); "
                    f"name the {what} field with {option}"
                )
        return rows, rejected
    if suffix == ".csv":
        try:
            columns = csv_header(path, errors="replace")
            for column, what, option in needed:
                if columns and column not in columns:
                    raise UnusableInput(
                        f"{path}: no column {column!r} in the header (columns: {', '.join(columns)}); "
                        f"name the {what} column with {option}"
                    )
            return list(iter_csv_rows(path, errors="replace")), []
        except ValueError as exc:
            raise UnusableInput(str(exc)) from exc
    raise UnusableInput(f"{path}: expected a .csv or .jsonl file")


def same_file(a: Path, b: Path) -> bool:
    """True if writing ``b`` would overwrite the regular file ``a`` (or both name one file not yet there): the same
    inode, or, for a path that does not exist, the same resolved path. A device or pipe both name (``/dev/stdout``
    on a terminal) is not a clash: each write goes through in turn.

    >>> same_file(Path("in.csv"), Path("./in.csv"))
    True
    """
    import os
    import stat

    try:
        return os.path.samefile(a, b) and stat.S_ISREG(os.stat(a).st_mode)
    except OSError:  # one of them is not there (yet)
        return a.resolve() == b.resolve()


def path_clash(input: Path | None, output: Path | None, rejects: Path | None) -> str | None:
    """Why ``--input``, ``--output`` and ``--rejects`` cannot be used together, or None: two of them name one file.
    Writing the input would erase it (score reads it whole first, so the run itself looks fine), and
    ``--output`` and ``--rejects`` on one file would each overwrite the other's lines from offset 0.

    >>> path_clash(Path("in.csv"), Path("./in.csv"), None)
    '--output in.csv is the --input file: writing it would erase the input; name another file'
    >>> path_clash(Path("in.csv"), Path("out.jsonl"), Path("rejects.jsonl")) is None
    True
    """
    named = [(opt, path) for opt, path in (("--input", input), ("--output", output), ("--rejects", rejects)) if path]
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if same_file(a, b):
                if first == "--input":
                    return f"{second} {b} is the --input file: writing it would erase the input; name another file"
                return f"{first} and {second} name one file ({b}): the rejects would overwrite the scored rows"
    return None
