"""``finsentry score --input`` skips, counts and names the rows the live scorer dead-letters for their text or
tickers (the contract's own checks: ``ingest.validation.check_given_fields``), and scores the others exactly as it
scores them alone; the language is detected on the text it scores (links removed), not on the raw text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.ingest.contract import MAX_TEXT_CHARS, MAX_TICKERS

GOOD = [
    {"id": "g1", "text": "Shares plunge 30% after the company issues a profit warning and its CEO resigns"},
    {"id": "g2", "text": "Net profit rose 40 percent and the company raised its full-year guidance"},
]
"""Rows the live scorer scores: the first and last of every input below."""


@pytest.fixture(autouse=True)
def _shipped_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))


def _score(src: Path, *args: str):
    """Run ``finsentry score --input src --out ... --rejects ...``: ``(result, scored rows, rejected rows)``."""
    from finsentry.cli import app

    out, rejects = src.with_suffix(".out.jsonl"), src.with_suffix(".rejects.jsonl")
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(out), "--rejects", str(rejects), *args])
    return res, _read(out), _read(rejects)


def _read(path: Path) -> list[dict]:
    """The JSON lines of ``path`` ([] if absent); split at line feeds only (a text may hold a raw U+0085)."""
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x] if path.exists() else []


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _good_alone(tmp_path: Path, rows: list[dict]) -> list[dict]:
    """What score writes for ``rows`` alone (the baseline the good rows of a mixed file must match exactly)."""
    res, scored, rejected = _score(_jsonl(tmp_path / "alone.jsonl", rows))
    assert res.exit_code == 0 and rejected == [] and len(scored) == len(rows), res.output
    return scored


def test_a_text_over_the_contract_limit_is_skipped_as_text_too_long(tmp_path: Path) -> None:
    assert MAX_TEXT_CHARS == 10_000  # the limit docs/dlq.md states
    words = (GOOD[0]["text"] + " ") * (MAX_TEXT_CHARS // len(GOOD[0]["text"]) + 1)
    at_limit = {"id": "max", "text": words[: MAX_TEXT_CHARS - 1] + "."}  # exactly 10,000 characters: scored
    over = {"id": "over", "text": words[:MAX_TEXT_CHARS] + "."}
    res, scored, rejected = _score(_jsonl(tmp_path / "in.jsonl", [GOOD[0], at_limit, over, GOOD[1]]))
    assert res.exit_code == 0, res.output
    assert [(r["id"], r["truncated"]) for r in scored] == [("g1", False), ("max", True), ("g2", False)]
    assert len(scored[1]["text"]) == MAX_TEXT_CHARS
    assert "scored 3, skipped 0 rows without a non-empty 'text'" in res.stderr, res.stderr
    assert (
        "skipped 1 rows: the live scorer dead-letters them (text_too_long; line 3; first: text: String should have "
        "at most 10000 characters)" in res.stderr
    ), res.stderr
    assert rejected == [
        {
            "line": 3,
            "reason": "text_too_long",
            "message": "text: String should have at most 10000 characters",
            "row": over,
        }
    ]
    assert scored == _good_alone(tmp_path, [GOOD[0], at_limit, GOOD[1]])


def test_more_than_64_tickers_in_a_csv_cell_are_skipped_as_invalid_ticker(tmp_path: Path) -> None:
    symbols = [f"X{i}" for i in range(MAX_TICKERS + 1)]
    src = tmp_path / "in.csv"
    src.write_text(
        "id,text,tickers\n"
        f'g1,"{GOOD[0]["text"]}",AAPL\n'
        f'most,"Shares of every bank fell",{";".join(symbols[:MAX_TICKERS])}\n'
        f'over,"Shares of every bank fell",{";".join(symbols)}\n'
        f'g2,"{GOOD[1]["text"]}",\n',
        encoding="utf-8",
    )
    res, scored, rejected = _score(src)
    assert res.exit_code == 0, res.output
    assert [(r["id"], len(r["tickers"])) for r in scored] == [("g1", 1), ("most", MAX_TICKERS), ("g2", 0)]
    assert (
        "skipped 1 rows: the live scorer dead-letters them (invalid_ticker; line 4; first: tickers: List should "
        f"have at most {MAX_TICKERS} items after validation, not {MAX_TICKERS + 1})" in res.stderr
    ), res.stderr
    assert [(r["line"], r["reason"], r["row"]["id"]) for r in rejected] == [(4, "invalid_ticker", "over")]
    alone = tmp_path / "alone.csv"
    alone.write_text("\n".join(ln for ln in src.read_text().splitlines() if not ln.startswith("over,")) + "\n")
    assert scored == _score(alone)[1]


def test_a_ticker_that_is_not_a_symbol_is_skipped_as_invalid_ticker(tmp_path: Path) -> None:
    rows = [
        GOOD[0] | {"tickers": ["$aapl", "MSFT"]},  # cleaned as news.raw cleans it: scored
        {"id": "words", "text": "Apple beats estimates", "tickers": ["AAPL", "not a ticker"]},
        {"id": "bare", "text": "Apple beats estimates", "tickers": ["$"]},
        GOOD[1],
    ]
    res, scored, rejected = _score(_jsonl(tmp_path / "in.jsonl", rows))
    assert res.exit_code == 0, res.output
    assert [(r["id"], r.get("tickers")) for r in scored] == [("g1", ["AAPL", "MSFT"]), ("g2", None)]
    assert (
        "skipped 2 rows: the live scorer dead-letters them (invalid_ticker; lines 2, 3; first: tickers: ticker 'not a "
        "ticker' is not a symbol like AAPL, $aapl or RDS-B)" in res.stderr
    ), res.stderr
    assert [(r["line"], r["reason"], r["row"]) for r in rejected] == [
        (2, "invalid_ticker", rows[1]),
        (3, "invalid_ticker", rows[2]),
    ]
    assert scored == _good_alone(tmp_path, [rows[0], rows[3]])


def test_nul_bytes_in_the_text_are_skipped_as_control_characters(tmp_path: Path) -> None:
    """A NUL (any C0 control but tab, CR, LF) is dead-lettered live; a C1 control is removed from the text live,
    so it is scored here too. More than five rows of one reason: the first five lines are named."""
    nul = [{"id": f"nul{i}", "text": f"Shares plunge\x00 after the warning {i}"} for i in range(7)]
    c1 = {"id": "c1", "text": "Shares plunge\x85 after the warning"}
    res, scored, rejected = _score(_jsonl(tmp_path / "in.jsonl", [GOOD[0], *nul, c1, GOOD[1]]))
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in scored] == ["g1", "c1", "g2"]
    assert (
        "skipped 7 rows: the live scorer dead-letters them (control_characters; lines 2, 3, 4, 5, 6 and 2 more; "
        "first: text: control character U+0000 at index 13)" in res.stderr
    ), res.stderr
    assert [(r["line"], r["reason"]) for r in rejected] == [(n, "control_characters") for n in range(2, 9)]
    assert rejected[0]["row"] == nul[0]
    assert scored == _good_alone(tmp_path, [GOOD[0], c1, GOOD[1]])


def test_every_reason_gets_its_own_line_and_empty_text_keeps_its_words(tmp_path: Path) -> None:
    rows = [
        {"id": "link", "text": "https://t.co/only"},
        GOOD[0],
        {"id": "nul", "text": "a\x00b"},
        {"id": "long", "text": "x" * (MAX_TEXT_CHARS + 1)},
        {"id": "blank", "text": "  "},
        GOOD[1],
    ]
    res, scored, rejected = _score(_jsonl(tmp_path / "in.jsonl", rows))
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in scored] == ["g1", "g2"]
    summary = [ln for ln in res.stderr.splitlines() if ln.startswith(("scored", "skipped"))]
    assert summary == [
        "scored 2, skipped 1 rows without a non-empty 'text'",
        "skipped 1 rows whose 'text' is only links, entities or invisible characters: the live scorer dead-letters "
        "them (empty_text; line 1)",
        "skipped 1 rows: the live scorer dead-letters them (text_too_long; line 4; first: text: String should have "
        "at most 10000 characters)",
        "skipped 1 rows: the live scorer dead-letters them (control_characters; line 3; first: text: control "
        "character U+0000 at index 1)",
    ], res.stderr
    assert [r["reason"] for r in rejected] == ["empty_text", "control_characters", "text_too_long"]


def test_one_text_the_live_scorer_dead_letters_is_refused(tmp_path: Path) -> None:
    from finsentry.cli import app

    runner = CliRunner()
    for text, why in (
        ("x" * (MAX_TEXT_CHARS + 1), "text_too_long: text: String should have at most 10000 characters"),
        ("Shares\x01plunge", "control_characters: text: control character U+0001 at index 6"),
    ):
        res = runner.invoke(app, ["score", text])
        assert res.exit_code == 2 and res.stdout == "", res.output
        assert res.stderr.splitlines() == [f"error: TEXT: the live scorer dead-letters it ({why})"]
    res = runner.invoke(app, ["score", GOOD[0]["text"], "--rejects", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 2 and "--rejects goes with --input" in res.stderr, res.output


def test_the_language_is_detected_on_the_text_that_is_scored(tmp_path: Path) -> None:
    """The live scorer scores the normalized text; a link's words (here German) are not part of it, so they no
    longer make an English headline read as German and warn."""
    from finsentry.ingest.language import detect_language
    from finsentry.ingest.normalize import normalize_text

    link = "https://www.faz.net/aktuell/finanzen/die-aktie-bricht-nach-enttaeuschenden-quartalszahlen-deutlich-ein"
    text = f"Airbus shares fall after profit warning {link}"
    assert detect_language(text)[0] == "de" and detect_language(text)[1] >= 0.5  # the raw text reads as German
    res, (row,), _ = _score(_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": text}]))
    assert res.exit_code == 0, res.output
    lang, confidence = detect_language(normalize_text(text).text)
    assert (row["detected_lang"], row["detected_lang_confidence"]) == ("en", round(confidence, 3)) and lang == "en"
    assert "warning" not in row and "warning" not in res.stderr, res.stderr
    assert row["text"] == text  # the row's own text is kept
    from finsentry.cli import app

    one = CliRunner().invoke(app, ["score", text])
    assert one.exit_code == 0 and json.loads(one.stdout)["detected_lang"] == "en", one.output


def test_rejects_or_output_naming_the_input_or_each_other_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """``--rejects IN`` erased the input (score reads it whole first, then truncated it for the rejects, exit 0),
    and ``--out F --rejects F`` left the rejects written over the scored rows' first bytes."""
    from finsentry.cli import app

    src = _jsonl(tmp_path / "in.jsonl", [GOOD[0], {"id": "nul", "text": "a\x00b"}, GOOD[1]])
    before = src.read_bytes()
    (tmp_path / "sub").mkdir()
    same = tmp_path / "scored.jsonl"
    for args, error in (
        (
            ["--out", str(same), "--rejects", str(src)],
            f"error: --rejects {src} is the --input file: writing it would erase the input; name another file",
        ),
        (
            ["--out", str(tmp_path / "sub" / ".." / "in.jsonl")],
            f"error: --output {tmp_path / 'sub' / '..' / 'in.jsonl'} is the --input file: writing it would erase "
            "the input; name another file",
        ),
        (
            ["--out", str(same), "--rejects", str(tmp_path / "sub" / ".." / "scored.jsonl")],
            f"error: --output and --rejects name one file ({tmp_path / 'sub' / '..' / 'scored.jsonl'}): the rejects "
            "would overwrite the scored rows",
        ),
    ):
        res = CliRunner().invoke(app, ["score", "--input", str(src), *args])
        assert res.exit_code == 2, res.output
        assert res.stderr.splitlines()[-1] == error, res.stderr
        assert src.read_bytes() == before
        assert not same.exists()


def test_skipped_rows_cost_little_more_memory_than_the_rows_themselves(tmp_path: Path) -> None:
    """Each skipped row kept the caught InvalidRecord, whose traceback pins the validator's frames: ~2 KB a row
    (200,000 NUL rows took the process to 1.1 GB RSS, against 0.45 GB for as many blank rows). Measured with
    tracemalloc: 6,000 skipped rows may add at most 1,000 bytes each to the command's peak over an empty input
    (the row as read, its line number and its reason: ~500 bytes; ~2,400 before)."""
    import tracemalloc

    from finsentry.cli import app

    def peak(rows: int) -> int:
        src = _jsonl(tmp_path / f"in{rows}.jsonl", [{"id": f"n{i}", "text": f"a\x00b {i}"} for i in range(rows)])
        tracemalloc.start()
        try:
            res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(tmp_path / "out.jsonl")])
            top = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert res.exit_code == 0, res.output
        return top

    peak(0)  # imports and caches of the first run out of the way
    rows = 6_000
    grown = peak(rows) - peak(0)
    assert grown < rows * 1_000, grown
