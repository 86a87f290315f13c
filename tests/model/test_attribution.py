"""Occlusion attribution (model/attribution.py) with the shipped ONNX model: the words behind a negative score."""

from __future__ import annotations

import logging

import pytest

from finsentry.model.attribution import (
    ADDED_FUNCTION_WORDS,
    FUNCTION_WORDS,
    KEPT_CONTENT_WORDS,
    KEPT_SENTIMENT_WORDS,
    MAX_WORDS,
    Attributor,
    LazyAttributor,
    is_function_word,
    occlusion,
)
from finsentry.model.scorer import Scorer

TEXT = "Shares plunge after the company misses earnings and faces a fraud lawsuit"

# Negative CNBC headlines of the SVB week (../shared/data/events/svb2023_cnbc.csv, column title) with the verb the
# shipped model puts first; before function words were left out the model listed "than", "on", "on", "by",
# "because", "is" and "and" among their three words.
SVB_HEADLINES = {
    "Shares of SVB Financial fall more than 50% as tech-focused bank looks to raise more cash": "fall",
    "Crypto bank Signature slides on Friday amid troubles at Silicon Valley Bank, Silvergate": "slides",
    "Saudi National Bank loses over $1 billion on Credit Suisse investment": "loses",
    "Silicon Valley Bank is shut down by regulators, FDIC to protect insured deposits": "regulators",
    "Goldman Sachs cuts GDP forecast because of stress on small banks, which are key to U.S. economy": "cuts",
    "Carl Icahn says our economy is breaking because of inflation and poor corporate leadership": "breaking",
}


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


def test_the_real_model_lists_content_words_of_real_negative_headlines(model_dir) -> None:
    scorer = Scorer.load(model_dir, intra_op_threads=1, batch_size=MAX_WORDS + 1)
    attributor = Attributor.from_scorer(scorer)
    seen = {text: [w["word"] for w in attributor.explain(text, text)] for text in SVB_HEADLINES}
    for text, words in seen.items():
        assert words and not [w for w in words if is_function_word(w)], f"words seen: {seen}"
        assert all(w in text for w in words), f"words seen: {seen}"
    assert {text: words[0] for text, words in seen.items()} == SVB_HEADLINES, f"words seen: {seen}"
    assert seen["Silicon Valley Bank is shut down by regulators, FDIC to protect insured deposits"][1] == "down", seen


def test_a_function_word_that_raises_p_neg_is_not_tried_nor_listed_and_not_and_down_are() -> None:
    """Toy model: P_neg = 0.1 + the weights of its words; ``than`` weighs most but is a function word."""
    lexicon = {"than": 0.4, "the": 0.3, "it's": 0.3, "not": 0.2, "down": 0.1, "didn't": 0.05}
    seen: list[list[str]] = []

    def p_neg(texts):
        seen.append(list(texts))
        return [0.1 + sum(lexicon.get(w.strip(".,"), 0.0) for w in t.lower().split()) for t in texts]

    text = "It's down, not better than the forecast: Sales didn't recover."
    words = occlusion(text, p_neg, top=5)
    assert words == [
        {"word": "not", "delta": 0.2},
        {"word": "down", "delta": 0.1},
        {"word": "didn't", "delta": 0.05},
    ], words
    # which token each variant leaves out: "It's", "than" and "the" get no forward pass
    tokens = text.split()
    removed = [
        next(tok for i, tok in enumerate(tokens) if t.split() == tokens[:i] + tokens[i + 1 :]) for t in seen[0][1:]
    ]
    assert len(seen) == 1 and seen[0][0] == text, seen
    assert removed == ["down,", "not", "better", "forecast:", "Sales", "didn't", "recover."], removed  # one pass each


def test_is_function_word_matches_case_insensitively_and_keeps_sentiment_words() -> None:
    assert [is_function_word(w) for w in ["THE", "On", "by", "than", "Is", "they\u2019re", "I'm"]] == [True] * 7
    kept = ["not", "No", "nor", "never", "without", "cannot", "can't", "won't", "doesn\u2019t", "down", "up", "off"]
    kept += ["below", "above", "under", "over", "against", "less", "least", "more", "most", "few", "fewer", "out"]
    kept += ["interest", "bill", "fire", "5", "$AAPL", "Moody's", "plunge"]
    assert [w for w in kept if is_function_word(w)] == [], kept


def test_the_function_word_list_is_scikit_learns_minus_what_is_kept_plus_what_is_added() -> None:
    """The runtime copy (scikit-learn is not a runtime dependency) matches the installed list exactly."""
    text = pytest.importorskip("sklearn.feature_extraction.text")
    stop = frozenset(text.ENGLISH_STOP_WORDS)
    kept = KEPT_SENTIMENT_WORDS | KEPT_CONTENT_WORDS
    assert not kept - stop, sorted(kept - stop)
    assert not ADDED_FUNCTION_WORDS & stop and not KEPT_SENTIMENT_WORDS & KEPT_CONTENT_WORDS
    expected = (stop - KEPT_SENTIMENT_WORDS - KEPT_CONTENT_WORDS) | ADDED_FUNCTION_WORDS
    assert expected == FUNCTION_WORDS, (sorted(FUNCTION_WORDS - expected), sorted(expected - FUNCTION_WORDS))
    assert len(FUNCTION_WORDS) == 241 and all(w == w.lower() for w in FUNCTION_WORDS)


def test_the_same_text_gets_the_same_words_whatever_was_scored_before(model_dir) -> None:
    """One call per item, nothing else in its batch: the shipped static INT8 model gives a text the same
    probabilities in any batch, and the dynamic INT8 rollback model (activation scales per batch) would too."""
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
