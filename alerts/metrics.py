"""The relay's Prometheus metrics, declared once, in a registry of their own.

The relay serves only this registry on its ``/metrics`` so that, when ``finsentry run`` hosts several
services in one process, the relay's scrape job does not repeat the aggregator's or scorer's series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from finsentry.common.metric_spec import MetricSpec

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
    MetricSpec(
        "finsentry_relay_spike_records_total",
        "counter",
        (),
        "sentiment.spikes records the relay read into its spike cache (the evidence of its notifications).",
        "records",
    ),
    MetricSpec(
        "finsentry_relay_spike_records_rejected_total",
        "counter",
        ("reason",),
        "sentiment.spikes records the relay skipped, by reason: invalid_json (not UTF-8 JSON), invalid_record (not a"
        " spike event with spike_id and start, docs/contracts.md).",
        "records",
    ),
    MetricSpec(
        "finsentry_relay_spike_cache_spikes",
        "gauge",
        (),
        "Spikes held in the relay's cache (at most alerts.spike_cache_size; the least recently updated go first).",
        "spikes",
    ),
)
"""Every relay metric, for ``docs/metrics.md``."""

NOTIFICATIONS, SINK_FAILURES, REJECTED_REQUESTS, SPIKE_RECORDS, SPIKE_RECORDS_REJECTED = (
    spec.counter(REGISTRY) for spec in METRICS if spec.type == "counter"
)
SPIKE_CACHE_SPIKES = METRICS[-1].gauge(REGISTRY)
