"""What the user asked ``finsentry run`` for: :class:`RunOptions` (validated by the CLI), the ``--from`` / ``--to``
parser, and :class:`RunError`, the one-line failure every start step raises.

>>> RunOptions().demo.name, RunOptions().preset is None
('svb', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from finsentry.ingest.demo_streams import DEFAULT_DEMO, DEMOS, DemoStream

SOURCE_SPEED = 5000.0
"""Default speed-up of a ``--source`` replay: event seconds per wall second (one day in 17.3 s)."""


class RunError(RuntimeError):
    """The pipeline cannot start; the message says which option or setting to fix. ``exit_code`` 2 = bad input."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunOptions:
    """Options of ``finsentry run`` (see its ``--help``).

    Attributes: demo: the named demo (:data:`~finsentry.ingest.demo_streams.DEMOS`) replayed without
    ``sources``, whose event the schedule announces. sources: replay files / folders (None = the demo's files).
    time_from, time_to: event-time window ``[from, to)`` (aware UTC). speed: event seconds per wall second.
    bootstrap_servers: an existing Kafka (None = start the embedded broker on ``broker_port``, 0 = free port).
    with_prometheus: start Prometheus and Alertmanager with the shipped rules. preset: monitor preset or None.
    workdir: folder for the token, logs and Prometheus data (None = a temporary folder removed at exit).
    The defaults are the default demo's (``svb``: no preset, 8,000x).
    """

    demo: DemoStream = DEMOS[DEFAULT_DEMO]
    sources: list[Path] | None = None
    time_from: datetime | None = DEMOS[DEFAULT_DEMO].time_from
    time_to: datetime | None = DEMOS[DEFAULT_DEMO].time_to
    speed: float = DEMOS[DEFAULT_DEMO].speed
    bootstrap_servers: str | None = None
    broker_port: int = 9092
    with_prometheus: bool = False
    preset: str | None = DEMOS[DEFAULT_DEMO].preset
    workdir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_bound(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """``--from`` / ``--to``: an ISO date (UTC midnight; for ``--to`` the end of that day) or date-time with zone.

    >>> parse_bound("2015-08-28", "--to", end=True).isoformat()
    '2015-08-29T00:00:00+00:00'

    Raises:
        ValueError: neither form, or a ``--to`` day of 9999-12-31 (the message names ``option``).
    """
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None:
        start = datetime.combine(day, datetime.min.time(), UTC)
        if not end:
            return start
        if day == date.max:  # its end, the next midnight, is not a datetime (it was an OverflowError traceback)
            raise ValueError(f"{option} {value!r} is past the last day that can be replayed; leave --to out for all")
        return start + timedelta(days=1)
    from finsentry.ingest.replay_source import parse_event_time

    parsed = parse_event_time(value)
    if parsed is None:
        raise ValueError(f"{option} {value!r} is not an ISO date (2015-08-17) or date-time with a zone")
    return parsed
