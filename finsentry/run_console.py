"""What ``finsentry run`` prints: spikes as they start and end (with their top headlines) and a line per day.

Lines go to standard output, one event per line block, flushed at once (a log file or a pipe sees them live).
Times in the lines are event time (``published_at``, UTC); the replay compresses them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from finsentry.model.attribution import top_words, words_label
from finsentry.monitor.spikes import figures_text

HEADLINES = 3
"""Evidence headlines printed under a started spike (the event carries the 5 most negative)."""

HEADLINE_CHARS = 110
"""Longest headline printed, characters (longer ones are cut with an ellipsis)."""


def counts_text(counts: Mapping[str, int]) -> str:
    """``"3 (empty_text 2, no_time 1)"`` for a reason -> count mapping; ``"0"`` when empty.

    >>> counts_text({"no_time": 1, "empty_text": 2}), counts_text({})
    ('3 (empty_text 2, no_time 1)', '0')
    """
    total = sum(counts.values())
    if not total:
        return "0"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v)
    return f"{total} ({parts})"


def _clip(text: str, limit: int = HEADLINE_CHARS) -> str:
    """One line of at most ``limit`` characters.

    >>> _clip("a  b\\nc", 10), _clip("x" * 12, 10)
    ('a b c', 'xxxxxxxxx…')
    """
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _when(value: Any) -> str:
    """``YYYY-MM-DD HH:MM`` UTC of an ISO string or epoch seconds."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC).isoformat()
    return str(value).replace("T", " ")[:16]


def spike_lines(event: dict[str, Any]) -> list[str]:
    """Console lines of one spike event (contract shape, ``docs/contracts.md``); ``updated`` events give none.

    A started line quotes the spike's start figures (those of the event itself); an ended line quotes the start
    and the peak, and the figures of the bucket that ended it as ``now``.

    >>> e = {"event": "started", "key": "ticker:XOM", "bucket_end": "2015-08-24T15:00:00Z", "z": 4.21,
    ...      "share": 0.62, "baseline_mean": 0.18, "items": 40, "negative": 25,
    ...      "evidence": [{"text": "Shares plunge", "sentiment_score": -0.93, "url": None}]}
    >>> print("\\n".join(spike_lines(e)))
    SPIKE STARTED  ticker:XOM  at 2015-08-24 15:00 UTC  z=4.2  negative 25/40 (62%, baseline 18%)
        -0.93  Shares plunge
    >>> end = {"event": "ended", "key": "ticker:XOM", "bucket_end": "2015-08-24T17:00:00Z", "z": 0.8,
    ...        "share": 0.2, "baseline_mean": 0.18, "items": 30, "negative": 6,
    ...        "start": dict(e, bucket_end="2015-08-24T15:00:00Z"),
    ...        "peak": {"z": 5.02, "share": 0.7, "baseline_mean": 0.18, "items": 50, "negative": 35}}
    >>> print("\\n".join(spike_lines(end)))  # doctest: +NORMALIZE_WHITESPACE
    SPIKE ENDED ticker:XOM at 2015-08-24 17:00 UTC started 2015-08-24 15:00 UTC z=4.2 negative 25/40
    (62%, baseline 18%); peak z=5.0 negative 35/50 (70%); now z=0.8 negative 6/30 (20%)
    """
    kind = event.get("event")
    if kind not in ("started", "ended"):
        return []
    head = f"SPIKE {kind.upper():<8} {event.get('key')}  at {_when(event.get('bucket_end'))} UTC"
    start, peak = event.get("start"), event.get("peak")
    if kind == "started" or not isinstance(start, dict):
        return [f"{head}  {figures_text(event)}"] + (_headlines(event) if kind == "started" else [])
    line = f"{head}  started {_when(start.get('bucket_end'))} UTC {figures_text(start)}"
    if isinstance(peak, dict):
        line += f"; peak {figures_text(peak, baseline=False)}"
    return [f"{line}; now {figures_text(event, baseline=False)}"]


def _headlines(event: dict[str, Any]) -> list[str]:
    lines = []
    for ev in (event.get("evidence") or [])[:HEADLINES]:
        score = ev.get("sentiment_score")
        lead = f"{score:+.2f}" if isinstance(score, int | float) else "  n/a"
        url = f"  {ev['url']}" if ev.get("url") else ""
        words = words_label(top_words(ev.get("attribution")))
        lines.append(f"    {lead}  {_clip(ev.get('text', ''))}{'  ' + words if words else ''}{url}")
    return lines


def active_at(events: list[dict[str, Any]], end: str) -> list[str]:
    """Keys with a spike open at event time ``end`` (ISO-8601 UTC): started in a bucket ending at or before
    ``end`` and not ended by then. ``events``: spike event dicts (``event``, ``key``, ``spike_id``,
    ``bucket_end``), any order; sorted keys.

    >>> ev = [{"event": "started", "key": "all", "spike_id": "a", "bucket_end": "2023-03-10T19:00:00Z"},
    ...       {"event": "ended", "key": "all", "spike_id": "a", "bucket_end": "2023-03-11T20:00:00Z"}]
    >>> active_at(ev, "2023-03-11T00:00:00Z"), active_at(ev, "2023-03-12T00:00:00Z")
    (['all'], [])
    """
    started: dict[str, str] = {}
    ended: set[str] = set()
    for e in sorted(events, key=lambda e: e["bucket_end"]):
        if e["bucket_end"] > end:
            continue
        if e["event"] == "started":
            started[e["spike_id"]] = e["key"]
        elif e["event"] == "ended":
            ended.add(e["spike_id"])
    return sorted({key for sid, key in started.items() if sid not in ended})


def day_line(day: str, view: dict[str, Any], spikes_active: list[str]) -> str:
    """The summary line of one closed UTC day of the ``all`` key.

    Args:
        day: ``YYYY-MM-DD``. view: summed bucket counts ``{items, negative, score_sum}`` of that day.
        spikes_active: keys with an open spike at the end of the day.

    >>> day_line("2015-08-24", {"items": 140, "negative": 42, "score_sum": -14.0}, ["all"])
    'day 2015-08-24 (Mon): 140 items, 30% negative, mean score -0.10; active spikes: all'
    >>> day_line("2023-03-04", {"items": 1, "negative": 0, "score_sum": -0.001}, [])
    'day 2023-03-04 (Sat): 1 item, 0% negative, mean score +0.00; active spikes: none'
    """
    weekday = datetime.fromisoformat(day).strftime("%a")
    n = view.get("items", 0)
    if n:
        mean = round(view["score_sum"] / n, 2) + 0.0  # + 0.0: never "-0.00"
        body = f"{n} item{'' if n == 1 else 's'}, {view['negative'] / n:.0%} negative, mean score {mean:+.2f}"
    else:
        body = "no items"
    active = ", ".join(spikes_active) if spikes_active else "none"
    return f"day {day} ({weekday}): {body}; active spikes: {active}"


class Console:
    """Serialised printing for the supervisor and the aggregator's spike hook (called from its thread).

    Args:
        out: where lines go (default: standard output).
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.RLock()  # re-entrant: the signal handler prints from the main thread
        self.started = 0
        self.ended = 0

    def line(self, *lines: str) -> None:
        """Print ``lines`` together and flush."""
        with self._lock:
            for text in lines:
                print(text, file=self.out)
            self.out.flush()

    def spike(self, event: Any) -> None:
        """The aggregator's ``on_spike`` hook: print started / ended spikes (a ``SpikeEvent`` or its dict)."""
        data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
        lines = spike_lines(data)
        if not lines:
            return
        if data["event"] == "started":
            self.started += 1
        else:
            self.ended += 1
        self.line(*lines)
