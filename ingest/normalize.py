"""Text normalization before scoring, and ticker extraction from cashtags.

Steps (in this order): decode HTML entities (``&amp;`` -> ``&``, ``&#39;`` -> ``'``), remove URLs
(``http(s)://`` and ``www.`` links; the first one is kept as the item's ``url`` when it has none), remove
Unicode direction controls (:data:`DIRECTION_CONTROLS`) and control characters (C1 / DEL mojibake in the
input, or produced by entity decoding), collapse every run of whitespace (Unicode too, e.g. no-break space) to
one space and trim. Cashtags (``$AAPL``, ``$rds-b``,
``$BRK.A``) stay in the text and are also returned as upper-case symbols without ``$``, the spelling of
aggregate keys (``ticker:AAPL``).

>>> normalize_text("Apple &amp; Google   up https://t.co/abc  today")
NormalizedText(text='Apple & Google up today', urls=('https://t.co/abc',))
>>> cashtags("$aapl beats, $RDS-B flat, $5 off, U$S")
['AAPL', 'RDS-B']
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

URL_RE = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"'`\u201c\u201d\u2018\u2019]+", re.IGNORECASE)
"""A link: ``http://``, ``https://`` or ``www.`` up to the next whitespace or quote."""

CASHTAG_RE = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9}(?:[.\-][A-Za-z]{1,2})?)(?!\w)")
"""``$`` + a symbol: a letter, up to 9 more letters/digits, an optional ``.X`` / ``-X`` class suffix. Not after a
word character or ``$`` (``U$S``), not followed by one (``$AAPLx``); ``$5`` is a price, not a cashtag."""

TICKER_RE = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.\-][A-Z0-9]{1,4})?$")
"""A normalized ticker symbol (upper case, no ``$``): what ``tickers`` entries must look like after cleaning."""

MAX_TICKER_CHARS = 15
"""Longest symbol :data:`TICKER_RE` admits, characters: a 10-character root plus a 5-character class suffix
(``.XXXX``). Exchange roots are 1-5 letters (NYSE, Nasdaq; 6 for some OTC and foreign listings) and class
suffixes 1-2, so this leaves room without letting a key grow with its input: the aggregators refuse a longer
``ticker:`` key (``invalid_key``)."""

DIRECTION_CONTROLS = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Unicode bidirectional formatting characters: the marks U+200E, U+200F and U+061C, the embeddings and overrides
U+202A-U+202E and the isolates U+2066-U+2069. They change the order in which the text around them is shown
(after U+202E ``sgninrae`` reads ``earnings``), so a headline could read one way on the dashboard or in a
notification and be scored as another. They carry no words: :func:`normalize_text` removes them."""

_WHITESPACE_RE = re.compile(r"\s+")
_INVISIBLE: dict[int, str | None] = dict.fromkeys(map(ord, "\u200b\u200c\u2060\ufeff"), " ")
_INVISIBLE.update(dict.fromkeys(map(ord, DIRECTION_CONTROLS)))  # None: removed


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """The text to score (``text``: str) and the URLs removed from it, in order of appearance."""

    text: str
    urls: tuple[str, ...]


def is_rejected_control(ch: str) -> bool:
    """True for a C0 control character (U+0000-U+001F) other than tab, line feed and carriage return.

    These mark binary garbage or terminal escapes; validation rejects them. DEL and the C1 controls
    (U+007F-U+009F) are not rejected: real feeds carry them as mojibake (45 StockNet tweets do), and
    :func:`normalize_text` removes them.
    """
    return ch < "\x20" and ch not in "\t\n\r"


def is_control(ch: str) -> bool:
    """True for any Unicode control character (category Cc) other than tab, line feed and carriage return."""
    return ch not in "\t\n\r" and unicodedata.category(ch) == "Cc"


def normalize_text(text: str) -> NormalizedText:
    """Decode HTML entities, remove URLs, drop direction controls and control characters, collapse whitespace
    (see the module doc).

    >>> normalize_text("Acme \u202eSGNINRAE\u202c  beat &#x2067;x\u2069").text
    'Acme SGNINRAE beat x'

    The result may be empty (a text that was only a link); callers decide what that means.
    """
    decoded = html.unescape(text)
    urls = tuple(m.group(0).rstrip(".,;:!?)]}") for m in URL_RE.finditer(decoded))
    without_urls = URL_RE.sub(" ", decoded).translate(_INVISIBLE)
    cleaned = "".join(ch for ch in without_urls if not is_control(ch))
    return NormalizedText(_WHITESPACE_RE.sub(" ", cleaned).strip(), urls)


def cashtags(text: str) -> list[str]:
    """Upper-case symbols of the cashtags in ``text``, in order of first appearance, without repeats."""
    return unique(m.group(1).upper() for m in CASHTAG_RE.finditer(text))


def clean_ticker(symbol: str) -> str:
    """Upper-case ``symbol`` and strip one leading ``$`` and surrounding spaces (``" $aapl"`` -> ``"AAPL"``).

    The result may still fail :data:`TICKER_RE`; callers check.
    """
    s = symbol.strip()
    return (s[1:] if s.startswith("$") else s).strip().upper()


def unique(items) -> list[str]:
    """``items`` without repeats, first occurrence kept, order preserved."""
    return list(dict.fromkeys(items))
