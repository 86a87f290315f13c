"""The relay's Prometheus metrics, declared once, in a registry of their own.

The relay serves only this registry on its ``/metrics`` so that, when ``finsentry run`` hosts several
services in one process, the relay's scrape job does not repeat the aggregator's or scorer's series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)
"""Registry served on the relay's ``/metrics``."""

NOTIFICATIONS = Counter(
    "finsentry_relay_notifications_total",
    "Notifications delivered, by sink (one per alert group and Alertmanager webhook call).",
    ["sink"],
    registry=REGISTRY,
)
SINK_FAILURES = Counter(
    "finsentry_relay_sink_failures_total",
    "Failed delivery attempts, by sink (each retry that fails counts; a full queue counts once per dropped "
    "notification).",
    ["sink"],
    registry=REGISTRY,
)
REJECTED_REQUESTS = Counter(
    "finsentry_relay_rejected_requests_total",
    "Webhook requests the relay refused, by reason: unauthorized (401), too_large (413), length_required "
    "(411), invalid_json / invalid_payload (400), not_found (404).",
    ["reason"],
    registry=REGISTRY,
)
