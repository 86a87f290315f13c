"""The torch-free Scorer on the shipped INT8 artifact: real predictions, batching, card logits, bad input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.model.scorer import MAX_CHARS, ModelLoadError, Scorer, ScoringInputError, combine_windows
from finsentry.model.verify import verify_reference_logits

NEGATIVE = [
    "Shares plunge 30% after the company issues a profit warning and its CEO resigns",
    "Operating loss widened to EUR 12 million as net sales fell 25 percent",
    "The bank cut 2,000 jobs after quarterly profit collapsed",
]
POSITIVE = [
    "Net profit rose 40 percent and the company raised its full-year guidance",
    "Operating profit increased to EUR 30 million from EUR 20 million a year earlier",
    "The stock jumped to a record high after earnings beat estimates",
]


@pytest.fixture(scope="module")
def scorer(model_dir):
    return Scorer.load(model_dir)


def test_clearly_negative_and_positive_headlines(scorer):
    preds = scorer.predict(NEGATIVE + POSITIVE)
    assert [p.sentiment for p in preds] == ["negative"] * 3 + ["positive"] * 3
    assert all(p.sentiment_score < -0.3 for p in preds[:3])
    assert all(p.sentiment_score > 0.3 for p in preds[3:])


def test_prediction_fields_are_consistent(scorer):
    (p,) = scorer.predict(["Fed raises interest rates by 25 basis points"])
    assert p.topic in TOPIC_LABELS and p.sentiment in SENTIMENT_LABELS
    assert sum(p.sentiment_probs) == pytest.approx(1.0, abs=1e-6)
    assert p.sentiment_score == pytest.approx(p.sentiment_probs[2] - p.sentiment_probs[0])
    assert p.sentiment == SENTIMENT_LABELS[int(np.argmax(p.sentiment_probs))]
    assert 0.0 < p.topic_prob <= 1.0
    assert p.model_version == json.loads((scorer.folder / "labels.json").read_text())["model_version"]
    assert json.loads(json.dumps(p.to_dict()))["sentiment_probs"] == list(p.sentiment_probs)


def test_mixed_length_batch_equals_one_by_one(scorer):
    texts = ["ok", *NEGATIVE, "Apple " * 40, *POSITIVE, "Markets"]
    batched = scorer.predict(texts)
    single = [scorer.predict([t])[0] for t in texts]
    assert [p.sentiment for p in batched] == [p.sentiment for p in single]
    assert [p.topic for p in batched] == [p.topic for p in single]
    # dynamic INT8 quantizes activations per batch tensor, so probabilities move a little with batch mates
    assert np.allclose([p.sentiment_probs for p in batched], [p.sentiment_probs for p in single], atol=0.03)


def test_card_reference_logits_are_reproduced(scorer, model_dir):
    card = json.loads((model_dir / "card.json").read_text())
    assert len(card["reference_logits"]) == 32
    assert verify_reference_logits(scorer, card) <= 1e-3


def test_bad_inputs_raise_clear_errors_and_long_text_is_reported_truncated(scorer):
    with pytest.raises(ScoringInputError, match="text 1 is empty"):
        scorer.predict(["fine", "   "])
    with pytest.raises(ScoringInputError, match="text 0 is NoneType"):
        scorer.predict([None])
    with pytest.raises(ScoringInputError, match="text 0 is bytes"):
        scorer.predict([b"\xff\xfe not utf-8"])
    with pytest.raises(ScoringInputError, match="not one string"):
        scorer.predict("a single string")
    huge = "Profit warning. " * (100_000 // 16)
    (p,) = scorer.predict([huge])
    assert p.truncated and len(huge) > MAX_CHARS
    lone_surrogate = b"caf\xe9 shares fall".decode("utf-8", "surrogateescape")
    (q,) = scorer.predict([lone_surrogate])
    assert q.sentiment in SENTIMENT_LABELS and not q.truncated
    assert scorer.predict([]) == []


def test_missing_or_corrupt_artifact_is_refused_with_the_file_named(model_dir, tmp_path):
    for f in ("labels.json", "tokenizer.json"):
        shutil.copyfile(model_dir / f, tmp_path / f)
    with pytest.raises(ModelLoadError, match="model.onnx is missing"):
        Scorer.load(tmp_path)
    data = (model_dir / "model.onnx").read_bytes()
    (tmp_path / "model.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        Scorer.load(tmp_path)
    (tmp_path / "labels.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="labels.json"):
        Scorer.load(tmp_path)


def test_score_cli_text_and_file(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    runner = CliRunner()
    one = runner.invoke(app, ["score", NEGATIVE[0]])
    assert one.exit_code == 0, one.output
    first = json.loads(one.stdout.splitlines()[-1])
    assert first["sentiment"] == "negative"
    probs = first["sentiment_probs"]  # named, not a bare list (issue 13)
    assert list(probs) == ["negative", "neutral", "positive"] and max(probs, key=probs.get) == "negative", probs
    assert first["sentiment_score"] == pytest.approx(probs["positive"] - probs["negative"])
    src = tmp_path / "in.csv"
    src.write_text("headline,id\n" + "\n".join(f'"{t}",{i}' for i, t in enumerate(POSITIVE)) + "\n,9\n")
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["score", "--input", str(src), "--text-column", "headline", "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0", "1", "2"] and {r["sentiment"] for r in rows} == {"positive"}
    assert "skipped 1" in res.output
    bad = runner.invoke(app, ["score", "--input", str(tmp_path / "nope.csv")])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_score_cli_says_the_language_and_warns_where_the_live_scorer_would_not_score(model_dir, tmp_path, monkeypatch):
    """issue 13, item 4: the live scorer scores only ingest.scorer.allowed_langs (by the declared lang); score
    says the detected language of each text and warns about the others, by the same rule."""
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    runner = CliRunner()
    english = runner.invoke(app, ["score", NEGATIVE[0]])
    assert english.exit_code == 0, english.output
    line = json.loads(english.stdout.splitlines()[-1])
    assert line["detected_lang"] == "en" and 0.5 <= line["detected_lang_confidence"] <= 1
    assert "warning" not in line and "warning" not in english.stderr
    spanish = "Las acciones de Apple caen un 5% tras los resultados trimestrales"
    res = runner.invoke(app, ["score", spanish])
    assert res.exit_code == 0, res.output
    line = json.loads(res.stdout.splitlines()[-1])
    assert line["detected_lang"] == "es" and line["detected_lang_confidence"] >= 0.5
    want = (
        "language 'es' is not in ingest.scorer.allowed_langs (en): the live scorer would dead-letter an item "
        "declared so (unsupported_language)"
    )
    assert line["warning"] == want and res.stderr.strip() == f"warning: {want}"
    assert set(line["sentiment_probs"]) == {"negative", "neutral", "positive"}  # still scored, and named
    # allowed_langs is the scorer's setting: with es allowed there is nothing to warn about
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS", '["en", "es"]')
    assert "warning" not in json.loads(runner.invoke(app, ["score", spanish]).stdout.splitlines()[-1])
    monkeypatch.delenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS")
    # a file: a German headline warned about; a declared lang judged by the scorer's rule (en-US is en)
    src = tmp_path / "in.jsonl"
    german = "Die Apple-Aktie bricht nach enttäuschenden Quartalszahlen deutlich ein"
    rows = [
        {"text": POSITIVE[0]},
        {"text": german},
        {"text": POSITIVE[1], "lang": "fr"},
        {"text": german, "lang": "en-US"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["score", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["detected_lang"] for r in got] == ["en", "de", "en", "de"]
    assert [r.get("warning", "")[:20] for r in got] == ["", "language 'de' is not", "lang 'fr' is not in ", ""]
    assert "dead-letters this item" in got[2]["warning"]
    # the summary keeps the rows the live scorer dead-letters (a declared lang) apart from those it scores (no lang
    # declared: detection is only a hint that the text may not be English; it said all 2 would be dead-lettered)
    lines = res.stderr.splitlines()
    assert (
        "warning: 1 of 4 scored rows declare a lang the live scorer dead-letters (not text, or outside "
        "ingest.scorer.allowed_langs (en)): see each row's warning field"
    ) in lines, lines
    assert (
        "warning: 1 of 4 scored rows look like another language by detection (py3langid: de 1); the model is trained "
        "on English, so check their scores (each row's warning field); the live scorer goes by the declared lang, "
        "never by detection: it dead-letters only rows whose declared lang is outside ingest.scorer.allowed_langs (en)"
    ) in lines, lines


def test_score_cli_warns_on_a_declared_lang_the_scorer_would_refuse_whatever_its_type(model_dir, tmp_path, monkeypatch):
    """A lang of the wrong type or an empty one is dead-lettered live (wrong_type / unsupported_language):
    score must not read it as 'no lang declared' and stay quiet."""
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.jsonl"
    rows = [{"text": POSITIVE[0], "lang": v} for v in (5, ["en"], True, "", None)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    warnings = [json.loads(x).get("warning", "") for x in out.read_text().splitlines()]
    assert [w.endswith("(wrong_type)") for w in warnings] == [True, True, True, False, False], warnings
    assert warnings[3].endswith("(unsupported_language)") and warnings[4] == "", warnings


def test_score_cli_reads_a_csv_cell_longer_than_the_csv_module_default(model_dir, tmp_path, monkeypatch):
    import csv

    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    long_text = NEGATIVE[0] + " " + "x" * 200_000  # csv.field_size_limit() is 131072 by default
    src = tmp_path / "long.csv"
    with src.open("w", newline="") as f:
        csv.writer(f).writerows([["id", "text"], ["long", long_text], ["short", POSITIVE[0]]])
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    limit = csv.field_size_limit()
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(out), "--rejects", str(rejects)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], len(r["text"]), r["truncated"]) for r in rows] == [("short", len(POSITIVE[0]), False)]
    assert rows[0]["sentiment"] == "positive"
    # the long cell is read whole, then skipped: over the contract's 10,000 characters the live scorer dead-letters
    # it (text_too_long; a long text under the limit is scored and says truncated: test_cli_score_dead_letters)
    (long,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (long["line"], long["reason"], long["row"]["id"], long["row"]["text"]) == (
        2,
        "text_too_long",
        "long",
        long_text,
    )
    assert "skipped 1 rows: the live scorer dead-letters them (text_too_long; line 2; " in res.stderr, res.stderr
    assert csv.field_size_limit() == limit  # restored for the rest of the process


def test_score_cli_rejects_jsonl_lines_that_are_not_objects_and_scores_the_rest(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": "a", "text": NEGATIVE[1]}), "[1, 2]", '"x"', "3", "", "{bad", "null"]
    src.write_text("\n".join([*lines, json.dumps({"id": "b", "text": POSITIVE[1]})]) + "\n")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["sentiment"]) for r in scored] == [("a", "negative"), ("b", "positive")]
    assert [line for line in res.stderr.splitlines() if line.startswith("  ")] == [
        f"  {src}:2: expected a JSON object, got a list",
        f"  {src}:3: expected a JSON object, got a string",
        f"  {src}:4: expected a JSON object, got a number",
        f"  {src}:6: not JSON (Expecting property name enclosed in double quotes)",
        f"  {src}:7: expected a JSON object, got null",
    ]
    assert f"rejected 5 lines of {src}; each line must be one JSON object" in res.stderr
    assert "scored 2, skipped 0" in res.stderr and "Traceback" not in res.output


def test_score_cli_stops_before_scoring_on_a_bad_output_or_column(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    runner = CliRunner()
    src = tmp_path / "in.csv"
    src.write_text(f"headline\n{POSITIVE[0]}\n")
    for output, why in ((tmp_path / "no-dir" / "out.jsonl", "No such file or directory"), (tmp_path, "Is a directory")):
        res = runner.invoke(app, ["score", "--input", str(src), "--text-column", "headline", "--output", str(output)])
        assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
        assert res.stderr.splitlines()[-1] == f"error: cannot write --output {output}: {why}; nothing was scored"
        assert "scored" not in res.stderr.replace("nothing was scored", "")
    res = runner.invoke(app, ["score", "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == (
        f"error: {src}: no column 'text' in the header (columns: headline); name the text column with --text-column"
    )
    assert not (tmp_path / "o.jsonl").exists()


def test_labels_that_do_not_match_the_graph_are_refused_at_load(model_dir, tmp_path):
    for f in ("model.onnx", "tokenizer.json"):
        shutil.copyfile(model_dir / f, tmp_path / f)
    labels = json.loads((model_dir / "labels.json").read_text())
    (tmp_path / "labels.json").write_text(json.dumps(labels | {"topic": labels["topic"][:19]}))
    with pytest.raises(ModelLoadError, match="do not belong together"):
        Scorer.load(tmp_path)
    (tmp_path / "labels.json").write_text(json.dumps(labels | {"sentiment": "abc"}))
    with pytest.raises(ModelLoadError, match="non-empty list"):
        Scorer.load(tmp_path)


def test_labels_temperature_scales_the_probabilities_but_not_the_labels_or_the_logits(scorer, model_dir, long_article):
    shipped = json.loads((model_dir / "labels.json").read_text())
    assert scorer.temperature == shipped["temperature"]  # the shipped labels.json's fitted temperatures
    labels = {k: v for k, v in shipped.items() if k != "temperature"}
    temperature = {"sentiment": 2.0, "topic": 0.5}

    def with_labels(labels: dict) -> Scorer:
        return Scorer(
            scorer.session,
            scorer.tokenizer,
            labels,
            scorer.folder,
            scorer.variant,
            scorer.max_length,
            scorer.batch_size,
        )

    unscaled, hot = with_labels(labels), with_labels(labels | {"temperature": temperature})
    assert unscaled.temperature == {"topic": 1.0, "sentiment": 1.0}  # no key: T = 1
    texts = [*NEGATIVE, *POSITIVE, " ".join(long_article)]  # the last one: three windows, combined
    raw, scaled = unscaled.logits(texts), hot.logits(texts)
    assert np.array_equal(raw[0], scaled[0]) and np.array_equal(raw[1], scaled[1])  # logits stay raw
    plain, calibrated = unscaled.predict(texts), hot.predict(texts)
    assert [(p.topic, p.sentiment) for p in calibrated] == [(p.topic, p.sentiment) for p in plain]
    assert calibrated[-1].chunks == 3
    for p, q, ws in zip(plain, calibrated, scorer.window_scores(texts), strict=True):
        want_sent = combine_windows(ws.sentiment_logits, ws.tokens, temperature["sentiment"])
        want_topic = combine_windows(ws.topic_logits, ws.tokens, temperature["topic"])
        assert np.allclose(q.sentiment_probs, want_sent, atol=1e-9), (q, want_sent)
        assert q.sentiment_score == pytest.approx(want_sent[2] - want_sent[0], abs=1e-9)
        assert q.topic_prob == pytest.approx(want_topic.max(), abs=1e-9)
        assert max(q.sentiment_probs) < max(p.sentiment_probs)  # T = 2 softens
        assert q.topic_prob > p.topic_prob  # T = 0.5 sharpens


def test_a_bad_temperature_in_labels_json_is_refused_at_load_in_one_line(model_dir, tmp_path):
    shutil.copyfile(model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "model.onnx").symlink_to(model_dir / "model.onnx")
    labels = json.loads((model_dir / "labels.json").read_text())
    (tmp_path / "labels.json").write_text(json.dumps(labels | {"temperature": {"sentiment": 1.25}}))
    assert Scorer.load(tmp_path, verify=False).temperature == {"topic": 1.0, "sentiment": 1.25}
    for bad in (
        {"sentiment": 0},
        {"topic": -1.5},
        {"sentiment": "1.5"},
        {"sentiment": True},
        {"topic": float("inf")},
        {"sentimnt": 1.2},
        [1.2, 1.0],
        1.5,
    ):
        (tmp_path / "labels.json").write_text(json.dumps(labels | {"temperature": bad}))
        with pytest.raises(ModelLoadError, match="'temperature' must be") as caught:
            Scorer.load(tmp_path, verify=False)
        assert "labels.json" in str(caught.value) and "\n" not in str(caught.value), bad


def test_score_cli_rejects_unusable_jsonl_lines_and_keeps_the_good_ones(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"id": "a", "text": NEGATIVE[0]}).encode() + b"\n"  # a BOM before line 1
        b'{"id": "s", "text": "bad \\ud800 surrogate"}\n'
        b'{"id": "n", "text": "x", "n": ' + b"9" * 5000 + b"}\n"
        b'{"id": "d", "text": "x", "deep": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}\n"
        + json.dumps({"id": "b", "text": POSITIVE[0]}).encode()
        + b"\n"
    )
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["sentiment"]) for r in scored] == [("a", "negative"), ("b", "positive")]
    assert [line for line in res.stderr.splitlines() if line.startswith("  ")] == [
        f"  {src}:2: not usable JSON: field 'text' holds a lone surrogate U+D800 (an unpaired \\ud800 escape), "
        "which is not valid text",
        f"  {src}:3: not usable JSON: a number with more than 4300 digits",
        f"  {src}:4: not usable JSON: nested deeper than 64 levels",
    ]
    assert "scored 2, skipped 0" in res.stderr and "Traceback" not in res.output


def test_score_cli_jsonl_without_the_text_field_stops_like_a_csv_without_the_column(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.jsonl"
    src.write_text('{"headline": "Shares plunge"}\n{"headline": "x", "id": 2}\n')
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == (
        f"error: {src}: no line has a field 'text' (fields: headline, id); name the text field with --text-column"
    )
    assert not out.exists()
    ok = CliRunner().invoke(app, ["score", "--input", str(src), "--text-column", "headline", "--output", str(out)])
    assert ok.exit_code == 0, ok.output
    assert len(out.read_text().splitlines()) == 2


def test_score_cli_input_suffix_case_and_directories(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    upper = tmp_path / "IN.CSV"
    upper.write_bytes(b"\xef\xbb\xbftext,id\n" + POSITIVE[0].encode() + b",7\n")  # Excel: BOM + upper-case suffix
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(upper), "--output", str(out)])
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["id"], row["sentiment"]) == ("7", "positive")
    folder = tmp_path / "a-folder.jsonl"
    folder.mkdir()
    res = CliRunner().invoke(app, ["score", "--input", str(folder)])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == f"error: input file {folder} is a directory; give a file"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
def test_score_cli_write_error_says_how_many_rows_were_written(model_dir, tmp_path, monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in NEGATIVE))
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", "/dev/full"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert res.stderr.splitlines()[-1] == (
        "error: cannot write --output /dev/full: No space left on device; 0 scored rows were written before the "
        "error (of 3 rows read)"
    )
    assert "Traceback" not in res.output


def test_score_cli_says_which_lines_were_not_utf8_and_still_scores_them(model_dir, tmp_path, monkeypatch):
    """Bad input loses nothing and is named: a JSONL line with bytes that are not UTF-8 is scored with U+FFFD in
    their place (as before) and a warning now counts such lines and names the first (it was silent)."""
    from finsentry.cli import app
    from finsentry.common.textfiles import invalid_utf8_lines

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.jsonl"
    good = json.dumps({"id": "a", "text": NEGATIVE[0]}).encode()
    bad = b'{"id": "b", "text": "Shares \xff\xfe plunge"}'
    src.write_bytes(good + b"\n" + bad + b"\n" + good.replace(b'"a"', b'"c"') + b"\n" + bad.replace(b'"b"', b'"d"'))
    assert invalid_utf8_lines(src) == [(2, "byte 0xff at column 29"), (4, "byte 0xff at column 29")]
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"] and rows[1]["text"] == "Shares \ufffd\ufffd plunge", rows
    assert "2 lines of" in res.output and "first: line 2, byte 0xff at column 29" in res.output, res.output
    assert "invalid_utf8" in res.output, res.output
    src.write_bytes(good + b"\n")
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--out", str(out)])
    assert res.exit_code == 0 and "UTF-8" not in res.output, res.output


def test_score_cli_reads_an_empty_lang_cell_of_a_csv_as_no_lang(model_dir, tmp_path, monkeypatch):
    """A CSV has no null: an empty lang cell declares nothing (a replay of the file drops it), so a German row
    with an empty lang gets the detected-language warning, not 'lang '' is not in allowed_langs'."""
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    src = tmp_path / "in.csv"
    german = "Die Apple-Aktie bricht nach enttäuschenden Quartalszahlen deutlich ein"
    src.write_text(f'text,lang\n"{german}",\n"{POSITIVE[0]}",\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    warnings = [json.loads(x).get("warning", "") for x in out.read_text().splitlines()]
    assert warnings[0].startswith("language 'de' is not") and warnings[1] == "", warnings
