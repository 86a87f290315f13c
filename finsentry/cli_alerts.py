"""``finsentry relay``: the Alertmanager webhook relay (see ``finsentry.alerts.relay``)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    """Add the alerts room's verbs to the ``finsentry`` app."""

    @app.command("relay")
    def relay(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="bind address (alerts.relay_host)")] = None,
        port: Annotated[int | None, typer.Option(help="port, 0 = any free port (alerts.relay_port)")] = None,
    ) -> None:
        """Receive Alertmanager webhooks on POST /webhook, add evidence headlines, deliver to the sinks.

        Needs a bearer token (alerts.relay_token_file or FINSENTRY_ALERTS__RELAY_TOKEN) and the sinks in
        alerts.sinks (default: stdout). Stops cleanly on SIGINT / SIGTERM.
        """
        from finsentry.alerts.relay import RelayConfigError, RelayService
        from finsentry.cli_settings import settings_from

        overrides = {k: v for k, v in (("relay_host", host), ("relay_port", port)) if v is not None}
        settings = settings_from(ctx)
        if overrides:
            alerts = settings.alerts.model_dump() | overrides
            settings = settings_from(ctx, alerts=alerts)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        service = RelayService(settings.alerts, kafka=settings.ingest.kafka)
        try:
            service.start()
        except RelayConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except OSError as exc:
            typer.echo(
                f"error: cannot listen on {settings.alerts.relay_host}:{settings.alerts.relay_port}: {exc}", err=True
            )
            raise typer.Exit(1) from exc
        try:
            stop.wait()
        finally:
            log.info("relay stopping")
            service.stop()
