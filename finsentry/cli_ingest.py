"""Verbs of the ingest room: ``finsentry broker``, ``finsentry scorer``, ``finsentry replay FILE...``."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from finsentry.cli_paths import nonempty_path
from finsentry.run_console import counts_text

log = logging.getLogger(__name__)


def _quiet_kafka() -> None:
    """kafka-python logs every connection at INFO; show its warnings and errors only, unless at DEBUG."""
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.WARNING)


def _stop_on_signals(stop: threading.Event, on_stop=None) -> None:
    """SIGINT / SIGTERM set ``stop`` (and call ``on_stop``); a second signal exits at once."""

    def handler(signum, _frame) -> None:
        if stop.is_set():
            raise SystemExit(130)
        log.info("%s received; stopping gracefully (send again to exit now)", signal.Signals(signum).name)
        stop.set()
        if on_stop is not None:
            on_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _parse_time(value: str | None, option: str) -> datetime | None:
    from finsentry.ingest.replay_source import parse_event_time

    if value is None:
        return None
    parsed = parse_event_time(value)
    if parsed is None:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 date-time with a zone (e.g. 2014-01-01T00:00Z)", param_hint=option
        )
    return parsed


def broker(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port)")] = 9092,
    log_file: Annotated[
        Path | None, typer.Option(parser=nonempty_path("--log-file"), help="append the broker's output to this file")
    ] = None,
) -> None:
    """Run the embedded Tansu broker (memory only) with finsentry's topics until Ctrl-C."""
    from finsentry.ingest.broker import BrokerError, EmbeddedBroker

    _quiet_kafka()
    stop = threading.Event()
    _stop_on_signals(stop)
    embedded = EmbeddedBroker(host=host, port=port, log_file=log_file)
    try:
        embedded.start()
    except BrokerError as exc:
        typer.echo(f"error: --port {port}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"broker on {embedded.bootstrap_servers} (memory only); clients: "
        f"FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS={embedded.bootstrap_servers}; Ctrl-C stops it",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            if embedded.process is not None and embedded.process.poll() is not None:
                typer.echo(f"error: the broker exited with code {embedded.process.returncode}", err=True)
                raise typer.Exit(1)
    finally:
        embedded.stop()
    typer.echo("broker stopped", err=True)


def scorer(
    ctx: typer.Context,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (setting ingest.kafka.bootstrap_servers)")
    ] = None,
    group_id: Annotated[str | None, typer.Option(help="consumer group (setting ingest.scorer.group_id)")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="port of /metrics, 0 = any free port (setting ingest.scorer.metrics_port)")
    ] = None,
) -> None:
    """Score news.raw into news.scored and sentiment.keyed (dead letters to news.dlq) until SIGINT/SIGTERM."""
    from kafka.errors import KafkaError

    from finsentry.cli_settings import settings_from
    from finsentry.ingest.scorer_service import ScorerService
    from finsentry.model.scorer import ModelLoadError

    _quiet_kafka()
    ingest: dict[str, Any] = {}
    if bootstrap_servers is not None:
        ingest["kafka"] = {"bootstrap_servers": bootstrap_servers}
    scorer_overrides = {k: v for k, v in {"group_id": group_id, "metrics_port": metrics_port}.items() if v is not None}
    if scorer_overrides:
        ingest["scorer"] = scorer_overrides
    settings = settings_from(ctx, ingest=ingest) if ingest else settings_from(ctx)
    try:
        service = ScorerService.from_settings(settings.ingest, settings.model)
    except (ModelLoadError, FileNotFoundError) as exc:
        typer.echo(f"error: model.path (env FINSENTRY_MODEL__PATH): {exc}", err=True)
        raise typer.Exit(2) from exc
    except (OSError, ValueError) as exc:
        typer.echo(f"error: ingest.company_table (env FINSENTRY_INGEST__COMPANY_TABLE): {exc}", err=True)
        raise typer.Exit(2) from exc
    stop = threading.Event()
    _stop_on_signals(stop)
    from finsentry.ingest.hot_swap import attach

    watcher = attach(
        service, settings.ingest.kafka, settings.model
    )  # hot swap on models.events and the registry pointer (docs/retraining.md)
    try:
        stats = service.run(stop)
    except KafkaError as exc:
        typer.echo(f"error: Kafka at {settings.ingest.kafka.bootstrap_servers}: {exc!r}", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        typer.echo(f"error: cannot serve /metrics (ingest.scorer.metrics_host/metrics_port): {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        watcher.stop()
    typer.echo(
        f"scorer stopped: consumed {stats.consumed}, scored {stats.scored}, duplicates {stats.duplicates}, "
        f"dead letters {dict(stats.dead_letters)}",
        err=True,
    )


def replay(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(parser=nonempty_path("FILES"), help="CSV / JSONL files or folders of them")
    ],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, repeatable (fields: id text published_at source url tickers lang)"),
    ] = None,
    time_column: Annotated[str | None, typer.Option(help="event-time column (same as --map published_at=COL)")] = None,
    stocknet: Annotated[
        bool | None, typer.Option("--stocknet/--no-stocknet", help="merge rows per tweet_id (default: by header)")
    ] = None,
    speedup: Annotated[float | None, typer.Option(help="times faster than the original event times")] = None,
    rate: Annotated[float | None, typer.Option(help="fixed rate, messages per second")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="first event time sent, ISO-8601 (inclusive)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="event time where sending stops, ISO-8601 (exclusive)")] = None,
    limit_rows: Annotated[int | None, typer.Option(min=1, help="read at most this many rows")] = None,
    source: Annotated[str | None, typer.Option(help="`source` field for every item without one")] = None,
    assume_utc: Annotated[bool, typer.Option(help="read event times without a zone as UTC")] = False,
    topic: Annotated[str, typer.Option(help="topic to write")] = "news.raw",
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="progress bar")] = None,
) -> None:
    """Replay news from CSV / JSONL into news.raw in event-time order (help: :data:`REPLAY_HELP`)."""
    from kafka.errors import KafkaError

    from finsentry.cli_settings import settings_from
    from finsentry.ingest.replay import NothingToReplay, check_pacing
    from finsentry.ingest.replay import replay as run_replay
    from finsentry.ingest.replay_source import ColumnMap

    _quiet_kafka()
    settings = settings_from(ctx)
    cfg = settings.ingest.replay
    if speedup is not None and rate is not None:
        raise typer.BadParameter("give either --speedup or --rate, not both", param_hint="--speedup/--rate")
    for option, value in (("--speedup", speedup), ("--rate", rate)):
        try:
            check_pacing(**{option[2:]: value})
        except ValueError as exc:
            typer.echo(f"error: --{exc}", err=True)
            raise typer.Exit(2) from exc
    if speedup is None and rate is None:
        speedup, rate = cfg.speedup, cfg.rate
    pairs = list(map_ or []) + ([f"published_at={time_column}"] if time_column else [])
    try:
        ColumnMap.parse(pairs)  # fail fast on a bad pair
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--map") from exc
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        report = run_replay(
            files,
            settings.ingest.kafka,
            overrides=pairs,
            stocknet=stocknet,
            speedup=speedup,
            rate=rate,
            time_from=_parse_time(from_, "--from"),
            time_to=_parse_time(to, "--to"),
            limit_rows=limit_rows,
            source=source,
            assume_utc=assume_utc,
            topic=topic,
            progress=cfg.progress if progress is None else progress,
            stop=stop,
        )
    except NothingToReplay as exc:
        _list_refused(exc.refused)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except KafkaError as exc:
        typer.echo(f"error: Kafka at {settings.ingest.kafka.bootstrap_servers}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"sent {report.sent} of {report.items} items ({report.rows} rows, {report.merged_rows} merged, skipped "
        f"{counts_text(report.skipped)}, failed {report.failed}) in {report.elapsed_s:.1f} s"
        + (" (stopped early)" if report.stopped else ""),
        err=True,
    )
    if report.refused:
        _list_refused(report.refused)
        typer.echo(
            f"refused {len(report.refused)} rows (not sent: the scorer would dead-letter them); "
            "fix them and replay those rows",
            err=True,
        )
    if report.failed or report.refused:
        raise typer.Exit(1)


REFUSED_SHOWN = 20
"""Refused replay rows listed one by one (the rest are counted)."""


def _list_refused(refused: list[tuple[str, str]]) -> None:
    """Print the first :data:`REFUSED_SHOWN` refused rows as ``  file:line: reason`` on stderr."""
    for where, reason in refused[:REFUSED_SHOWN]:
        typer.echo(f"  {where}: {reason}", err=True)
    if len(refused) > REFUSED_SHOWN:
        typer.echo(f"  ... and {len(refused) - REFUSED_SHOWN} more", err=True)


REPLAY_HELP = (
    "Replay news from CSV / JSONL into news.raw in event-time order (StockNet CSVs: one item per tweet).\n\n"
    "A UTF-8 byte-order mark is dropped. An item without an id (no id column, an empty cell, a JSON null) gets a "
    "stable one: auto- + the first 16 hex digits of sha256(published_at + newline + text), published_at as sent "
    "(ISO UTC).\n\n"
    "Rows the scorer would dead-letter for a reason visible in the file are refused, not sent, and listed as "
    "FILE:LINE: reason: a JSONL line that is not a usable JSON object (not UTF-8 or JSON, nested too deeply, a "
    "huge number, a lone surrogate), an id that is not text or a whole number, is longer than 256 characters or "
    "holds whitespace, a text / source / url / lang / tickers of the wrong type. The other rows are sent.\n\n"
    "Exit 0: everything sent; 1: some rows refused or some produces failed; 2: bad options, an unreadable file, "
    "or nothing to send (before connecting to Kafka)."
)


def register(app: typer.Typer) -> None:
    """Add ``broker``, ``scorer`` and ``replay`` to the ``finsentry`` app."""
    app.command("broker")(broker)
    app.command("scorer")(scorer)
    app.command("replay", help=REPLAY_HELP)(replay)
