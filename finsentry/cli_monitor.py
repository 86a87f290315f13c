"""Verbs of the monitor room: ``finsentry aggregator`` (the service) and ``finsentry report`` (offline backfill)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from finsentry.cli_paths import nonempty_path

log = logging.getLogger(__name__)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT / SIGTERM set ``stop``; a second signal exits at once."""

    def handler(signum, _frame) -> None:
        if stop.is_set():
            raise SystemExit(130)
        log.info("%s received; stopping (send again to exit now)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def aggregator(
    ctx: typer.Context,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (setting ingest.kafka.bootstrap_servers)")
    ] = None,
    group_id: Annotated[str | None, typer.Option(help="consumer group (setting monitor.group_id)")] = None,
    http_port: Annotated[
        int | None, typer.Option(help="port of /metrics and the API, 0 = any free port (setting monitor.http_port)")
    ] = None,
) -> None:
    """Aggregate sentiment.keyed into windows and spikes; serve /metrics and the API until SIGINT/SIGTERM."""
    from kafka.errors import KafkaError

    from finsentry.cli_settings import settings_from
    from finsentry.monitor.service import AggregatorService

    overrides: dict[str, Any] = {}
    if bootstrap_servers is not None:
        overrides["ingest"] = {"kafka": {"bootstrap_servers": bootstrap_servers}}
    monitor = {k: v for k, v in {"group_id": group_id, "http_port": http_port}.items() if v is not None}
    if monitor:
        overrides["monitor"] = monitor
    settings = settings_from(ctx, **overrides)
    stop = threading.Event()
    _stop_on_signals(stop)
    service = AggregatorService(settings.monitor, settings.ingest.kafka, settings.model.path)
    try:
        service.run(stop)
    except KafkaError as exc:
        typer.echo(f"error: Kafka at {settings.ingest.kafka.bootstrap_servers}: {exc!r}", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        typer.echo(f"error: monitor.http_host/http_port (env FINSENTRY_MONITOR__HTTP_PORT): {exc}", err=True)
        raise typer.Exit(2) from exc
    agg = service.aggregator
    typer.echo(
        f"aggregator stopped: {service.state.records} records, accepted {agg.accepted}, late {agg.late}, "
        f"duplicates {agg.duplicates}, keys {len(agg.keys)}",
        err=True,
    )


def _date_range(value: str) -> tuple[date, date]:
    try:
        a, b = value.split(":") if ":" in value else (value, value)
        return date.fromisoformat(a), date.fromisoformat(b)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not FROM:TO with ISO dates (e.g. 2015-08-10:2015-09-04)") from exc


def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", parser=nonempty_path("--out"), help="output folder (created)")],
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input", parser=nonempty_path("--input"), help="JSONL of news.scored records (one JSON object a line)"
        ),
    ] = None,
    stocknet: Annotated[
        str | None,
        typer.Option(
            help="instead of --input: score StockNet tweets of FROM:TO (UTC dates, inclusive) with the "
            "model (setting model.path) into OUT/<name>.scored.jsonl, then report"
        ),
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="monitor settings preset applied over the config: stocknet")
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            help="base name of the summary (.md), the chart (.png), the spike files (.spikes.csv, .spikes.jsonl)"
            " and the folder"
        ),
    ] = "report",
    title: Annotated[str | None, typer.Option(help="title of the summary and the chart")] = None,
    note: Annotated[
        str | None, typer.Option(help="a line for the head of the summary (e.g. the input's origin)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="report spikes from this UTC date on; earlier items only warm up the baselines"),
    ] = None,
) -> None:
    """Offline backfill: the aggregator over scored items; trend CSVs and PNG charts of `all` and the keys that
    spiked, a Markdown summary."""
    from pydantic import ValidationError

    from finsentry.cli_settings import settings_from
    from finsentry.monitor import settings as monitor_settings
    from finsentry.monitor.report import report_file, spikes_since

    if (input_ is None) == (stocknet is None):
        raise typer.BadParameter("give exactly one of --input FILE or --stocknet FROM:TO", param_hint="--input")
    if since is not None:
        try:
            date.fromisoformat(since[:10])
        except ValueError as exc:
            raise typer.BadParameter(f"{since!r} is not an ISO date (e.g. 2015-10-01)", param_hint="--since") from exc
    try:  # before any scoring: a bad --out used to end in a traceback after minutes of work
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        typer.echo(f"error: --out {out}: cannot create the folder ({exc.strerror or exc})", err=True)
        raise typer.Exit(2) from exc
    settings = settings_from(ctx)
    monitor = settings.monitor
    if preset is not None:
        try:
            monitor = monitor_settings.preset(preset, monitor)
        except (KeyError, ValidationError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--preset") from exc
    source = note
    if stocknet is not None:
        from finsentry.model.scorer import ModelLoadError, Scorer
        from finsentry.monitor.stocknet import load_tweets, score, write_jsonl

        start, end = _date_range(stocknet)
        try:
            scorer = Scorer.from_settings(settings.model)
            tweets = load_tweets(start, end)
        except (ModelLoadError, FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        input_ = out / f"{name}.scored.jsonl"
        n = write_jsonl(score(tweets, scorer, progress=True), input_)
        source = (note + " " if note else "") + (
            f"Input: {n} StockNet tweets (lang=en, one item per tweet) published {start} .. {end} UTC, "
            f"scored by the model at `{settings.model.path}`."
        )
        typer.echo(f"scored {n} tweets into {input_}", err=True)
    if not input_.is_file():  # before: "[Errno 2] No such file or directory", naming neither option nor format
        what = "is a folder" if input_.is_dir() else "not found"
        typer.echo(f"error: --input {input_} {what}; give a JSONL file of news.scored records", err=True)
        raise typer.Exit(2)
    try:
        summary, result = report_file(input_, out, monitor, name=name, title=title, source=source, since=since)
    except UnicodeDecodeError as exc:  # a binary file: the codec's message named neither the file nor the option
        bad = exc.object[exc.start : exc.start + 1].hex()
        typer.echo(
            f"error: --input {input_}: not UTF-8 text (byte 0x{bad}); give a JSONL file of news.scored records",
            err=True,
        )
        raise typer.Exit(2) from exc
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    spikes = len(spikes_since(result.events, since))  # as the summary counts them
    n = len(result.rejected)  # the log shows the first ten of them
    skipped = f", {n} record{'' if n == 1 else 's'} skipped (see the summary's Skipped records)" if n else ""
    typer.echo(
        f"{result.items} items, {result.keys} keys, {spikes} spike{'' if spikes == 1 else 's'}"
        f"{f' from {since}' if since else ''} ({len(result.events)} events: started, updated, ended){skipped}; "
        f"summary {summary}",
        err=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``aggregator`` and ``report`` to the ``finsentry`` app."""
    app.command("aggregator")(aggregator)
    app.command("report")(report)
