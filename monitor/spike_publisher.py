"""Publishing the aggregator's spike events: one log line, one ``sentiment.spikes`` record, the caller's hook.

The aggregator service decides *whether* an event is published (not while its partition replays, see
:mod:`finsentry.monitor.service`); this module does the publishing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from finsentry.ingest.topics import SENTIMENT_SPIKES
from finsentry.monitor.spikes import SpikeEvent

log = logging.getLogger("finsentry.monitor.service")  # the service's log, where operators look for spikes


def fmt_figure(x: float | None) -> str:
    """A figure for a log line: three decimals, ``n/a`` for None.

    >>> fmt_figure(None), fmt_figure(2.34567)
    ('n/a', '2.346')
    """
    return "n/a" if x is None else f"{x:.3f}"


class SpikePublisher:
    """Logs a spike event, sends it to ``sentiment.spikes`` (key = aggregate key, value = its JSON) and calls
    ``on_spike`` (e.g. the ``finsentry run`` console); exceptions the hook raises are logged and ignored."""

    def __init__(self, on_spike: Callable[[SpikeEvent], None] | None = None) -> None:
        self.on_spike = on_spike

    def publish(self, event: SpikeEvent, producer: Any) -> None:
        """Publish ``event`` through ``producer`` (None: log and hook only, e.g. before the loop is open)."""
        body = event.to_dict()
        log.info(
            "spike %s %s at %s: share %.3f vs baseline %s, z %s, %d items",
            event.event,
            event.key,
            body["bucket_end"],
            event.share if event.share is not None else float("nan"),
            fmt_figure(event.baseline_mean),
            fmt_figure(event.z),
            event.items,
        )
        if producer is not None:
            producer.send(SENTIMENT_SPIKES, key=event.key.encode(), value=json.dumps(body).encode())
        if self.on_spike is not None:
            try:
                self.on_spike(event)
            except Exception:
                log.exception("on_spike hook failed for %s", event.key)
