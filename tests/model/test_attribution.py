"""Occlusion attribution (model/attribution.py) with the shipped ONNX model: the words behind a negative score."""

from __future__ import annotations

import logging

from finsentry.model.attribution import MAX_WORDS, Attributor, LazyAttributor, occlusion
from finsentry.model.scorer import Scorer

TEXT = "Shares plunge after the company misses earnings and faces a fraud lawsuit"


def test_the_real_model_names_plunge_first_and_the_deltas_are_what_they_say(model_dir) -> None:
    scorer = Scorer.load(model_dir, intra_op_threads=1, batch_size=MAX_WORDS + 1)
    words = Attributor.from_scorer(scorer).explain("i1", TEXT)
    print("attribution seen:", words)
    assert words and words[0]["word"] == "plunge", words
    assert 1 <= len(words) <= 3 and all(w["delta"] > 0 for w in words), words
    assert [w["delta"] for w in words] == sorted((w["delta"] for w in words), reverse=True), words
    # delta = P_neg(full) - P_neg(without the word), from the same one-call batch as the attribution scores it
    tokens = TEXT.split()
    variants = [" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))]
    probs = [p.sentiment_probs[0] for p in scorer.predict([TEXT, *variants])]
    plunge = round(probs[0] - probs[1 + tokens.index("plunge")], 4)
    assert words[0]["delta"] == plunge, (words, plunge)


def test_the_same_text_gets_the_same_words_whatever_was_scored_before(model_dir) -> None:
    """One call per item, nothing else in its batch: INT8 dynamic quantization cannot make it differ."""
    scorer = Scorer.load(model_dir, intra_op_threads=1, batch_size=MAX_WORDS + 1)
    first = Attributor.from_scorer(scorer)
    a = first.explain("x", TEXT)
    other = Attributor.from_scorer(scorer)
    other.explain("y", "Apple stock slid 2.1% as iPhone sales disappoint investors")
    b = other.explain("x", TEXT)
    assert a == b, (a, b)
    assert first.explain("x", TEXT) == a and first.computed == 1  # the cache answers the second time


def test_a_punctuation_token_is_not_tried_and_a_repeated_word_is_listed_once() -> None:
    seen: list[list[str]] = []

    def p_neg(texts):
        seen.append(list(texts))
        return [0.2 * t.lower().split().count("down") for t in texts]

    words = occlusion("Down - stocks down", p_neg)
    assert seen == [["Down - stocks down", "- stocks down", "Down - down", "Down - stocks"]], seen
    assert words == [{"word": "Down", "delta": 0.2}], words  # both copies erase 0.2: listed once, the first


def test_the_cache_is_bounded_and_keyed_by_id_and_text() -> None:
    calls = []
    att = Attributor(lambda texts: calls.append(1) or [0.5] * len(texts), cache_items=2)
    for i in range(3):
        att.explain(f"i{i}", "bad news today")
    att.explain("i0", "bad news today")  # evicted: computed again
    att.explain("i2", "another text")  # same id, new text: computed again
    assert att.computed == 5 and len(calls) == 5 and len(att._cache) == 2, (att.computed, len(att._cache))


def test_a_model_that_cannot_load_logs_one_warning_and_leaves_the_key_out(tmp_path, caplog) -> None:
    lazy = LazyAttributor(tmp_path / "nothing-here")
    evidence = [{"id": "a", "text": TEXT}, {"id": "b", "text": "Stocks fall"}]
    with caplog.at_level(logging.WARNING, logger="finsentry.model.attribution"):
        lazy.annotate(evidence)
        lazy.annotate(evidence)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "attribution off" in warnings[0], warnings
    assert all("attribution" not in e for e in evidence), evidence
    assert lazy.failed, lazy.failed
