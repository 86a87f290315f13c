"""Texts longer than the model's window are scored in overlapping windows and combined by the documented rule
(issue 15, finding 6): softmax of the windows' logits averaged with weights = their text tokens."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer

from finsentry.model.scorer import DEFAULT_MAX_CHUNKS, Scorer, chunk_stride
from finsentry.model.settings import ModelSettings

SHORT = [
    "Operating profit increased to EUR 30 million from EUR 20 million a year earlier",
    "The bank cut 2,000 jobs after quarterly profit collapsed",
    "Fed raises interest rates by 25 basis points",
]


@pytest.fixture(scope="module")
def scorer(model_dir) -> Scorer:
    return Scorer.load(model_dir)


@pytest.fixture(scope="module")
def article(long_article) -> str:
    """A neutral opening and a negative body: three windows of 64 tokens."""
    return " ".join(long_article)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def windows_of(model_dir, text: str, max_length: int = 64) -> list[int]:
    """Text tokens of each window, from a tokenizer of our own: ``max_length`` tokens, overlap ``max_length // 4``."""
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length, stride=max_length // 4)
    tok.no_padding()
    enc = tok.encode(text)
    return [len(w.ids) - 2 for w in [enc, *enc.overflowing]]


def test_a_neutral_opening_and_a_negative_body_is_judged_on_every_window(scorer, model_dir, article):
    _, first_window, cut = scorer.logits([article])
    assert cut == [True] and scorer.sentiment_labels[int(first_window[0].argmax())] == "neutral"  # what it was

    (pred,) = scorer.predict([article])
    (ws,) = scorer.window_scores([article])
    tokens = windows_of(model_dir, article)
    assert tokens == [62, 62, 59] and ws.tokens.tolist() == tokens
    assert (pred.chunks, pred.truncated) == (3, False)
    assert ws.sentiment_logits.shape == (3, 3) and ws.topic_logits.shape == (3, 20)
    assert np.array_equal(ws.sentiment_logits[0], first_window[0])  # window 1 is the text's opening
    assert [scorer.sentiment_labels[int(row.argmax())] for row in ws.sentiment_logits] == [
        "neutral",
        "negative",
        "negative",
    ]
    w = np.array(tokens, dtype=np.float64)
    t_sent, t_topic = scorer.temperature["sentiment"], scorer.temperature["topic"]  # labels.json's, fitted on dev
    sentiment = softmax((ws.sentiment_logits.astype(np.float64) * w[:, None]).sum(0) / w.sum() / t_sent)
    topic = softmax((ws.topic_logits.astype(np.float64) * w[:, None]).sum(0) / w.sum() / t_topic)
    assert np.allclose(pred.sentiment_probs, sentiment, rtol=0, atol=1e-12)
    assert pred.sentiment == "negative" and pred.sentiment_score == pytest.approx(sentiment[2] - sentiment[0])
    assert pred.topic == scorer.topic_labels[int(topic.argmax())] and pred.topic_prob == pytest.approx(topic.max())
    assert pred.sentiment_score < -0.4
    assert pred.to_dict()["chunks"] == 3 and pred.to_dict()["truncated"] is False


def test_texts_that_fit_one_window_score_exactly_as_without_chunking(scorer, model_dir, article, long_article):
    """The further windows of a long text run in batches of their own: a short text's figures are bit for bit its
    first-window scores of the same call (as before chunking), whatever long texts share the call."""
    texts = [SHORT[0], article, SHORT[1], article + " " + long_article[1], SHORT[2]]
    preds = scorer.predict(texts)
    _, sent, _ = scorer.logits(texts)
    t_sent = scorer.temperature["sentiment"]  # labels.json's, fitted on dev
    for i in (0, 2, 4):
        assert preds[i].chunks == 1 and not preds[i].truncated
        assert np.array_equal(np.array(preds[i].sentiment_probs), softmax(sent[i].astype(np.float64) / t_sent))
    assert [p.chunks for p in preds] == [1, 3, 1, len(windows_of(model_dir, texts[3])), 1]
    first_only = Scorer.load(model_dir, max_chunks=1, verify=False)
    old = first_only.predict(texts)
    assert [(p.chunks, p.truncated) for p in old] == [(1, False), (1, True), (1, False), (1, True), (1, False)]
    assert [p.sentiment_probs for p in old] == [tuple(softmax(s.astype(np.float64) / t_sent).tolist()) for s in sent]
    assert [p.sentiment_probs for i, p in enumerate(preds) if i % 2 == 0] == [
        p.sentiment_probs for i, p in enumerate(old) if i % 2 == 0
    ]


def test_windows_beyond_max_chunks_are_not_scored_and_the_text_is_reported_truncated(model_dir, article):
    two = Scorer.load(model_dir, max_chunks=2, verify=False)
    (pred,) = two.predict([article])
    (ws,) = two.window_scores([article])
    assert (pred.chunks, pred.truncated, ws.truncated, ws.tokens.tolist()) == (2, True, True, [62, 62])


def test_the_setting_reaches_the_scorer_and_the_default_is_documented(model_dir, article):
    assert ModelSettings().max_chunks == DEFAULT_MAX_CHUNKS == 16
    assert chunk_stride(64) == 16
    scorer = Scorer.from_settings(ModelSettings(path=model_dir, max_chunks=3, max_length=32))
    assert (scorer.max_chunks, scorer.max_length) == (3, 32)
    (pred,) = scorer.predict([article])
    assert (pred.chunks, pred.truncated) == (3, len(windows_of(model_dir, article, 32)) > 3)
