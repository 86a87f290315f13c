"""``finsentry run``: the whole monitor on the embedded default, composed from the single services.

See :mod:`finsentry.run_pipeline` for what starts in which order and :mod:`finsentry.supervisor` for how it
stops (Ctrl-C / SIGTERM: bounded, process groups, no orphans; a second signal kills the children at once).
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli_paths import nonempty_path
from finsentry.ingest.demo_streams import DEFAULT_DEMO, DEMOS
from finsentry.run_options import SOURCE_SPEED, RunError, RunOptions, parse_bound

log = logging.getLogger(__name__)

_QUIET_LOGGERS = ("kafka",)
"""Loggers kept at WARNING even in the run's log file (kafka-python logs every connection at INFO)."""


def _log_to_file(path: Path) -> None:
    """Send the services' logs to ``path``; keep only warnings and errors on the terminal (unless DEBUG)."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level > logging.DEBUG:
        for h in root.handlers:
            if h is not handler and isinstance(h, logging.StreamHandler):
                h.setLevel(logging.WARNING)
                h.addFilter(_terminal_filter)
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def _terminal_filter(record: logging.LogRecord) -> bool:
    """Keep kafka-python's warnings (slow event-loop tasks on a busy machine, reconnects) off the terminal, and a
    service's failure that the run prints itself as its ``error:`` line (a busy port was printed twice)."""
    from finsentry.supervisor import REPORTED

    if getattr(record, REPORTED, False):
        return False
    return record.levelno >= logging.ERROR or not record.name.startswith(_QUIET_LOGGERS)


def run(
    ctx: typer.Context,
    demo: Annotated[
        str | None,
        typer.Option(
            help="the real stream replayed without --source: svb (CNBC headlines around the SVB collapse, "
            "2023-02-27 .. 03-24, default settings) or stocknet (StockNet tweets around the 2015-08-24 sell-off, "
            "with tickers; preset stocknet) [svb]"
        ),
    ] = None,
    source: Annotated[
        list[Path] | None,
        typer.Option(
            parser=nonempty_path("--source"),
            help="replay these CSV / JSONL files or folders instead of the demo stream (repeatable; columns named "
            "as the news.raw fields, or StockNet's); without --from/--to all of it",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="replay speed-up: event seconds per wall second [the demo's: svb 8000, a day in 10.8 s; stocknet "
            "5000; with --source 5000]",
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="first event time replayed: ISO date (UTC midnight) or date-time with zone [the demo's]"
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(help="last day replayed (inclusive) as an ISO date, or a date-time (exclusive) [the demo's]"),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(help="use this Kafka (host:port,...) instead of starting the embedded broker; topics are created"),
    ] = None,
    broker_port: Annotated[
        int, typer.Option(min=0, max=65535, help="port of the embedded broker (0 = any free port)")
    ] = 9092,
    http_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="port of the dashboard, API and /metrics, 0 = any free port (monitor.http_port)"
        ),
    ] = None,
    with_prometheus: Annotated[
        bool,
        typer.Option(
            "--with-prometheus",
            help="also start Prometheus and Alertmanager (Debian packages prometheus, prometheus-alertmanager) with "
            "the shipped rules (for: 4s, 2 s scrapes), alerting through the relay to the console",
        ),
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            help="monitor settings preset applied over the config: stocknet (~200 items/day) or none [the demo's:"
            " none for svb, stocknet for stocknet; none with --source]"
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            parser=nonempty_path("--workdir"),
            help="keep logs, the relay token and Prometheus data here (default: a temp folder, removed)",
        ),
    ] = None,
) -> None:
    """Run the whole monitor on one host and replay real news into it (help: :data:`RUN_HELP`)."""
    from finsentry.cli_settings import settings_from
    from finsentry.run_console import Console
    from finsentry.run_pipeline import Pipeline
    from finsentry.supervisor import Supervisor

    try:
        time_from = parse_bound(from_, "--from")
        time_to = parse_bound(to, "--to", end=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if demo is not None and demo not in DEMOS:
        raise typer.BadParameter(f"{demo!r}: use {' or '.join(DEMOS)}", param_hint="--demo")
    if demo is not None and source:
        raise typer.BadParameter(
            "--demo and --source: give one (--demo names a stream replayed instead of files)", param_hint="--demo"
        )
    chosen = DEMOS[demo or DEFAULT_DEMO]
    if source is None:
        time_from = time_from or chosen.time_from
        time_to = time_to or chosen.time_to
        speed = chosen.speed if speed is None else speed
        preset = (chosen.preset or "none") if preset is None else preset
    else:
        speed = SOURCE_SPEED if speed is None else speed
        preset = "none" if preset is None else preset
    if time_from and time_to and time_to <= time_from:
        whose = f"the {chosen.name} demo's"
        raise typer.BadParameter(
            f"--to ({_bound_text(to, time_to, f'{whose} end')}) must be after --from "
            f"({_bound_text(from_, time_from, f'{whose} start')})",
            param_hint="--to",
        )
    if preset not in ("stocknet", "none"):
        raise typer.BadParameter(f"{preset!r}: use stocknet or none", param_hint="--preset")
    from finsentry.ingest.replay import check_pacing

    try:
        check_pacing(speedup=speed)
    except ValueError as exc:
        typer.echo(f"error: --{str(exc).replace('speedup', 'speed', 1)}", err=True)
        raise typer.Exit(2) from exc
    settings = settings_from(ctx, monitor={"http_port": http_port}) if http_port is not None else settings_from(ctx)
    options = RunOptions(
        demo=chosen,
        sources=list(source) if source else None,
        time_from=time_from,
        time_to=time_to,
        speed=speed,
        bootstrap_servers=bootstrap_servers,
        broker_port=broker_port,
        with_prometheus=with_prometheus,
        preset=None if preset == "none" else preset,
        workdir=workdir,
    )
    console = Console()
    supervisor = Supervisor()
    try:
        pipeline = Pipeline(settings, options, console, supervisor)
        _log_to_file(pipeline.workdir / "finsentry.log")
    except OSError as exc:  # a --workdir that is a file, under a missing or read-only folder, ...
        where = f"--workdir {workdir}" if workdir is not None else "the temporary folder"
        typer.echo(f"error: {where}: cannot hold the run's logs and token ({exc.strerror or exc})", err=True)
        raise typer.Exit(2) from exc
    _handle_signals(supervisor, console)
    try:
        pipeline.start()
    except RunError as exc:
        pipeline.stop()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from exc
    except BaseException:
        pipeline.stop()  # an unexpected error: the broker, Prometheus and Alertmanager must not outlive the run
        raise
    try:
        console.line(*pipeline.banner())
        if not pipeline.wait_for_assignments() and not supervisor.stop.is_set():
            console.line("warning: the consumer groups have no partitions yet; replaying anyway")
        console.line(*pipeline.schedule())
        pipeline.start_replay()
        failure = pipeline.watch()
    except BaseException:
        pipeline.stop()
        raise
    if failure:
        console.line(f"error: {failure}; stopping everything")
    report = pipeline.stop()
    stats = pipeline.scorer.stats
    console.line(
        f"stopped in {report.seconds:.1f} s: scored {stats.scored}, dead letters {sum(stats.dead_letters.values())}, "
        f"spikes started {console.started}, ended {console.ended}"
        + ("" if report.clean else f"; killed {report.killed}, threads left {report.threads_left}")
    )
    if failure:
        raise typer.Exit(1)


def _bound_text(given: str | None, bound: datetime, whose: str) -> str:
    """``--from`` / ``--to`` as the user wrote it, or the demo's bound it defaulted to, for an error message.

    >>> from datetime import UTC
    >>> _bound_text(None, datetime(2023, 3, 25, tzinfo=UTC), "the svb demo's end")
    "2023-03-25 00:00 UTC, the svb demo's end"
    """
    return given if given is not None else f"{bound:%Y-%m-%d %H:%M} UTC, {whose}"


def _handle_signals(supervisor, console) -> None:
    """First SIGINT / SIGTERM: orderly shutdown. Second: SIGKILL the child process groups and exit 130 at once."""

    def handler(signum: int, _frame) -> None:
        if supervisor.stop.is_set():
            supervisor.kill_children_now()
            os._exit(130)
        console.line(f"{signal.Signals(signum).name}: stopping (again to kill at once)")
        supervisor.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


RUN_HELP = (
    "Run the whole monitor on one host and replay real news into it; Ctrl-C stops everything.\n\n"
    "Starts the embedded broker (or uses --bootstrap-servers), the scorer, the aggregator (live dashboard, JSON API "
    "and /metrics on 127.0.0.1, URL printed at start), the alert relay (random bearer token) and, with "
    "--with-prometheus, Prometheus and Alertmanager with the shipped rules. Then replays a real news stream: by "
    "default CNBC's top-news headlines of 2023-02-27 .. 2023-03-24 at 8000x (--demo svb; Silicon Valley Bank is "
    "closed on 2023-03-10, about 2 minutes in, and the market-wide key spikes that day), or with --demo stocknet "
    "the StockNet tweets around the 2015-08-24 sell-off. Spikes print as they start and end, with their most "
    "negative headlines; a line per replayed day. Service logs go to "
    "WORKDIR/finsentry.log."
)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the ``finsentry`` app."""
    app.command("run", help=RUN_HELP)(run)
