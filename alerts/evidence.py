"""Evidence for an alert: the most negative headlines behind a spike, from the monitor HTTP API.

The monitor serves ``GET /api/spikes?key=K&state=all&limit=1`` -> ``{"spikes": [spike event, newest first]}``
where a spike event carries ``evidence: [{id, text, url, sentiment_score, published_at}]`` (see
docs/contracts.md). A failed or slow request never fails the notification: the :class:`Evidence` then
carries ``error`` and no headlines.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Headline:
    """One news item behind a spike; ``sentiment_score`` = P(positive) - P(negative) in [-1, 1]."""

    id: str
    text: str
    url: str | None
    sentiment_score: float
    published_at: str


@dataclass(frozen=True)
class Evidence:
    """What the monitor knows about the latest spike of ``key``.

    ``spike`` holds the spike event's numbers (``event``, ``bucket_start``, ``bucket_end``, ``window_seconds``,
    ``share``, ``baseline_mean``, ``z``, ``items``, ``negative``, ...) without its evidence list; ``headlines``
    are the most negative items first; ``error`` says why there is nothing (monitor unreachable, bad answer).
    """

    key: str
    spike: dict[str, Any] | None = None
    headlines: list[Headline] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{key, spike, headlines: [{id, text, url, sentiment_score, published_at}], error}``."""
        return asdict(self)


class EvidenceClient:
    """Fetch :class:`Evidence` for aggregate keys from the monitor API at ``base_url``.

    Args:
        base_url: e.g. ``http://127.0.0.1:8600`` (no trailing path).
        timeout_s: timeout of one HTTP request, seconds.
        limit: most negative headlines kept per key.
    """

    def __init__(self, base_url: str, timeout_s: float = 3.0, limit: int = 5) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.limit = limit

    def fetch(self, key: str, instance_url: str | None = None) -> Evidence:
        """The newest spike event of ``key`` and its most negative headlines; never raises.

        ``instance_url`` (e.g. ``http://10.0.0.7:8600``, from the alert's ``instance`` label) is asked first:
        with several aggregators, only the instance that owns the key holds its spikes. On failure, or when
        it has no spike for the key, the configured ``base_url`` is asked.
        """
        if instance_url and instance_url.rstrip("/") != self.base_url:
            ev = self._fetch_from(instance_url.rstrip("/"), key)
            if ev.error is None:
                return ev
        return self._fetch_from(self.base_url, key)

    def _fetch_from(self, base_url: str, key: str) -> Evidence:
        query = urllib.parse.urlencode({"key": key, "state": "all", "limit": 1})
        url = f"{base_url}/api/spikes?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            log.warning("no evidence for %s from %s: %s", key, url, exc)
            return Evidence(key=key, error=f"monitor API unavailable: {exc}")
        try:
            return self._parse(key, data)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("unexpected answer from %s: %s", url, exc)
            return Evidence(key=key, error=f"unexpected monitor API answer: {exc}")

    def _parse(self, key: str, data: Any) -> Evidence:
        spikes = [s for s in data["spikes"] if s.get("key") == key]
        if not spikes:
            return Evidence(key=key, error="the monitor has no spike recorded for this key")
        spike = dict(spikes[0])
        items = spike.pop("evidence", None) or []
        headlines = [
            Headline(
                id=str(it["id"]),
                text=str(it["text"]),
                url=it.get("url") or None,
                sentiment_score=float(it["sentiment_score"]),
                published_at=str(it.get("published_at", "")),
            )
            for it in items
        ]
        headlines.sort(key=lambda h: h.sentiment_score)
        return Evidence(key=key, spike=spike, headlines=headlines[: self.limit])
