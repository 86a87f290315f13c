"""The language of a text, for ``finsentry score`` (issue 13, item 4): say what it is and whether the live scorer
would score it.

The live scorer never guesses: it scores an item by its declared ``lang`` field (primary subtag in
``ingest.scorer.allowed_langs``, :func:`~finsentry.ingest.validation.language_allowed`) and dead-letters the
others as ``unsupported_language``. ``score`` has no declared language for a bare text, so it detects one with
py3langid (a Naive Bayes model over byte n-grams, 97 languages, shipped in its wheel) and warns when a text reads
as a language the live scorer would not score; a row that declares ``lang`` is judged by the scorer's own rule.

Short texts (a ticker and a number) are often misread, so the warning needs :data:`WARN_CONFIDENCE`; below it the
detected language is still reported, with its confidence.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from finsentry.ingest.validation import language_allowed

WARN_CONFIDENCE = 0.5
"""Detection confidence (py3langid's normalized probability) from which a disallowed language is warned about.

On the 4,799 StockNet tweets of 2015-08, 11 of the 3,682 that Twitter tagged ``en`` read as another language at
this confidence or more (0.3%; at 0.3, 21)."""


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """``(ISO 639-1 code, confidence 0..1)`` of ``text`` (the model loads once, about 1 s).

    >>> detect_language("Las acciones de Apple caen un 5% tras los resultados")[0]
    'es'
    """
    lang, confidence = _identifier().classify(text)
    return str(lang), float(confidence)


def language_check(text: str, allowed: Collection[str], declared: object = None) -> dict[str, Any]:
    """``{detected_lang, detected_lang_confidence}`` and, when the live scorer would not score the text,
    ``warning``: the declared ``lang`` (the row's value as read, None when absent or null) is not a string or
    not allowed (the scorer dead-letters the item), or none is declared and the text reads, with at least
    :data:`WARN_CONFIDENCE`, as a language that is not.

    >>> language_check("Apple übertrifft die Erwartungen deutlich", ["en"])["warning"][:57]
    "language 'de' is not in ingest.scorer.allowed_langs (en):"
    >>> "warning" in language_check("Shares of Tesla fell after the recall", ["en"])
    False
    >>> language_check("Shares of Tesla fell after the recall", ["en"], declared=5)["warning"][:40]
    'lang 5 is not a string: the live scorer '
    """
    lang, confidence = detect_language(text)
    out: dict[str, Any] = {"detected_lang": lang, "detected_lang_confidence": round(confidence, 3)}
    names = ", ".join(allowed)
    if declared is not None and not isinstance(declared, str):
        out["warning"] = f"lang {declared!r} is not a string: the live scorer dead-letters this item (wrong_type)"
    elif declared is not None:
        if not language_allowed(declared, allowed):
            out["warning"] = (
                f"lang {declared!r} is not in ingest.scorer.allowed_langs ({names}): the live scorer dead-letters "
                "this item (unsupported_language)"
            )
    elif confidence >= WARN_CONFIDENCE and not language_allowed(lang, allowed):
        out["warning"] = (
            f"language {lang!r} is not in ingest.scorer.allowed_langs ({names}): the live scorer would dead-letter "
            "an item declared so (unsupported_language)"
        )
    return out
