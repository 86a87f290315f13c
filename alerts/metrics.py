"""The relay's Prometheus metrics, declared once, in a registry of their own.

The relay serves only this registry on its ``/metrics`` so that, when ``finsentry run`` hosts several
services in one process, the relay's scrape job does not repeat the aggregator's or scorer's series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from finsentry.metric_spec import MetricSpec

REGISTRY = CollectorRegistry(auto_describe=True)
"""Registry served on the relay's ``/metrics``."""

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "finsentry_relay_notifications_total",
        "counter",
        ("sink",),
        "Notifications delivered, by sink (one per alert group and Alertmanager webhook call).",
        "notifications",
    ),
    MetricSpec(
        "finsentry_relay_sink_failures_total",
        "counter",
        ("sink",),
        "Failed delivery attempts, by sink (each retry that fails counts; a full queue counts once per dropped "
        "notification).",
        "attempts",
    ),
    MetricSpec(
        "finsentry_relay_rejected_requests_total",
        "counter",
        ("reason",),
        "Webhook requests the relay refused, by reason: unauthorized (401), too_large (413), length_required "
        "(411), bad_length (400: Content-Length repeated or not ASCII digits), invalid_json / invalid_payload (400),"
        " not_found (404).",
        "requests",
    ),
)
"""Every relay metric, for ``docs/metrics.md``."""

NOTIFICATIONS, SINK_FAILURES, REJECTED_REQUESTS = (spec.counter(REGISTRY) for spec in METRICS)
