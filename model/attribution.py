"""Which words drove an item's negative score: leave-one-word-out (occlusion) attribution with the scoring model.

Method. An item's text is split into whitespace tokens ``w_1 .. w_n`` (the first :data:`MAX_WORDS` at most; a
longer text is cut there, and the cut text is what is explained). The model scores the text once whole and
once with each token tried removed (the tokens rejoined by single spaces; function words and punctuation are
not tried, below), and a token's attribution is::

    delta_i = P_neg(w_1 .. w_n) - P_neg(w_1 .. w_{i-1} w_{i+1} .. w_n)

the drop in the probability of the ``negative`` class (a probability, 0..1, so ``delta`` lies in -1..1) when
that word is erased. A positive ``delta`` means the word pushed the text towards negative. This is occlusion
(M. D. Zeiler and R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014) applied to
words, i.e. leave-one-out erasure (J. Li, W. Monroe and D. Jurafsky, "Understanding neural networks through
representation erasure", arXiv:1612.08220, 2016). It needs ``n + 1`` forward passes per text at most and no
gradients, so it runs on the same torch-free ONNX model the scorer uses. It measures each word alone: two words
that each suffice for "negative" (``plunge`` and ``crash``) can both show a small delta; this is the method's
known limit, acceptable for pointing a reader at the words behind a headline.

Output: :func:`occlusion` returns up to ``top`` entries ``{"word": str, "delta": float}``: the words with the
largest ``delta > 0``, largest first (ties: earlier word first), ``delta`` rounded to 4 decimals; a word is
shown with its surrounding punctuation stripped (``"lawsuit."`` -> ``lawsuit``; a leading ``$`` of a cashtag
is kept); a token that is only punctuation is not tried, and a word that occurs twice is listed once, with its
larger delta. ``[]`` when no word raises P(negative).

Function words are not tried (no forward pass, never listed): :func:`is_function_word`, i.e. articles,
prepositions, conjunctions, pronouns, auxiliaries and copulas (:data:`FUNCTION_WORDS`). Erasing one makes the
sentence ungrammatical and moves P(negative) for no reason a reader can use ("than", "on", "by" were listed as
evidence before). Words that carry sentiment or direction are kept although stop lists hold them: negations
(``not``, ``no``, ``never``, ``without``, ``cannot``, every ``n't`` form), direction and magnitude (``down``,
``up``, ``off``, ``below``, ``over``, ``less``, ``most``, ``few`` ..) and ``out`` (``wiped out``). Numbers and
cashtags are tried as before. The whole text, function words included, is what the model scores.

Determinism: the shipped model (``model/artifacts/current``, ``minilm-mt-v1.1``) is statically quantized: its
INT8 activation scales are fixed when it is built, so a text's probabilities do not depend on the other texts
of its batch. The rollback model ``minilm-mt-v1`` (``model/artifacts/minilm-mt-v1``) is still dynamically
quantized: its activation scales are computed per batch, so there a text's probabilities move slightly with the
other texts of its batch. :class:`Attributor` therefore still scores one item's full text and all its variants
in one call, in a fixed order, and nothing else with them: with either model the same text always gets the same
attribution (the aggregator's rebuild by replay gives equal spike events). Results are cached by item id
(:data:`CACHE_ITEMS`, least recently used first out).

>>> lexicon = {"plunge": 0.5, "fraud": 0.3, "lawsuit": 0.1}     # a toy model: P_neg = 0.1 + sum of weights
>>> p_neg = lambda texts: [min(1.0, 0.1 + sum(lexicon.get(w.strip("."), 0.0) for w in t.split())) for t in texts]
>>> occlusion("Shares plunge on fraud lawsuit.", p_neg)   # full 1.0; without plunge 0.5, fraud 0.7, lawsuit 0.9
[{'word': 'plunge', 'delta': 0.5}, {'word': 'fraud', 'delta': 0.3}, {'word': 'lawsuit', 'delta': 0.1}]
>>> occlusion("Shares rise", p_neg)
[]

A function word is not tried even where it raises P(negative) (here ``than``, by 0.4); ``not`` and ``down`` are:

>>> lexicon = {"than": 0.4, "not": 0.2, "down": 0.1}
>>> occlusion("Profit is down and not better than forecast.", p_neg)
[{'word': 'not', 'delta': 0.2}, {'word': 'down', 'delta': 0.1}]
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_WORDS = 40
"""Whitespace tokens of a text that are explained (and scored) at most: ``MAX_WORDS + 1`` texts per item."""

TOP_WORDS = 3
"""Words listed per item."""

CACHE_ITEMS = 4096
"""Items whose attribution :class:`Attributor` keeps (least recently used out first)."""

_EDGE = re.compile(r"^[^\w$]+|(?<=.)\$+$|[^\w]+$")
"""Punctuation at either end of a token (a leading ``$`` of a cashtag is kept)."""


def _word_set(words: str) -> frozenset[str]:
    """The whitespace-separated words of ``words`` (a word list written as text)."""
    return frozenset(words.split())


KEPT_SENTIMENT_WORDS = _word_set(
    """above against below cannot cant couldnt down few hasnt least less more most neither never no nobody none
    noone nor not nothing nowhere off out over under up without"""
)
"""Words of scikit-learn's ``ENGLISH_STOP_WORDS`` left out of :data:`FUNCTION_WORDS`: they carry sentiment or
direction (negations, direction and magnitude, ``out``), so they are tried and can be listed."""

KEPT_CONTENT_WORDS = _word_set(
    """amount back bill bottom call cry describe detail eight eleven empty fifteen fifty fill find fire first five
    forty found four front full get give go hundred interest keep made mill mine move name nine one part put see
    serious show side sincere six sixty system take ten thick thin third three top twelve twenty two well whole"""
)
"""Words of scikit-learn's ``ENGLISH_STOP_WORDS`` left out of :data:`FUNCTION_WORDS`: open-class words (nouns,
main verbs, adjectives, number words) that the Glasgow list holds but that name things in financial news
(``interest``, ``bill``, ``fire``, ``call``, ``system``, ``mine``, ``top``, ``bottom`` ..)."""

ADDED_FUNCTION_WORDS = _word_set("amid amidst despite did does doing having shall theirs unless")
"""Function words (auxiliaries, a pronoun, prepositions, a conjunction) that scikit-learn's list lacks."""

FUNCTION_WORDS = _word_set(
    """a about across after afterwards again all almost alone along already also although always am amid amidst
    among amongst amoungst an and another any anyhow anyone anything anyway anywhere are around as at be became
    because become becomes becoming been before beforehand behind being beside besides between beyond both but
    by can co con could de despite did do does doing done due during each eg either else elsewhere enough etc
    even ever every everyone everything everywhere except for former formerly from further had has have having
    he hence her here hereafter hereby herein hereupon hers herself him himself his how however i ie if in inc
    indeed into is it its itself last latter latterly ltd many may me meanwhile might moreover mostly much must
    my myself namely nevertheless next now of often on once only onto or other others otherwise our ours
    ourselves own per perhaps please rather re same seem seemed seeming seems several shall she should since so
    some somehow someone something sometime sometimes somewhere still such than that the their theirs them
    themselves then thence there thereafter thereby therefore therein thereupon these they this those though
    through throughout thru thus to together too toward towards un unless until upon us very via was we were
    what whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever whether which
    while whither who whoever whom whose why will with within would yet you your yours yourself yourselves"""
)
"""Lower-case words never tried nor listed (241). Source: scikit-learn's ``ENGLISH_STOP_WORDS`` (318 words, the
Glasgow Information Retrieval Group's stop list; ``sklearn.feature_extraction.text``), copied here because
scikit-learn is not a runtime dependency, minus :data:`KEPT_SENTIMENT_WORDS` and :data:`KEPT_CONTENT_WORDS`,
plus :data:`ADDED_FUNCTION_WORDS`; ``tests/model/test_attribution.py`` checks the copy against scikit-learn.
Matched case-insensitively, so ``US`` (the country) counts as ``us``."""


def is_function_word(word: str) -> bool:
    """Whether ``word`` (a token as :func:`display_word` shows it) is a function word that is not tried.

    Case-insensitive, on :data:`FUNCTION_WORDS`; a contraction whose part before the apostrophe (``'`` or
    U+2019) is one counts too (``it's``, ``They're``, ``I'm``), except an ``n't`` form, which is a negation
    (``can't``, ``didn't``, ``won't`` are tried); a possessive (``Moody's``) is not a function word.

    >>> words = ["The", "than", "it's", "not", "didn't", "Down", "out", "Moody's", "$AAPL", "5%"]
    >>> [w for w in words if is_function_word(w)]
    ['The', 'than', "it's"]
    """
    w = word.lower().replace("\u2019", "'")
    if w in FUNCTION_WORDS:
        return True
    head, apostrophe, _ = w.partition("'")
    return bool(apostrophe) and not w.endswith("n't") and head in FUNCTION_WORDS


def display_word(token: str) -> str:
    """``token`` without the punctuation around it, as shown to a reader.

    >>> display_word('"Lawsuit."'), display_word("$AAPL,"), display_word("—"), display_word("U.S.")
    ('Lawsuit', '$AAPL', '', 'U.S')
    """
    return _EDGE.sub("", token)


def occlusion(
    text: str,
    p_neg: Callable[[Sequence[str]], Sequence[float]],
    top: int = TOP_WORDS,
    max_words: int = MAX_WORDS,
) -> list[dict[str, Any]]:
    """Leave-one-word-out attribution of ``text`` (module doc): up to ``top`` ``{"word", "delta"}``.

    Args:
        text: the item's text. p_neg: scores a list of texts in ONE call, returning P(negative) of each (0..1),
            in order; it gets ``[full, variant_1, ..]`` (full text first, then one variant per word tried, in
            word order; a token that is only punctuation or a function word, :func:`is_function_word`, is not
            tried). top: words returned at most. max_words: whitespace tokens considered (the text is cut to
            them).

    Returns:
        ``[{"word": str, "delta": float}]``, delta = P_neg(full) - P_neg(without the word) rounded to 4
        decimals, only ``delta > 0``, largest first, never a function word; ``[]`` for a text with fewer than
        two words or none to try.

    Raises:
        ValueError: ``p_neg`` returned a different number of probabilities than it was given texts.
    """
    tokens = text.split()[:max_words]
    tried = [i for i, tok in enumerate(tokens) if (word := display_word(tok)) and not is_function_word(word)]
    if len(tokens) < 2 or not tried:
        return []
    texts = [" ".join(tokens)] + [" ".join(tokens[:i] + tokens[i + 1 :]) for i in tried]
    probs = [float(p) for p in p_neg(texts)]
    if len(probs) != len(texts):
        raise ValueError(f"p_neg returned {len(probs)} probabilities for {len(texts)} texts")
    full = probs[0]
    best: dict[str, tuple[float, int, str]] = {}
    for rank, (i, p) in enumerate(zip(tried, probs[1:], strict=True)):
        delta = round(full - p, 4)
        word = display_word(tokens[i])
        k = word.lower()
        if delta > 0 and (k not in best or delta > best[k][0]):
            best[k] = (delta, rank, word)
    ranked = sorted(best.values(), key=lambda e: (-e[0], e[1]))
    return [{"word": word, "delta": delta} for delta, _rank, word in ranked[:top]]


class Attributor:
    """Occlusion attribution of evidence items with a scoring model, cached by item id. Not thread-safe.

    Args:
        p_neg: scores a list of texts in one call, returning P(negative) each (see :func:`occlusion`); e.g.
            :meth:`from_scorer` of a :class:`~finsentry.model.scorer.Scorer`.
        top, max_words: as :func:`occlusion`. cache_items: items kept (:data:`CACHE_ITEMS`).
    """

    def __init__(
        self,
        p_neg: Callable[[Sequence[str]], Sequence[float]],
        top: int = TOP_WORDS,
        max_words: int = MAX_WORDS,
        cache_items: int = CACHE_ITEMS,
    ) -> None:
        self.p_neg = p_neg
        self.top = top
        self.max_words = max_words
        self.cache_items = cache_items
        self._cache: OrderedDict[str, tuple[str, list[dict[str, Any]]]] = OrderedDict()
        self.computed = 0
        """Items attributed with the model so far (cache misses)."""

    @classmethod
    def from_scorer(cls, scorer: Any, **kwargs: Any) -> Attributor:
        """An attributor over ``scorer.predict`` (P(negative) = ``sentiment_probs[0]``)."""
        neg = scorer.sentiment_labels.index("negative")
        return cls(lambda texts: [p.sentiment_probs[neg] for p in scorer.predict(list(texts))], **kwargs)

    def explain(self, item_id: str, text: str) -> list[dict[str, Any]]:
        """The attribution of one item (:func:`occlusion`), from the cache when ``item_id`` was seen with ``text``."""
        hit = self._cache.get(item_id)
        if hit is not None and hit[0] == text:
            self._cache.move_to_end(item_id)
            return [dict(e) for e in hit[1]]
        words = occlusion(text, self.p_neg, self.top, self.max_words)
        self.computed += 1
        self._cache[item_id] = (text, words)
        self._cache.move_to_end(item_id)
        while len(self._cache) > self.cache_items:
            self._cache.popitem(last=False)
        return [dict(e) for e in words]

    def annotate(self, evidence: list[dict[str, Any]]) -> None:
        """Add ``"attribution"`` to each evidence dict (``{id, text, ...}``) in place, in list order."""
        for e in evidence:
            e["attribution"] = self.explain(str(e.get("id", "")), str(e.get("text", "")))


class LazyAttributor:
    """An :class:`Attributor` over the ONNX model in ``folder``, loaded at first use; never raises.

    The model is opened with one intra-op thread (it shares the aggregator's process) and a batch large enough
    for one item's ``MAX_WORDS + 1`` texts. If it cannot be loaded, or a call fails, one warning line is logged
    and evidence is left without ``attribution`` from then on.
    """

    def __init__(self, folder: str | Path, loader: Callable[[Path], Any] | None = None) -> None:
        self.folder = Path(folder)
        self._loader = loader
        self._attributor: Attributor | None = None
        self.failed: str | None = None
        """Why attribution is off (one line), or None."""

    def _load(self) -> Attributor | None:
        if self._attributor is None and self.failed is None:
            try:
                if self._loader is not None:
                    scorer = self._loader(self.folder)
                else:
                    from finsentry.model.scorer import Scorer

                    scorer = Scorer.load(self.folder, intra_op_threads=1, batch_size=MAX_WORDS + 1)
                self._attributor = Attributor.from_scorer(scorer)
                log.info("evidence attribution: occlusion with %s", self.folder)
            except Exception as exc:  # any failure: no attribution, never a crash of the aggregator
                self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("evidence attribution off: cannot load the model in %s (%s)", self.folder, self.failed)
        return self._attributor

    def annotate(self, evidence: list[dict[str, Any]]) -> None:
        """:meth:`Attributor.annotate` once the model is loaded; does nothing when it cannot be."""
        attributor = self._load()
        if attributor is None or not evidence:
            return
        try:
            attributor.annotate(evidence)
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._attributor = None
            log.warning("evidence attribution off: the model failed on an evidence text (%s)", self.failed)
            for e in evidence:
                e.pop("attribution", None)


def top_words(attribution: Any, limit: int = TOP_WORDS) -> list[str]:
    """The words of an evidence item's ``attribution`` list (as published), largest delta first; ``[]`` for a
    missing or malformed one (a producer may leave it out).

    >>> top_words([{"word": "plunge", "delta": 0.5}, {"word": "fraud", "delta": 0.3}]), top_words(None)
    (['plunge', 'fraud'], [])
    """
    if not isinstance(attribution, list):
        return []
    return [str(a["word"]) for a in attribution if isinstance(a, dict) and a.get("word")][:limit]


def words_label(words: Sequence[str]) -> str:
    """How the words show next to a headline: ``[plunge, fraud]``; empty for none.

    >>> words_label(["plunge", "fraud"]), words_label([])
    ('[plunge, fraud]', '')
    """
    return f"[{', '.join(words)}]" if words else ""
