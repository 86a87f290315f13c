"""Prometheus and Alertmanager for ``finsentry run --with-prometheus``: the shipped rules with a demo ``for``,
scraping the run's services, alerting through its relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finsentry.run_options import RunError

DEMO_SCRAPE_S = 2.0
"""Prometheus scrape and rule-evaluation interval of the demo, seconds (production: 15 s)."""
DEMO_ALERT_FOR_S = 4.0
"""``for`` of every alerting rule in the demo, seconds: a replayed day lasts seconds, not hours."""


@dataclass
class AlertingProcesses:
    """The started servers (``url``, ``process``) of :func:`start_alerting`."""

    alertmanager: Any
    prometheus: Any


def check_alerting_binaries() -> None:
    """Fail before anything starts when ``--with-prometheus`` cannot be honoured.

    Raises:
        RunError: (exit 2) prometheus or alertmanager is not on PATH.
    """
    from finsentry.alerts.processes import AlertmanagerServer, BinaryNotFound, PrometheusServer, find_binary

    try:
        find_binary(*PrometheusServer.binary_names)
        find_binary(*AlertmanagerServer.binary_names)
    except BinaryNotFound as exc:
        raise RunError(f"--with-prometheus: {exc}", 2) from exc


def start_alerting(
    workdir: Path, relay_url: str, token_file: Path, services: dict[str, str], adopt
) -> AlertingProcesses:
    """Start Alertmanager (routing to ``relay_url`` with the bearer token in ``token_file``) and Prometheus (the
    shipped rules with ``for:`` :data:`DEMO_ALERT_FOR_S`, scraping ``services``' ``scorer_metrics``,
    ``monitor_metrics`` and ``relay_metrics`` every :data:`DEMO_SCRAPE_S`); ``adopt(name, process)`` hands each
    process to the supervisor as soon as it runs.

    Raises:
        RunError: a binary is missing (exit 2) or a server did not start (exit 1).
    """
    from finsentry.alerts import configs
    from finsentry.alerts.processes import (
        AlertmanagerServer,
        BinaryNotFound,
        ProcessStartError,
        PrometheusServer,
    )
    from finsentry.alerts.relay import WEBHOOK_PATH

    rules_dir = workdir / "rules"
    rule_files = []
    for name in configs.load_yaml(configs.PROMETHEUS_CONFIG).get("rule_files", []):
        path = configs.ALERTS_DIR / name
        rules = configs.load_yaml(path)
        if any("alert" in r for g in rules.get("groups", []) for r in g.get("rules", [])):
            rules = configs.rules_with_for(path, DEMO_ALERT_FOR_S)
        rule_files.append(configs.write_yaml(rules, rules_dir / path.name))
    try:
        am = AlertmanagerServer(
            configs.alertmanager_config(
                relay_url=f"{relay_url}{WEBHOOK_PATH}",
                credentials_file=token_file,
                group_wait_s=1.0,
                group_interval_s=5.0,
                repeat_interval_s=3600.0,
            ),
            workdir / "alertmanager",
        )
        am.start()
        adopt("alertmanager", am.process)
        hostport = lambda url: url.split("//", 1)[1].split("/", 1)[0]  # noqa: E731
        prom = PrometheusServer(
            configs.prometheus_config(
                targets={
                    "finsentry-scorer": [hostport(services["scorer_metrics"])],
                    "finsentry-aggregator": [hostport(services["monitor_metrics"])],
                    "finsentry-relay": [hostport(services["relay_metrics"])],
                },
                alertmanagers=[f"{am.host}:{am.port}"],
                scrape_interval_s=DEMO_SCRAPE_S,
                evaluation_interval_s=DEMO_SCRAPE_S,
                rule_files=rule_files,
            ),
            workdir / "prometheus",
        )
        prom.start()
        adopt("prometheus", prom.process)
    except BinaryNotFound as exc:
        raise RunError(f"--with-prometheus: {exc}", 2) from exc
    except ProcessStartError as exc:
        raise RunError(f"--with-prometheus: {exc}") from exc
    return AlertingProcesses(alertmanager=am, prometheus=prom)
