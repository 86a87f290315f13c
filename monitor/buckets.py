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

import heapq
from typing import Any

from finsentry.monitor.records import KeyedItem, iso


def bucket_index(t: float, size: int) -> int:
    """Index of the bucket of size ``size`` seconds that holds epoch time ``t`` (seconds): ``floor(t / size)``."""
    return int(t // size)


class Bucket:
    """Counts of one key in one bucket, plus the few most negative items (evidence for spike events).

    Attributes:
        items, negative, neutral, positive: item counts. score_sum: sum of ``sentiment_score`` (float).
        distinct, distinct_negative: the same counts over distinct stories only (near-duplicates of a story
            already seen on the key within the novelty horizon are left out; :mod:`finsentry.monitor.novelty`).
        evidence: min-heap of ``(-score, id, item)`` holding the ``keep`` lowest-scoring items, or None once
            the bucket has left the spike detector's short window.
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
        self.evidence: list[tuple[float, str, KeyedItem]] | None = []

    def add(self, item: KeyedItem, score: float, keep: int = 5, novel: bool = True) -> None:
        """Count ``item`` (``score`` = its ``sentiment_score``); a ``novel`` one (not a near-duplicate) is also
        counted as a distinct story and kept as evidence if among the most negative."""
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
        if ev is not None and novel:
            entry = (-score, item.id, item)
            if len(ev) < keep:
                heapq.heappush(ev, entry)
            elif entry[:2] > ev[0][:2]:
                heapq.heapreplace(ev, entry)

    def counts(self, start: float) -> dict[str, Any]:
        """``{start (ISO UTC), items, negative, neutral, positive, score_sum}`` as in ``/api/keys/<key>/buckets``."""
        return {
            "start": iso(start),
            "items": self.items,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "score_sum": self.score_sum,
        }


def evidence(buckets: list[Bucket], keep: int = 5) -> list[dict[str, Any]]:
    """The ``keep`` most negative items (lowest ``sentiment_score``, ties by id) across ``buckets``.

    Returns:
        ``[{id, text, url, sentiment_score, published_at (ISO UTC), truncated}]``, most negative first
        (``truncated``: the model did not score all of the text).
    """
    entries = [e for b in buckets if b.evidence for e in b.evidence]
    entries.sort(key=lambda e: (-e[0], e[1]))
    out = []
    for neg_score, _id, item in entries[:keep]:
        out.append(
            {
                "id": item.id,
                "text": item.text,
                "url": item.url,
                "sentiment_score": -neg_score,
                "published_at": iso(item.published_at.timestamp()),
                "truncated": item.truncated,
            }
        )
    return out
