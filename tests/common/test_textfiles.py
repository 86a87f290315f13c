"""Reading users' files (common/textfiles.py): BOMs, long CSV cells, unusable JSON lines with their reason."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import threading
from pathlib import Path

import pytest

from finsentry.common import textfiles
from finsentry.common.textfiles import (
    MAX_JSON_DEPTH,
    BadLine,
    FileReadError,
    csv_field_limit,
    csv_header,
    iter_csv_rows,
    iter_json_lines,
    json_problem,
    parse_json_line,
    read_limited_text,
)


def test_json_lines_keep_the_good_lines_and_give_each_bad_one_its_reason(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [
        b'\xef\xbb\xbf{"id": "bom"}',  # a BOM before line 1
        b'{"id": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"n": ' + b"9" * 5000 + b"}",
        b'{"text": "bad \\ud800 surrogate"}',
        b'{"text": "caf\xe9"}',  # Latin-1, not UTF-8
        b"",
        b"{not json",
        b'{"id": "last", "pair": "\\ud83d\\ude00"}',  # a valid surrogate pair is fine
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = [(n, v.reason if isinstance(v, BadLine) else v) for n, v in iter_json_lines(path)]
    assert got == [
        (1, {"id": "bom"}),
        (2, f"not usable JSON: nested deeper than {MAX_JSON_DEPTH} levels"),
        (3, "not usable JSON: a number with more than 4300 digits"),
        (4, "not usable JSON: field 'text' holds a lone surrogate U+D800 (an unpaired \\ud800 escape), which is "
            "not valid text"),
        (5, "not UTF-8 text (byte 0xe9 at column 14)"),
        (7, "not JSON (Expecting property name enclosed in double quotes)"),
        (8, {"id": "last", "pair": "\U0001f600"}),
    ]  # fmt: skip
    replaced = dict(iter_json_lines(path, errors="replace"))
    assert replaced[5] == {"text": "caf\ufffd"}


def test_a_line_just_inside_the_depth_limit_is_read_and_one_beyond_is_not():
    inside = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_problem(json.loads(inside)) is None
    with pytest.raises(BadLine, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_json_line("[" + inside + "]")


def test_csv_rows_drop_the_bom_read_long_cells_and_number_lines_where_records_start(tmp_path):
    path = tmp_path / "in.csv"
    long_cell = "x" * 200_000  # the csv module's default limit is 131072
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([["id", "text"], ["a", "two\nlines"], ["b", long_cell], ["c", "short", "extra"]])
    limit = csv.field_size_limit()
    assert csv_header(path) == ["id", "text"]
    rows = list(iter_csv_rows(path))
    assert [(n, r["id"], len(r["text"])) for n, r in rows] == [(2, "a", 9), (4, "b", 200_000), (5, "c", 5)]
    assert all(set(r) == {"id", "text"} for _, r in rows)  # cells beyond the header are dropped
    assert csv.field_size_limit() == limit  # restored


def test_csv_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"id,text\n1,caf\xe9\n")
    with pytest.raises(ValueError, match=r"latin1\.csv: not UTF-8 text \(byte 0xe9"):
        list(iter_csv_rows(path))
    assert [r["text"] for _, r in iter_csv_rows(path, errors="replace")] == ["caf\ufffd"]


def test_csv_field_limit_is_raised_only_inside_the_block(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a\n" + "y" * 300_000 + "\n")
    before = csv.field_size_limit()
    with csv_field_limit(path):
        assert csv.field_size_limit() >= 300_000
    assert csv.field_size_limit() == before


def test_value_with_too_many_expanded_values_is_reported():
    shared = ["x"] * 9
    for _ in range(8):
        shared = [shared] * 9  # YAML aliases build this: 9**9 strings, one object per level
    assert json_problem(shared, max_values=100_000) == (
        "holds more than 100000 values (YAML aliases that repeat each other?)"
    )


# Issue 15, finding 9: whole-file reads are bounded, devices are refused before they are opened.


def test_a_device_is_refused_before_it_is_read():
    with pytest.raises(FileReadError, match=r"^config file /dev/zero is a character device, not a regular file$"):
        read_limited_text(Path("/dev/zero"), "config file", 1024)
    with pytest.raises(FileReadError, match="is a character device"):
        list(iter_json_lines(Path("/dev/zero")))


def test_a_file_one_byte_over_the_limit_is_refused_naming_the_file_and_the_limit(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a" * 16)
    assert read_limited_text(path, "config file", 16) == "a" * 16
    path.write_bytes(b"a" * 17)
    with pytest.raises(FileReadError) as err:
        read_limited_text(path, "config file", 16)
    assert str(err.value) == f"config file {path} is larger than the limit of 16 bytes"


def test_a_pipe_that_never_ends_is_read_only_up_to_the_limit(tmp_path):
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    stop = threading.Event()

    def write_forever() -> None:
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as f:
            while not stop.is_set():
                f.write(b"\0" * 65536)

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    try:
        with pytest.raises(FileReadError, match="larger than the limit of 100000 bytes"):
            read_limited_text(fifo, "config file", 100_000)
    finally:
        stop.set()
    writer.join(10)
    assert not writer.is_alive()


def test_text_that_is_not_utf8_gives_the_byte_and_offset_and_a_bom_is_dropped(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(b"\xef\xbb\xbfsecret\n")
    assert read_limited_text(path, "token file", 64) == "secret\n"
    path.write_bytes(b"sec\xffret")
    with pytest.raises(FileReadError) as err:
        read_limited_text(path, "token file", 64)
    assert str(err.value) == f"token file {path} is not UTF-8 text (byte 0xff at offset 3)"
    with pytest.raises(FileReadError, match=r"^cannot read token file .*missing: No such file or directory$"):
        read_limited_text(tmp_path / "missing", "token file", 64)


def test_a_json_line_over_the_line_limit_is_a_bad_line_and_the_next_line_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 64)
    monkeypatch.setattr(textfiles, "_CHUNK_BYTES", 16)
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n' + '{"x": "' + "y" * 200 + '"}\n' + '{"b": "' + "z" * 55 + '"}\n{"c": 3}\n')
    got = list(iter_json_lines(path))
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert got[0][1] == {"a": 1} and got[3][1] == {"c": 3}
    assert isinstance(got[1][1], BadLine) and got[1][1].reason == "line longer than the limit of 64 bytes"
    assert got[2][1] == {"b": "z" * 55}  # 64 bytes and a newline: just inside the limit


def test_a_quote_never_closed_is_an_error_naming_its_line_not_a_cell_that_swallows_the_file(tmp_path):
    path = tmp_path / "open_quote.csv"
    path.write_text('id,text\n1,"Stocks slide\n2,Banks fall\n3,Oil jumps\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"open_quote\.csv:2: not readable CSV \(a quoted field opened here is never"):
        list(iter_csv_rows(path))


def test_a_stray_character_after_a_closing_quote_names_the_line_it_is_on(tmp_path):
    # strict parsing refuses '"a"b'; the message names the line of the bad record (DictReader's own line count is
    # the previous record's, one short)
    path = tmp_path / "stray.csv"
    path.write_text('id,text\n1,fine\n2,"also fine"\n3,"Oil "jumps\n4,later\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"stray\.csv:4: not readable CSV \(',' expected after"):
        list(iter_csv_rows(path))


def test_cells_beyond_the_header_that_hold_text_are_named_in_a_warning(tmp_path, caplog):
    path = tmp_path / "commas.csv"
    path.write_text("id,text\n1,Apple, Inc. falls\n2,ok,\n3,Banks fall\n4,GE, Boeing slide\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="finsentry.common.textfiles"):
        rows = list(iter_csv_rows(path))
    assert [r["text"] for _, r in rows] == ["Apple", "ok", "Banks fall", "GE"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "2 row(s) have more cells than the header (first at line 2)" in warnings[0], warnings


def test_a_header_that_names_a_column_twice_is_an_error_naming_the_column_and_its_positions(tmp_path):
    """``text,published_at,text``: csv.DictReader kept the last cell of the name, so 'second' was scored or
    replayed as the text and 'first' was dropped without a word. Now csv_header and iter_csv_rows (score,
    replay, run --source, labels import) refuse the header on one line, before any row."""
    path = tmp_path / "input.csv"
    path.write_text("text,published_at,text\nfirst,2015-08-24T10:00:00Z,second\n", encoding="utf-8")
    said = f"{path}: header names column 'text' twice (columns 1 and 3)"
    with pytest.raises(ValueError) as err:
        csv_header(path)
    assert str(err.value) == said
    with pytest.raises(ValueError) as err:
        next(iter_csv_rows(path))
    assert str(err.value) == said
    three = tmp_path / "ids.csv"
    three.write_text("id,id,text,id\n1,2,x,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ids\.csv: header names column 'id' 3 times \(columns 1, 2 and 4\)$"):
        list(iter_csv_rows(three))
    # blank names are no columns (a spreadsheet's trailing empty columns): still read; names differ by case
    blanks = tmp_path / "blanks.csv"
    blanks.write_text("id,Text,text,,\n1,a,b,,\n", encoding="utf-8")
    assert csv_header(blanks) == ["id", "Text", "text", "", ""]
    assert [row for _, row in iter_csv_rows(blanks)] == [{"id": "1", "Text": "a", "text": "b", "": ""}]
