"""Generate the metrics reference (``docs/metrics.md``) from the services' Prometheus registries.

Run ``python -m finsentry.metrics_docs`` (writes ``docs/metrics.md``; ``--out FILE`` elsewhere, ``--check``
exits 1 when the file is out of date). Each service's registry is built as the service builds it, without
Kafka (:func:`service_registries`); its families give the exposed name, type and help. Label names and units
come from the rooms' :class:`~finsentry.common.metric_spec.MetricSpec` declarations, which the metrics and the
custom collectors are built from; a family without a declaration, or a declaration the registry does not
export with the same type and help, stops the generator (:class:`MetricsDocError`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from finsentry.common.metric_spec import MetricSpec
from finsentry.common.paths import REPO_ROOT

DOC_PATH = REPO_ROOT / "docs" / "metrics.md"
"""Where the reference is committed."""


class MetricsDocError(RuntimeError):
    """A registry and the metric declarations disagree; the message names the metric."""


@dataclass(frozen=True)
class ServiceMetrics:
    """One service's registry and the declarations of what it exports.

    Attributes:
        title: section heading. about: a sentence on where the service serves ``/metrics``.
        registry: the registry the service serves, freshly built. specs: its declared metrics, in doc order.
        shared: declarations of another section that the registry may also hold (checked, not listed again).
    """

    title: str
    about: str
    registry: CollectorRegistry
    specs: tuple[MetricSpec, ...]
    shared: tuple[MetricSpec, ...] = ()
    """Metrics documented in another section (the HTTP servers') that this registry may also export."""


def _scorer() -> ServiceMetrics:
    from finsentry.ingest import hot_swap, scorer_metrics

    registry = scorer_metrics.ScorerMetrics().registry
    hot_swap.HotSwapMetrics(registry)  # the hot swap counts on the scorer's registry (hot_swap.attach)
    return ServiceMetrics(
        "Scorer",
        "`finsentry scorer` (and the scorer of `finsentry run`) serves these on `/metrics` at"
        " `ingest.scorer.metrics_host:ingest.scorer.metrics_port`; declared in `ingest/scorer_metrics.py`, the"
        " hot swap's (`finsentry scorer` only: `finsentry run` does not hot-swap) in `ingest/hot_swap.py`.",
        registry,
        scorer_metrics.METRICS + hot_swap.METRICS,
    )


def _aggregator() -> ServiceMetrics:
    from finsentry.model.labels import TASKS
    from finsentry.monitor import drift, metrics
    from finsentry.monitor.queries import Snapshot
    from finsentry.monitor.settings import MonitorSettings

    aggregator = metrics.AggregatorMetrics(
        lambda: Snapshot(taken_at=time.time()),
        lambda: None,
        lambda: 0,
        ticker_cap=0,
        windows=MonitorSettings().window_names,
    )
    drift.register_drift(aggregator.registry, drift.DriftTracker({task: {} for task in TASKS}))
    return ServiceMetrics(
        "Aggregator",
        "`finsentry aggregator` (and the aggregator of `finsentry run`) serves these on the monitor HTTP"
        " service's `/metrics` (`monitor.http_host:monitor.http_port`); declared in `monitor/metrics.py` (the"
        " per-key gauges come from a scrape-time collector over the current snapshot; `ticker:*` keys only for"
        " the `monitor.ticker_metrics_cap` busiest tickers) and `monitor/drift.py`.",
        aggregator.registry,
        metrics.METRICS + drift.METRICS,
    )


def _relay() -> ServiceMetrics:
    from finsentry.alerts import metrics
    from finsentry.common import httpd

    return ServiceMetrics(
        "Relay",
        "`finsentry relay` (and the relay of `finsentry run`) serves these on its own `/metrics`"
        " (`alerts.relay_host:alerts.relay_port`); declared in `alerts/metrics.py`.",
        metrics.REGISTRY,  # one per process: holds the HTTP servers' metrics too once a relay has started
        metrics.METRICS,
        shared=httpd.HTTP_METRICS,
    )


def _http_servers() -> ServiceMetrics:
    from finsentry.common import httpd

    registry = CollectorRegistry()
    httpd.dropped_counter(registry)
    return ServiceMetrics(
        "Every HTTP server",
        "The scorer's `/metrics`, the monitor HTTP service and the relay (`common/httpd.py`) each export these"
        " on the registry they serve, beside the metrics above, once the server has started (so not in a process"
        " that only scores or aggregates without serving HTTP).",
        registry,
        httpd.HTTP_METRICS,
    )


def service_registries() -> list[ServiceMetrics]:
    """Every service that exports metrics, its registry built as the service builds it (no Kafka, no HTTP), and
    the metrics every HTTP server adds to the registry it serves."""
    return [_scorer(), _aggregator(), _relay(), _http_servers()]


def _exposed_name(family: Metric) -> str:
    return f"{family.name}_total" if family.type == "counter" else family.name


def _buckets(family: Metric) -> list[str]:
    """Upper bounds of a histogram's buckets (``+Inf`` left out), as exposed."""
    bounds = []
    for sample in family.samples:
        le = sample.labels.get("le")
        if sample.name.endswith("_bucket") and le not in (None, "+Inf") and le not in bounds:
            bounds.append(le)
    return bounds


def check_service(service: ServiceMetrics) -> dict[str, Metric]:
    """The registry's families by exposed name, after checking them against the declarations.

    Raises:
        MetricsDocError: a family has no declaration, a declaration no family, or type, help or the label
            names of an exported series differ from the declaration.
    """
    families = {_exposed_name(f): f for f in service.registry.collect()}
    declared = {spec.name: spec for spec in service.specs}
    shared = {spec.name: spec for spec in service.shared if spec.name in families}
    if undeclared := sorted(set(families) - set(declared) - set(shared)):
        raise MetricsDocError(f"{service.title}: exported but not declared with a MetricSpec: {undeclared}")
    if missing := sorted(set(declared) - set(families)):
        raise MetricsDocError(f"{service.title}: declared but not exported by the registry: {missing}")
    for name, spec in (declared | shared).items():
        family = families[name]
        if family.type != spec.type or family.documentation != spec.help:
            raise MetricsDocError(f"{name}: registry has {family.type} {family.documentation!r}, spec {spec!r}")
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = tuple(k for k in sample.labels if k != "le")
            if labels != spec.labels:
                raise MetricsDocError(f"{name}: series labels {labels} differ from the declared {spec.labels}")
    return families


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def metrics_markdown(services: Sequence[ServiceMetrics] | None = None) -> str:
    """The Markdown reference: a table per service of metric, type, labels, help and unit.

    Args:
        services: the services to document (default :func:`service_registries`).

    Raises:
        MetricsDocError: see :func:`check_service`.
    """
    lines = [
        "# Metrics reference",
        "",
        "Generated by `python -m finsentry.metrics_docs` from each service's Prometheus registry and the metric",
        "declarations (`MetricSpec`, `common/metric_spec.py`) that registry is built from; do not edit by hand.",
        "Names are as exposed on `/metrics`: a counter `X_total` also has `X_created` (Unix time its series",
        "started); a histogram `X` is exposed as `X_bucket{le}`, `X_sum`, `X_count` (and `X_created`).",
        "Alert rules on these: `alerts/alerting_rules.yml`, `alerts/drift_rules.yml`; names in `docs/contracts.md`.",
    ]
    for service in service_registries() if services is None else services:
        families = check_service(service)
        lines += [
            "",
            f"## {service.title}",
            "",
            service.about,
            "",
            "| metric | type | labels | help | unit |",
            "|---|---|---|---|---|",
        ]
        for spec in service.specs:
            family = families[spec.name]
            labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
            help_ = family.documentation
            if spec.type == "histogram" and (bounds := _buckets(family)):
                help_ += f" (buckets `le`: {', '.join(bounds)})"
            lines.append(f"| `{spec.name}` | {spec.type} | {labels} | {_cell(help_)} | {_cell(spec.unit) or '-'} |")
    lines += ["", "The labels consumer (`finsentry labels consume`, `ingest/labels_consumer.py`) exports no metrics."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or, with ``--check``, compare) the reference; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m finsentry.metrics_docs", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC_PATH, help="Markdown file to write (default docs/metrics.md)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file differs")
    args = parser.parse_args(argv)
    text = metrics_markdown()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run python -m finsentry.metrics_docs", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
