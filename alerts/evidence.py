"""Evidence for an alert: the spike record behind it and its most negative headlines, from the relay's cache.

The relay keeps the monitor's spike events from ``sentiment.spikes`` in a
:class:`~finsentry.alerts.spike_cache.SpikeCache` (docs/contracts.md: each carries ``spike_id``, the ``start``
and ``peak`` figures, the figures *now* and ``evidence: [{id, text, url, sentiment_score, published_at,
attribution}]``; the attribution's words go with each headline).
:func:`spike_evidence` turns the cached spike of an alert (by its ``spike_id`` label, else the newest spike of its
``key``) into an :class:`Evidence`, in memory: nothing here waits on the monitor. A spike the relay has not seen
gives an :class:`Evidence` with ``error`` and no headlines, never a missing notification.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from finsentry.alerts.spike_cache import CachedSpike
from finsentry.model.attribution import top_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Headline:
    """One news item behind a spike; ``sentiment_score`` = P(positive) - P(negative) in [-1, 1]; ``words``: up to 3
    words whose removal lowers its P(negative) the most (:mod:`finsentry.model.attribution`)."""

    id: str
    text: str
    url: str | None
    sentiment_score: float
    published_at: str
    words: list[str] = field(default_factory=list)
    """The words that drove its negative score, most first (the monitor's ``attribution``; empty without one)."""


@dataclass(frozen=True)
class Evidence:
    """The spike behind an alert on ``key``, as the monitor published it.

    ``spike`` holds the spike record's newest event without its evidence list: ``spike_id``, ``start`` and
    ``peak`` figures, and the figures *now* (``event``, ``bucket_end``, ``window_seconds``, ``share``,
    ``baseline_mean``, ``z``, ``items``, ``negative``, ...); ``headlines`` are the most negative stories that
    started it, first; ``error`` says why there is nothing (the relay has not read a spike of this key).
    """

    key: str
    spike: dict[str, Any] | None = None
    headlines: list[Headline] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{key, spike, headlines: [{id, text, url, sentiment_score, published_at, words}],
        error}``."""
        return asdict(self)


NOT_SEEN = "no spike record for this key on sentiment.spikes yet (the relay's cache)"
"""``error`` of an :class:`Evidence` whose spike the relay has not read."""


def spike_evidence(key: str, cached: CachedSpike | None, limit: int = 5) -> Evidence:
    """The :class:`Evidence` of ``key`` from its cached spike: the spike record (its newest event's
    :meth:`~finsentry.monitor.spikes.SpikeEvent.to_dict` without the evidence list) and the ``limit`` most negative
    headlines of the stories that started it; ``error`` :data:`NOT_SEEN` when ``cached`` is None. Never raises on
    a malformed headline: it is left out.
    """
    if cached is None:
        return Evidence(key=key, error=NOT_SEEN)
    spike = cached.latest.to_dict()
    spike.pop("evidence", None)
    headlines = []
    seen: set[str] = set()
    for it in cached.evidence:
        try:
            h = Headline(
                id=str(it["id"]),
                text=str(it["text"]),
                url=it.get("url") or None,
                sentiment_score=float(it["sentiment_score"]),
                published_at=str(it.get("published_at", "")),
                words=top_words(it.get("attribution")),
            )
        except (KeyError, TypeError, ValueError):
            log.warning("spike %s: a headline without id, text or sentiment_score left out", cached.latest.spike_id)
            continue
        if h.id not in seen:
            seen.add(h.id)
            headlines.append(h)
    headlines.sort(key=lambda h: h.sentiment_score)
    return Evidence(key=key, spike=spike, headlines=headlines[:limit])
