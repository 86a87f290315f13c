"""Company names in texts -> ticker symbols, from StockNet's ``StockTable.tsv`` (Xu & Cohen, ACL 2018).

The table has the columns ``Sector``, ``Symbol`` (with a leading ``$``; class shares spelled ``$RDS-B``,
``$BRK-A``) and ``Company`` (``Apple Inc.``, ``The Procter & Gamble``, ``Pepsico  Inc.``). For each row the map
holds the full name and the name without legal suffixes (``Inc.``, ``Corporation``, ``plc``, ``Holding(s)``,
``Group``, ...) and a leading ``The``, plus a few common short forms listed in :data:`ALIASES`. Matching is
case-sensitive on whole words (``Intel`` does not match ``Intelligence`` or ``intel``; ``Apple-based``
matches ``Apple``). Names shared by two
rows (``BHP Billiton`` for ``BHP`` and ``BBL``, ``Unilever`` for ``UN`` and ``UL``) go to the first row.
Single-word names that are everyday words (:data:`AMBIGUOUS`) are left out.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from finsentry.common.textfiles import read_limited_text
from finsentry.ingest.normalize import TICKER_RE

MAX_TABLE_BYTES = 4_194_304
"""Largest company table read, bytes (4 MiB; the shipped StockNet table is 3.3 KB, every US listing ~1 MB)."""

LEGAL_SUFFIXES: frozenset[str] = frozenset(
    {
        "inc", "inc.", "incorporated", "corporation", "corp", "corp.", "company", "co", "co.", "plc", "p.l.c.",
        "limited", "ltd", "ltd.", "ag", "sa", "s.a.", "n.v.", "nv", "sa/nv", "l.p.", "lp", "holdings", "holding",
        "group", "&", ",",
    }
)  # fmt: skip
"""Trailing words dropped to get the short name (compared lower-case)."""

ALIASES: dict[str, str] = {
    "Google": "GOOG",
    "Walmart": "WMT",
    "Disney": "DIS",
    "Coca Cola": "KO",
    "PepsiCo": "PEP",
    "Toyota": "TM",
    "Philip Morris": "PM",
    "JPMorgan": "JPM",
    "Amazon": "AMZN",
    "Home Depot": "HD",
    "Priceline": "PCLN",
    "McDonald's": "MCD",
    "McDonalds": "MCD",
    "Shell": "RDS-B",
    "Berkshire": "BRK-A",
    "Alibaba": "BABA",
    "Boeing": "BA",
    "Exxon": "XOM",
    "Wal-Mart": "WMT",
    "Cisco": "CSCO",
    "Verizon": "VZ",
    "Honeywell": "HON",
}
"""Common short forms not derivable from the table's names."""

AMBIGUOUS: frozenset[str] = frozenset({"Southern", "TOTAL", "Visa"})
"""Derived names left out because they are everyday words (``Southern`` California, a travel ``Visa``)."""


def short_name(company: str) -> str:
    """``company`` without a leading ``The`` and trailing legal suffixes; whitespace collapsed.

    >>> short_name("The Procter & Gamble")
    'Procter & Gamble'
    >>> short_name("JPMorgan Chase & Co.")
    'JPMorgan Chase'
    >>> short_name("Anheuser-Busch InBev SA/NV Company")
    'Anheuser-Busch InBev'
    """
    words = company.split()
    if words and words[0].lower() == "the":
        words = words[1:]
    while len(words) > 1 and words[-1].lower() in LEGAL_SUFFIXES:
        words = words[:-1]
    return " ".join(words)


class CompanyTickerMap:
    """Finds known company names in a text and returns their tickers.

    >>> m = CompanyTickerMap({"Apple Inc.": "AAPL", "Royal Dutch Shell": "RDS-B"})
    >>> m.find("Royal Dutch Shell and Apple report; pineapple does not")
    ['RDS-B', 'AAPL']
    """

    def __init__(self, names: dict[str, str]) -> None:
        """``names``: company name -> ticker (upper case, no ``$``). Short names and aliases are added.

        Raises:
            ValueError: a ticker is not a symbol of :data:`~finsentry.ingest.normalize.TICKER_RE` (at most 15
                characters; the message names it): the map feeds aggregate keys, which the aggregators refuse
                (``invalid_key``) unless they are such symbols.
        """
        for name, ticker in names.items():
            if not TICKER_RE.match(ticker):
                raise ValueError(
                    f"ticker {ticker[:40]!r} of {name[:60]!r} is not an upper-case symbol like AAPL or RDS-B"
                    " (a letter, up to 9 letters or digits, an optional .X / -X class suffix)"
                )
        table: dict[str, str] = {}
        for name, ticker in names.items():
            for variant in (" ".join(name.split()), short_name(name)):
                if len(variant) >= 2 and variant not in AMBIGUOUS:
                    table.setdefault(variant, ticker)
        tickers = set(names.values())
        for alias, ticker in ALIASES.items():
            if ticker in tickers:
                table.setdefault(alias, ticker)
        self.names: dict[str, str] = table
        ordered = sorted(table, key=len, reverse=True)  # longest first: "Bank of America" before "America"
        self._pattern = (
            re.compile(r"(?<![\w&-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w&])") if table else None
        )

    @classmethod
    def from_stocknet_table(cls, path: str | Path) -> CompanyTickerMap:
        """Read StockNet's ``StockTable.tsv`` (``Sector``, ``Symbol`` like ``$AAPL``, ``Company``).

        Raises:
            finsentry.common.textfiles.FileReadError: (a ValueError) the file is missing, unreadable, a device, larger
                than :data:`MAX_TABLE_BYTES` or not UTF-8 (one line naming the file).
            ValueError: the header lacks ``Symbol`` or ``Company``, a symbol is not a ticker symbol, or the file is
                not readable as tab-separated text (a quote never closed, a cell beyond csv's field limit; the
                message names the file).
        """
        path = Path(path)
        text = read_limited_text(path, "", MAX_TABLE_BYTES)  # callers name the setting
        # strict: a stray quote is an error naming its line, not a cell that swallows the rest of the table
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", strict=True)
            try:
                if not reader.fieldnames or not {"Symbol", "Company"} <= set(reader.fieldnames):
                    raise ValueError(f"{path}: expected the columns Symbol and Company, got {reader.fieldnames}")
                names: dict[str, str] = {}
                for row in reader:
                    symbol = (row["Symbol"] or "").strip().lstrip("$").upper()
                    company = " ".join((row["Company"] or "").split())
                    if symbol and company:
                        names.setdefault(company, symbol)
            except csv.Error as exc:  # also a cell over csv's field limit: no company name is that long
                raise ValueError(
                    f"{path}:{reader.reader.line_num}: not a readable tab-separated table ({exc})"
                ) from None
        try:
            return cls(names)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def find(self, text: str) -> list[str]:
        """Tickers of the company names in ``text``, in order of first appearance, without repeats."""
        if self._pattern is None:
            return []
        return list(dict.fromkeys(self.names[m.group(1)] for m in self._pattern.finditer(text)))

    def __len__(self) -> int:
        return len(self.names)
