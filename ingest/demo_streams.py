"""The real news streams ``finsentry run`` replays when it is given no ``--source``: one named demo each.

``svb`` (the default): CNBC's top-news RSS headlines of 2023-02-27 .. 2023-03-24 (512, about 20 a day; GPL-3.0
compilation, ``data/events/README.md``), around the collapse of Silicon Valley Bank: its stock fell 60% on
2023-03-09 and regulators closed it on 2023-03-10. At the monitor's defaults the ``all`` key spikes on 03-10 and
stays quiet on the eleven days before (``docs/demo.md``).

``stocknet``: the StockNet tweets of 2015-08-17 .. 2015-08-28 (about 1,500; MIT, ``data/README.md``) around the
2015-08-24 global sell-off, with tickers; replayed with the ``stocknet`` monitor preset (hourly buckets, 1-day and
7-day views) that suits its ~200 items a day.

>>> demo = DEMOS[DEFAULT_DEMO]
>>> demo.name, demo.time_from.isoformat(), demo.time_to.isoformat(), demo.preset
('svb', '2023-02-27T00:00:00+00:00', '2023-03-25T00:00:00+00:00', None)
>>> [p.name for p in DEMOS["stocknet"].paths(None, None)][:1]
['stocknet_tweets_2015-08.csv']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from finsentry.common.paths import DATA_DIR
from finsentry.ingest.replay_source import stocknet_months

EVENTS_DIR = DATA_DIR / "events"
"""Real news streams around market events shipped for the demo (``data/events/README.md``)."""


@dataclass(frozen=True)
class DemoStream:
    """One named demo replay.

    Attributes:
        name: the ``--demo`` value. title: what it is, for the console.
        files: the replayed files (empty: the StockNet months that overlap the window,
            :func:`~finsentry.ingest.replay_source.stocknet_months`).
        time_from, time_to: the event-time window ``[from, to)``, aware UTC.
        speed: event seconds per wall second. preset: monitor preset (None: the defaults).
        event_at: when the real event happened (aware UTC); event_text: what happened then, for the console.
    """

    name: str
    title: str
    files: tuple[Path, ...]
    time_from: datetime
    time_to: datetime
    speed: float
    preset: str | None
    event_at: datetime
    event_text: str

    def paths(self, time_from: datetime | None, time_to: datetime | None) -> list[Path]:
        """The files to replay for ``[time_from, time_to)`` (None: the demo's own bound).

        Raises:
            FileNotFoundError: no StockNet month overlaps the window (the message names the folder).
        """
        if self.files:
            return list(self.files)
        return stocknet_months(time_from or self.time_from, time_to or self.time_to)


DEMOS: dict[str, DemoStream] = {
    "svb": DemoStream(
        name="svb",
        title="CNBC top-news headlines around the Silicon Valley Bank collapse (March 2023)",
        files=(EVENTS_DIR / "svb2023_cnbc.jsonl",),
        time_from=datetime(2023, 2, 27, tzinfo=UTC),
        time_to=datetime(2023, 3, 25, tzinfo=UTC),
        speed=8000.0,
        preset=None,
        event_at=datetime(2023, 3, 10, tzinfo=UTC),
        event_text="2023-03-10: regulators close Silicon Valley Bank (its stock fell 60% on 03-09)",
    ),
    "stocknet": DemoStream(
        name="stocknet",
        title="StockNet tweets around the 2015-08-24 global sell-off",
        files=(),
        time_from=datetime(2015, 8, 17, tzinfo=UTC),
        time_to=datetime(2015, 8, 29, tzinfo=UTC),
        speed=5000.0,
        preset="stocknet",
        event_at=datetime(2015, 8, 24, tzinfo=UTC),
        event_text="2015-08-24: the global sell-off (US markets open ~13:30 UTC)",
    ),
}
"""The demos by ``--demo`` name."""
DEFAULT_DEMO = "svb"
"""What ``finsentry run`` replays without ``--demo`` or ``--source``."""
