"""finsentry report's last line counts the records it skipped: the log shows only the first ten of them."""

from __future__ import annotations

import json

from typer.testing import CliRunner


def _record(i: int, with_time: bool) -> dict:
    value = {
        "id": f"n{i}",
        "text": f"headline {i}",
        "topic": "Stock Movement",
        "sentiment": "neutral",
        "sentiment_probs": {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
        "sentiment_score": 0.0,
        "model_version": "v1",
    }
    return value | ({"published_at": f"2023-03-10T12:{i:02d}:00Z"} if with_time else {})


def test_the_summary_line_counts_every_skipped_record(tmp_path):
    """14 usable records and 12 without published_at (a CSV scored without a time column, say): the line says 14
    items and 12 skipped; it used to say '14 items, ...' and nothing of the 12 but the first ten log lines."""
    from finsentry.cli import app

    src = tmp_path / "scored.jsonl"
    rows = [_record(i, with_time=i % 2 == 0 or i >= 24) for i in range(26)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = CliRunner().invoke(app, ["report", "--input", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("14 items, ") and "12 records skipped" in last, res.output
    assert "- n1: missing_field: published_at" in (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
