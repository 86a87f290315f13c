"""Reading users' CSV / JSONL files safely: one shared set of rules for ``score``, ``replay`` and ``labels import``.

- A UTF-8 byte-order mark at the start of a file is dropped (``utf-8-sig``), so a CSV saved by a spreadsheet
  keeps its first column name (``id``, not ``\\ufeffid``) and line 1 of a JSONL file stays JSON.
- CSV cells may be longer than the ``csv`` module's default limit of 131,072 characters
  (:func:`csv_field_limit`).
- A CSV header that names a column twice is an error naming the column and its positions
  (:func:`repeated_column`): ``csv`` would silently keep the last cell of that name.
- A JSON line that cannot be used becomes :class:`BadLine` with a one-line reason instead of an exception
  that ends the whole file (:func:`parse_json_line`): not JSON, a number of more than 4300 digits, nesting
  deeper than :data:`MAX_JSON_DEPTH`, a lone surrogate escape (``"\\ud800"``) that cannot be written as
  UTF-8, or a line longer than :data:`MAX_LINE_BYTES` (read in pieces, never held whole).
- Every read is bounded: a device (``/dev/zero``, a terminal) or a socket is refused before it is opened
  (:func:`check_readable`); a whole-file read (config, token and settings files) goes through
  :func:`read_limited_text`, which stops past its byte limit and says so on one line (:class:`FileReadError`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import logging
import math
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays / objects accepted in one JSON line or config file (news items and labels are
flat; a deeper value is someone's mistake or an attack on the parser's recursion)."""

CSV_DEFAULT_FIELD_LIMIT = 131_072
"""``csv.field_size_limit()`` of a fresh Python process."""

MAX_CONFIG_BYTES = 1_048_576
"""Largest settings file read whole, bytes (1 MiB: ``--config`` files, training configs, the company table; the
shipped ones are under 20 KiB)."""

MAX_SECRET_BYTES = 65_536
"""Largest secret file read whole, bytes (64 KiB: a bearer token is a few dozen bytes)."""

MAX_LINE_BYTES = 16_777_216
"""Longest line of a JSONL file, bytes (16 MiB; a news item's value is at most 64 KiB on ``news.raw``). A longer
line is reported as a :class:`BadLine` and skipped without being held in memory."""

_CHUNK_BYTES = 1_048_576


class FileReadError(ValueError):
    """A file cannot be read: missing, not a regular file, larger than its limit, or not UTF-8 text. The message
    names the file (and the limit when it is too large) on one line."""


class BadLine(ValueError):
    """A line of a file that cannot be used; ``reason`` says why on one line (no file name or line number)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def csv_field_limit_for(path: Path) -> int:
    """A ``csv.field_size_limit`` no cell of ``path`` can exceed: the file's size (at least the default
    131,072), capped to what a C long holds everywhere.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     csv_field_limit_for(Path(f.name))
    131072
    """
    return min(max(Path(path).stat().st_size + 1, CSV_DEFAULT_FIELD_LIMIT), 2**31 - 1)


@contextlib.contextmanager
def csv_field_limit(path: Path) -> Iterator[None]:
    """Raise ``csv.field_size_limit`` to :func:`csv_field_limit_for` ``path`` while the block runs, then restore it.

    The limit is process-wide: it is raised (never lowered) on entry and set back to its old value on exit.
    """
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, csv_field_limit_for(path)))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _file_kind(mode: int) -> str | None:
    """What a kind of file that never ends or waits for a person is (``a character device`` ...), or None: a regular
    file, a pipe (it ends when its writer closes it: ``--config <(...)`` keeps working) or a directory (opening it
    fails at once with ``Is a directory``)."""
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def _named(what: str, path: Path) -> str:
    """``what path`` (``config file c.yaml``), or the path alone when ``what`` is empty."""
    return f"{what} {path}" if what else str(path)


def check_readable(path: Path, what: str = "input file") -> None:
    """Refuse, before opening it, a ``path`` that cannot be read to an end: a device (``/dev/zero`` never ends,
    ``/dev/tty`` waits for a person) or a socket. Regular files and pipes pass (directories fail when opened).

    >>> check_readable(Path("/dev/zero"), "config file")
    Traceback (most recent call last):
    ...
    finsentry.common.textfiles.FileReadError: config file /dev/zero is a character device, not a regular file

    Raises:
        FileReadError: ``path`` is missing, unreadable (stat fails) or of a refused kind (the message names it).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise FileReadError(f"cannot read {_named(what, path)}: {exc.strerror or exc}") from None
    kind = _file_kind(mode)
    if kind is not None:
        raise FileReadError(f"{_named(what, path)} is {kind}, not a regular file")


def read_limited_bytes(path: Path, what: str, max_bytes: int) -> bytes:
    """The bytes of ``path``, read whole but never more than ``max_bytes`` + 1 of them.

    Args:
        path: the file (a regular file or a pipe; see :func:`check_readable`).
        what: how messages name the file, e.g. ``"config file"`` or ``"alerts.relay_token_file"`` (empty: the
            path alone, for a caller that names the setting itself).
        max_bytes: largest size accepted, bytes.

    Raises:
        FileReadError: see :func:`check_readable`; the file cannot be opened or read; it holds more than
            ``max_bytes`` bytes (the message names the limit).
    """
    check_readable(path, what)
    try:
        with Path(path).open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise FileReadError(f"cannot read {_named(what, path)}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise FileReadError(f"{_named(what, path)} is larger than the limit of {max_bytes} bytes")
    return data


def read_limited_text(path: Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped), read with :func:`read_limited_bytes`.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"ok\\xff")
    ...     f.flush()
    ...     read_limited_text(Path(f.name), "token file", 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    finsentry.common.textfiles.FileReadError: token file ... is larger than the limit of 2 bytes

    Raises:
        FileReadError: as :func:`read_limited_bytes`, or the bytes are not UTF-8 (the message gives the first bad
            byte and its offset).
    """
    data = read_limited_bytes(path, what, max_bytes)
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise FileReadError(
            f"{_named(what, path)} is not UTF-8 text (byte 0x{data[offset]:02x} at offset {offset})"
        ) from None


def open_text(path: Path, errors: str = "strict", newline: str | None = None):
    """``path`` opened for reading as UTF-8 text without a leading byte-order mark (``utf-8-sig``).

    Raises:
        FileReadError: ``path`` is a device or a socket (:func:`check_readable`).
        OSError: it cannot be opened.
    """
    check_readable(path)
    return Path(path).open(encoding="utf-8-sig", errors=errors, newline=newline)


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH, max_values: int | None = None) -> str | None:
    """Why a parsed JSON / YAML value cannot be used, or None: nested deeper than ``max_depth``, a string
    (key or value) holding a lone surrogate, or (with ``max_values``) more values than that once YAML aliases
    are expanded (a "billion laughs" file). Iterative, so a deep value cannot exhaust the stack; a value that
    contains itself (a recursive YAML alias) is reported as too deep.

    >>> json_problem({"text": "fine", "tickers": ["A"]}) is None
    True
    >>> json_problem({"text": "bad \\ud800"})
    "field 'text' holds a lone surrogate U+D800 (an unpaired \\\\ud800 escape), which is not valid text"
    >>> json_problem([[[1]]], max_depth=2)
    'nested deeper than 2 levels'
    """
    stack: list[tuple[Any, int, str | None]] = [(value, 1, None)]
    seen = 0
    while stack:
        item, depth, field = stack.pop()
        seen += 1
        if max_values is not None and seen > max_values:
            return f"holds more than {max_values} values (YAML aliases that repeat each other?)"
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    name = field if field is not None else str(key)
                    stack.append((key, depth, name))
                    stack.append((child, depth + 1, name))
            else:
                stack.extend((child, depth + 1, field) for child in item)
        elif isinstance(item, str):
            bad = next((ch for ch in item if "\ud800" <= ch <= "\udfff"), None)
            if bad is not None:
                where = f"field {field!r}" if field is not None else "the value"
                return (
                    f"{where} holds a lone surrogate U+{ord(bad):04X} (an unpaired \\u{ord(bad):04x} escape), "
                    "which is not valid text"
                )
    return None


class _NonJsonConstant(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON (RFC 8259) has no such numbers."""


class _DuplicateKey(Exception):
    """A key repeated in one JSON object (the reader could not say which value was meant)."""


def _refuse_constant(name: str) -> Any:
    raise _NonJsonConstant(name)


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a float (``1e99999`` -> inf) is refused like ``Infinity``."""
    value = float(text)
    if math.isinf(value):
        raise _NonJsonConstant(text)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


class JsonSyntaxError(ValueError):
    """Text that is not one strict JSON document (:func:`strict_json_loads`); ``str()`` is the whole message.

    Attributes:
        kind: ``syntax`` (not JSON; ``detail`` the parser's message), ``constant`` (``NaN``, ``Infinity`` or a
            number too large for a float; ``detail`` the token), ``duplicate_key`` (``detail`` the key),
            ``too_deep`` (nested beyond the interpreter's recursion limit), ``too_many_digits`` (an integer of
            more than 4300 digits) or ``other``.
        detail: the one-line part of the message that names the fault.
    """

    def __init__(self, kind: str, detail: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


def strict_json_loads(text: str, unique_keys: bool = False) -> Any:
    """``json.loads`` that reads only what RFC 8259 calls JSON: ``NaN``, ``Infinity``, ``-Infinity`` and numbers
    too large for a float (``1e99999``) are refused, as is, with ``unique_keys``, a key repeated in an object.
    The one strict JSON reader of the project: JSONL lines (:func:`parse_json_line`) and every Kafka record
    (``finsentry.ingest.contract.decode_json_object``) go through it.

    Raises:
        JsonSyntaxError: with ``kind`` and the message; never another exception for any ``text``.

    >>> strict_json_loads('{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> def why(text, **kw):
    ...     try:
    ...         strict_json_loads(text, **kw)
    ...     except JsonSyntaxError as exc:
    ...         return exc.kind, str(exc)
    >>> why('{"a": NaN}')
    ('constant', 'NaN is not valid JSON')
    >>> why('{"a": 1, "a": 2}', unique_keys=True)
    ('duplicate_key', "key 'a' appears more than once")
    >>> why("[" * 100_000 + "]" * 100_000)
    ('too_deep', 'nested too deeply')
    """
    try:
        return json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys if unique_keys else None,
        )
    except _NonJsonConstant as exc:
        raise JsonSyntaxError("constant", str(exc), f"{exc} is not valid JSON") from None
    except _DuplicateKey as exc:
        key = str(exc.args[0])
        raise JsonSyntaxError("duplicate_key", key, f"key {key[:60]!r} appears more than once") from None
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError("syntax", exc.msg, str(exc)) from None
    except RecursionError:
        raise JsonSyntaxError("too_deep", "nested too deeply", "nested too deeply") from None
    except ValueError as exc:  # int(str) refuses more than sys.get_int_max_str_digits() digits
        message = str(exc)
        if "integer string conversion" in message:
            raise JsonSyntaxError("too_many_digits", "a number with more than 4300 digits", message) from None
        detail = message.splitlines()[0][:120] if message else type(exc).__name__
        raise JsonSyntaxError("other", detail, message) from None


def json_error_reason(exc: JsonSyntaxError, max_depth: int = MAX_JSON_DEPTH) -> str:
    """The one-line reason a JSONL reader gives for a line :func:`strict_json_loads` refused with ``exc``.

    >>> try:
    ...     strict_json_loads('{"a": 1, "a": 2}', unique_keys=True)
    ... except JsonSyntaxError as exc:
    ...     json_error_reason(exc)
    "not JSON (key 'a' appears more than once)"
    """
    if exc.kind == "constant":
        return f"not JSON ({exc.detail} is not a JSON number)"
    if exc.kind == "too_deep":
        return f"not usable JSON: nested deeper than {max_depth} levels"
    if exc.kind == "too_many_digits":
        return f"not usable JSON: {exc.detail}"
    if exc.kind == "duplicate_key":
        return f"not JSON ({exc})"
    return f"not JSON ({exc.detail})"


def parse_json_line(line: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """One JSONL line parsed; anything that makes it unusable raises :class:`BadLine` with the reason.

    >>> parse_json_line('{"a": 1}')
    {'a': 1}
    >>> def why(line):
    ...     try:
    ...         parse_json_line(line)
    ...     except BadLine as exc:
    ...         return exc.reason
    >>> why("{bad")
    'not JSON (Expecting property name enclosed in double quotes)'
    >>> why('{"n": ' + "9" * 5000 + "}")
    'not usable JSON: a number with more than 4300 digits'
    >>> why("[" * 100_000 + "]" * 100_000)
    'not usable JSON: nested deeper than 64 levels'
    >>> why('{"a": ' * 70 + "1" + "}" * 70)
    'not usable JSON: nested deeper than 64 levels'
    >>> why('{"text": "x", "score": NaN}')
    'not JSON (NaN is not a JSON number)'
    >>> why('{"text": 1e99999}')
    'not JSON (1e99999 is not a JSON number)'
    >>> why('{"text": "Shares slump", "text": "Shares soar"}')  # which one? the live scorer refuses it too
    "not JSON (key 'text' appears more than once)"
    """
    try:
        value = strict_json_loads(line, unique_keys=True)
    except JsonSyntaxError as exc:
        raise BadLine(json_error_reason(exc, max_depth)) from None
    problem = json_problem(value, max_depth)
    if problem is not None:
        raise BadLine(f"not usable JSON: {problem}")
    return value


def iter_json_lines(path: Path, errors: str = "strict") -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` per non-blank line of a JSONL file; ``value`` is the parsed JSON or a
    :class:`BadLine` (not UTF-8 with ``errors="strict"``, or see :func:`parse_json_line`). A BOM is dropped.

    ``errors`` is the UTF-8 decoding policy per line: ``strict`` rejects a line with a bad byte, ``replace``
    reads it with U+FFFD in its place. A line longer than :data:`MAX_LINE_BYTES` is a :class:`BadLine` (its
    rest is skipped in 1 MiB pieces, never held whole).

    Raises:
        FileReadError: ``path`` is a device or a socket (:func:`check_readable`).
        OSError: it cannot be opened.
    """
    check_readable(path)
    with Path(path).open("rb") as f:
        n = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            n += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(_CHUNK_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield n, BadLine(f"line longer than the limit of {MAX_LINE_BYTES} bytes")
                continue
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as exc:
                yield n, BadLine(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                yield n, parse_json_line(line)
            except BadLine as exc:
                yield n, exc


def invalid_utf8_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, "byte 0x.. at column N")`` of every line of ``path`` that is not valid UTF-8 (a BOM on the
    first line is allowed); ``[]`` for a clean file. For readers that go on with ``errors="replace"`` and must
    still say what they replaced.

    Raises:
        FileReadError: ``path`` is a device or a socket (:func:`check_readable`).
        OSError: it cannot be opened.
    """
    check_readable(path)
    out: list[tuple[int, str]] = []
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, column, bad = 1, 0, False
    with Path(path).open("rb") as f:
        while chunk := f.readline(_CHUNK_BYTES):  # a line longer than a chunk is read in pieces, never whole
            end = chunk.endswith(b"\n")
            if not bad:
                try:
                    decoder.decode(chunk, final=end)
                except UnicodeDecodeError as exc:
                    byte = exc.object[exc.start]
                    out.append((line, f"byte 0x{byte:02x} at column {column + exc.start + 1}"))
                    bad = True
            column += len(chunk)
            if end:
                line, column, bad = line + 1, 0, False
                decoder.reset()
    if column and not bad:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # the file ends inside a multi-byte character
            out.append(
                (line, f"byte 0x{exc.object[exc.start]:02x} at column {column - len(exc.object) + exc.start + 1}")
            )
    return out


def iter_csv_rows(path: Path, errors: str = "strict") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number where the record starts, row)`` per record of a CSV file with a header row.

    A BOM is dropped, cells of any length are read (:func:`csv_field_limit`); cells beyond the header are
    dropped (``None`` key), and if any of them held text a warning names how many rows and the first line (an
    unquoted comma cuts a text short). Empty lines are skipped by ``csv``. Parsing is strict (``csv``'s
    ``strict=True``): a quote that is never closed is an error naming the line it opened on, not a field that
    silently swallows the rest of the file. A header that names a column twice is refused
    (:func:`repeated_column`) before any row is given.

    Raises:
        ValueError: the file is not UTF-8 (``errors="strict"``), not readable CSV (the message names the file
            and line), or its header names a column twice (the message names the column and its positions).
    """
    cut: list[int] = []
    with csv_field_limit(path), open_text(path, errors=errors, newline="") as f:
        reader = csv.DictReader(f, strict=True)
        start = 1
        try:
            _refuse_repeated_column(path, reader.fieldnames)
            start = reader.line_num + 1
            for row in reader:
                if any(cell.strip() for cell in row.get(None) or ()):  # type: ignore[call-overload]
                    cut.append(start)
                yield start, {k: v for k, v in row.items() if k is not None}
                start = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise ValueError(
                    f"{path}:{start}: not readable CSV (a quoted field opened here is never closed)"
                ) from None
            # the csv reader's own count: DictReader's is only updated after a record is read (one line short)
            raise ValueError(f"{path}:{reader.reader.line_num}: not readable CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} near line {reader.line_num + 1})"
            ) from None
    if cut:
        log.warning(
            "%s: %d row(s) have more cells than the header (first at line %d); the extra cells were dropped "
            "(an unquoted comma in a text? quote the field)",
            path,
            len(cut),
            cut[0],
        )


def csv_header(path: Path, errors: str = "strict") -> list[str]:
    """The header row of a CSV file (``[]`` for an empty file), BOM dropped.

    Raises:
        ValueError: not UTF-8 or not readable CSV (the message names the file), or the header names a column
            twice (:func:`repeated_column`).
    """
    with csv_field_limit(path), open_text(path, errors=errors, newline="") as f:
        try:
            columns = list(csv.DictReader(f).fieldnames or [])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}:1: not readable CSV header ({exc})") from None
    _refuse_repeated_column(path, columns)
    return columns


def repeated_column(columns: Sequence[str]) -> str | None:
    """Why a CSV header cannot be read as one cell per column name, or None: the first name that stands in it
    more than once and its positions (1-based). A blank name is no column (a spreadsheet's trailing empty
    columns), so blank names may repeat.

    >>> repeated_column(["text", "published_at", "text"])
    "header names column 'text' twice (columns 1 and 3)"
    >>> repeated_column(["id", "id", "text", "id"])
    "header names column 'id' 3 times (columns 1, 2 and 4)"
    >>> repeated_column(["id", "text", "", ""]) is None
    True
    """
    positions: dict[str, list[int]] = {}
    for n, name in enumerate(columns, 1):
        positions.setdefault(name, []).append(n)
    for name, where in positions.items():
        if len(where) > 1 and name.strip():
            times = "twice" if len(where) == 2 else f"{len(where)} times"
            listed = ", ".join(map(str, where[:-1])) + f" and {where[-1]}"
            return f"header names column {name[:60]!r} {times} (columns {listed})"
    return None


def _refuse_repeated_column(path: Path, columns: Sequence[str] | None) -> None:
    """Raise ValueError ``<path>: header names column ...`` if :func:`repeated_column` finds one."""
    problem = repeated_column(columns or [])
    if problem is not None:
        raise ValueError(f"{path}: {problem}")


def kind_of(data: Any, string: str = "text") -> str:
    """What a parsed YAML / JSON value is, for messages: ``a list``, ``text`` (or ``string``), ``a number``...

    >>> kind_of([1]), kind_of("x", string="a string"), kind_of(None), kind_of(2.5)
    ('a list', 'a string', 'null', 'a number')
    """
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        return string
    if isinstance(data, bool):
        return "a boolean"
    if data is None:
        return "null"
    if isinstance(data, int | float):
        return "a number"
    if isinstance(data, dict):
        return "an object"
    return f"a {type(data).__name__}"


def describe_path_problem(path: Path, what: str = "input file") -> str | None:
    """Why ``path`` cannot be read as a file, or None: missing, a directory, or not a regular file.

    >>> describe_path_problem(Path("/"))
    'input file / is a directory; give a file'
    """
    path = Path(path)
    if path.is_dir():
        return f"{what} {path} is a directory; give a file"
    if not path.exists():
        return f"{what} {path} not found"
    if not path.is_file():
        return f"{what} {path} is not a regular file"
    return None


__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_LINE_BYTES",
    "MAX_SECRET_BYTES",
    "BadLine",
    "FileReadError",
    "check_readable",
    "csv_field_limit",
    "csv_field_limit_for",
    "csv_header",
    "describe_path_problem",
    "iter_csv_rows",
    "iter_json_lines",
    "json_problem",
    "kind_of",
    "open_text",
    "parse_json_line",
    "read_limited_bytes",
    "read_limited_text",
    "repeated_column",
]
