"""Tumbling event-time buckets: fixed, non-overlapping intervals ``[start, start + size)`` aligned to the epoch.

Bucket ``i`` of size ``B`` seconds covers event times (``published_at``) ``i*B <= t < (i+1)*B``; because B
divides 86400 (checked by the settings), bucket boundaries fall on UTC midnight and on every UTC
hour / minute that B divides. An item is counted in exactly one bucket per aggregate key.

When a bucket closes, and what happens to late data (enforced by :mod:`finsentry.monitor.aggregator`):

* A key's bucket ``[s, e)`` closes once the watermark of the key's partition (its max ``published_at`` minus
  ``grace``; :mod:`finsentry.monitor.watermark`) reaches ``e``, i.e. an event at ``e + grace`` or later has
  been seen on that partition. Buckets close in order, one at a time, empty ones included; the spike detector
  runs on each.
* An event whose bucket is already closed for its key, or ends at or before its partition's watermark (more
  than ``grace`` behind the partition's progress), is *late*: it is counted in ``finsentry_late_events_total``
  and dropped. It never changes a closed bucket.
* Open buckets (not yet closed) are still included in the rolling views, so ``/api/trends`` shows the
  freshest counts; the spike detector only ever sees closed buckets.

>>> bucket_index(1_440_000_059.9, 60), bucket_index(1_440_000_060.0, 60)
(24000000, 24000001)
"""

from __future__ import annotations

from typing import Any

from finsentry.ingest.contract import KeyedItem, iso_epoch
from finsentry.model.labels import slugify
from finsentry.monitor.novelty import words


def bucket_index(t: float, size: int) -> int:
    """Index of the bucket of size ``size`` seconds that holds epoch time ``t`` (seconds): ``floor(t / size)``."""
    return int(t // size)


def belongs(item: KeyedItem, key: str) -> bool:
    """Whether ``item`` carries aggregate ``key``: every item belongs to ``all``; ``topic:<slug>`` needs the item's
    topic to have that slug, ``ticker:<SYMBOL>`` the symbol among its ``tickers`` (``$`` and case ignored). Only
    such items are evidence of a spike of ``key`` (a record written under a key it does not carry is counted
    but never quoted).

    >>> from datetime import UTC, datetime
    >>> it = KeyedItem(id="a", key="ticker:AAPL", published_at=datetime(2015, 8, 24, tzinfo=UTC),
    ...                sentiment="negative", sentiment_score=-0.9, topic="Stock Movement", tickers=["$aapl"])
    >>> [belongs(it, k) for k in ("all", "ticker:AAPL", "ticker:NFLX", "topic:stock_movement", "topic:m_a")]
    [True, True, False, True, False]
    """
    if key == "all":
        return True
    if key.startswith("ticker:"):
        symbol = key[7:]
        return any(t.strip().lstrip("$").upper() == symbol for t in item.tickers)
    if key.startswith("topic:"):
        return item.topic is not None and slugify(item.topic) == key[6:]
    return False


def story_text(text: str) -> str:
    """The form of a text under which two evidence items are the same story: its normalized words
    (:func:`finsentry.monitor.novelty.words`), or the stripped text when it has none.

    >>> story_text("RT @desk: Apple SLUMPS https://t.co/x") == story_text("apple slumps")
    True
    """
    return " ".join(words(text)) or text.strip()


class Bucket:
    """Counts of one key in one bucket, plus the few most negative stories (evidence for spike events).

    Attributes:
        items, negative, neutral, positive: item counts. score_sum: sum of ``sentiment_score`` (float).
        distinct, distinct_negative: the same counts over distinct stories only (near-duplicates of a story
            already seen on the key within the novelty horizon are left out; :mod:`finsentry.monitor.novelty`).
        evidence: up to ``keep`` entries ``(-score, id, item, cluster)``, one per story (``cluster``: the
            novelty cluster id, the first item of the story), each the story's most negative copy in this
            bucket, the most negative stories of the bucket; None once the bucket has left the spike
            detector's windows. Only items that belong to the key (:func:`belongs`) are kept.
    """

    __slots__ = ("items", "negative", "neutral", "positive", "score_sum", "distinct", "distinct_negative", "evidence")

    def __init__(self) -> None:
        self.items = 0
        self.negative = 0
        self.neutral = 0
        self.positive = 0
        self.score_sum = 0.0
        self.distinct = 0
        self.distinct_negative = 0
        self.evidence: list[tuple[float, str, KeyedItem, str]] | None = []

    def add(self, item: KeyedItem, score: float, keep: int = 5, novel: bool = True, cluster: str | None = None) -> None:
        """Count ``item`` (``score`` = its ``sentiment_score``); a ``novel`` one (not a near-duplicate) is also
        counted as a distinct story. ``cluster``: its story (novelty cluster id; default its own id): the item
        is kept as evidence if it belongs to the key and is its story's most negative copy among the bucket's
        ``keep`` most negative stories."""
        self.items += 1
        s = item.sentiment
        if novel:
            self.distinct += 1
            if s == "negative":
                self.distinct_negative += 1
        if s == "negative":
            self.negative += 1
        elif s == "neutral":
            self.neutral += 1
        else:
            self.positive += 1
        self.score_sum += score
        ev = self.evidence
        if ev is None:
            return
        entry = (-score, item.id, item, cluster or item.id)
        if len(ev) >= keep and entry[:2] <= min(e[:2] for e in ev):
            return  # less negative than every story kept (the common case once the bucket is full)
        if not belongs(item, item.key):
            return
        for i, e in enumerate(ev):
            if e[3] == entry[3]:  # a copy of a story already kept: keep the more negative one
                if entry[:2] > e[:2]:
                    ev[i] = entry
                return
        if len(ev) < keep:
            ev.append(entry)
        else:
            ev[min(range(len(ev)), key=lambda i: ev[i][:2])] = entry

    def counts(self, start: float) -> dict[str, Any]:
        """``{start (ISO UTC), items, negative, neutral, positive, score_sum}`` as in ``/api/keys/<key>/buckets``."""
        return {
            "start": iso_epoch(start),
            "items": self.items,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "score_sum": self.score_sum,
        }


def evidence(buckets: list[Bucket], keep: int = 5) -> list[dict[str, Any]]:
    """The ``keep`` most negative distinct stories (lowest ``sentiment_score``, ties by id) across ``buckets``.

    Two items are the same story when they share a novelty cluster, their normalized text (:func:`story_text`)
    or their id; a story is listed once, as its most negative copy.

    Returns:
        ``[{id, text, url, sentiment_score, published_at (ISO UTC), truncated}]``, most negative first
        (``truncated``: the model did not score all of the text).
    """
    entries = [e for b in buckets if b.evidence for e in b.evidence]
    entries.sort(key=lambda e: (-e[0], e[1]))
    out = []
    seen: set[tuple[str, str]] = set()
    for neg_score, _id, item, cluster in entries:
        marks = {("cluster", cluster), ("text", story_text(item.text)), ("id", item.id)}
        if marks & seen:
            continue
        seen |= marks
        out.append(
            {
                "id": item.id,
                "text": item.text,
                "url": item.url,
                "sentiment_score": -neg_score,
                "published_at": iso_epoch(item.published_at.timestamp()),
                "truncated": item.truncated,
            }
        )
        if len(out) == keep:
            break
    return out
