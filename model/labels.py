"""Label spaces shared by every stage: the 20 topic names and the 3 sentiment names.

The topic taxonomy is the twitter-financial-news-topic one, verbatim (``data/twitter_financial_news_topic/
topic_labels.csv``). Sentiment is ``negative`` / ``neutral`` / ``positive``; the tweet-sentiment set's
``Bearish`` / ``Bullish`` / ``Neutral`` map onto them.

>>> slugify("Fed | Central Banks")
'fed_central_banks'
>>> slugify("M&A | Investments")
'm_a_investments'
"""

from __future__ import annotations

import re

TOPIC_LABELS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)
"""The 20 topic names; index = class id of the topic head and of the dataset's ``label`` column."""

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Sentiment class names; index = class id of the sentiment head. Order (neg, neu, pos) is fixed."""

TWEET_SENTIMENT_TO_ID: dict[int, int] = {0: 0, 1: 2, 2: 1}
"""twitter-financial-news-sentiment label id (0 Bearish, 1 Bullish, 2 Neutral) -> our sentiment id."""

FPB_SENTIMENT_TO_ID: dict[str, int] = {name: i for i, name in enumerate(SENTIMENT_LABELS)}
"""Financial PhraseBank label name -> our sentiment id."""

TASKS: tuple[str, ...] = ("topic", "sentiment")
"""Task names, in head order."""

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """Return the slug of a label: lower case, runs of non-alphanumerics replaced by ``_``, trimmed.

    Used in metric labels, aggregate keys (``topic:<slug>``) and file names.

    Raises:
        ValueError: if the slug would be empty.
    """
    slug = _NON_ALNUM.sub("_", name.lower()).strip("_")
    if not slug:
        raise ValueError(f"label {name!r} has no alphanumeric characters to make a slug from")
    return slug


TOPIC_SLUGS: tuple[str, ...] = tuple(slugify(t) for t in TOPIC_LABELS)
"""Slugs of :data:`TOPIC_LABELS`, same order."""

TOPIC_BY_SLUG: dict[str, str] = dict(zip(TOPIC_SLUGS, TOPIC_LABELS, strict=True))
"""Slug -> verbatim topic name."""
