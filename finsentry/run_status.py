"""Live status of a ``finsentry run`` pipeline for the dashboard: ``GET /api/pipeline`` on the monitor service.

The scorer's numbers live in the scorer's own registry and ``/metrics`` (another port, so the dashboard page
cannot read them: same-origin rule). The supervisor therefore adds this read-only JSON route to the monitor
service it hosts. Shape::

    {started_at, uptime_s,
     replay: {source, from, to, speed, items, sent, event_time, done, failed},
     scorer: {consumed, scored, duplicates, batches, dead_letters: {reason: n}, dead_letters_total,
              model_version, inference_latency_seconds: {count, mean, p50, p95},
              scored_latency_seconds: {count, mean, p50, p95}, metrics_url},
     aggregator: {rejected: {reason: n}},
     services: {name: url}, processes: [{name, pid}]}

Latency quantiles: :func:`finsentry.common.registry_stats.histogram_summary` (Prometheus's ``histogram_quantile``
method). Counts are totals since start; the page derives rates from successive polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from finsentry.common.registry_stats import histogram_summary, labelled_counts
from finsentry.ingest.contract import iso_epoch


@dataclass
class ReplayProgress:
    """Progress of the replay thread, updated by :class:`CountingProducer` (thread-safe enough: plain assignments).

    Attributes: source, time_from, time_to (ISO or None), speed (event seconds per wall second), items (to
    send), sent (handed to the producer), event_time (ISO ``published_at`` of the latest sent), done, failed.
    """

    source: str = ""
    time_from: str | None = None
    time_to: str | None = None
    speed: float | None = None
    items: int = 0
    sent: int = 0
    event_time: str | None = None
    done: bool = False
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The ``replay`` part of ``/api/pipeline``."""
        return {
            "source": self.source,
            "from": self.time_from,
            "to": self.time_to,
            "speed": self.speed,
            "items": self.items,
            "sent": self.sent,
            "event_time": self.event_time,
            "done": self.done,
            "failed": self.failed,
        }


class CountingProducer:
    """Wraps a kafka-python producer for :func:`finsentry.ingest.replay.send_items` and records progress.

    Only ``send`` and ``flush`` are used by ``send_items``; both are passed through unchanged.
    """

    def __init__(self, producer: Any, progress: ReplayProgress, value_of: Callable[[bytes], dict]) -> None:
        self._producer = producer
        self._progress = progress
        self._value_of = value_of

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, **kwargs: Any):
        """``producer.send`` plus a progress update (count, event time of the item)."""
        future = self._producer.send(topic, key=key, value=value, **kwargs)
        self._progress.sent += 1
        if value is not None:
            self._progress.event_time = self._value_of(value).get("published_at")
        return future

    def flush(self, timeout: float | None = None) -> None:
        """``producer.flush``."""
        self._producer.flush(timeout=timeout)


@dataclass
class PipelineStatus:
    """Builds the ``/api/pipeline`` answer from the live services of one ``finsentry run``.

    Args:
        scorer: the :class:`~finsentry.ingest.scorer_service.ScorerService` (its ``stats`` and ``metrics``).
        aggregator_registry: the aggregator's Prometheus registry (rejected messages by reason).
        replay: the :class:`ReplayProgress` of the replay thread.
        services: name -> URL of what runs (dashboard, metrics, relay, Prometheus, Alertmanager, broker).
        processes: callable returning ``[(name, pid)]`` of the supervised child processes.
    """

    scorer: Any
    aggregator_registry: CollectorRegistry
    replay: ReplayProgress
    services: dict[str, str] = field(default_factory=dict)
    processes: Callable[[], Iterable[tuple[str, int]]] = list
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        """The JSON-ready status (see the module doc)."""
        with self._lock:
            stats = self.scorer.stats
            registry = self.scorer.metrics.registry
            dead = {k: int(v) for k, v in sorted(stats.dead_letters.items()) if v}
            return {
                "started_at": iso_epoch(self.started),
                "uptime_s": round(time.time() - self.started, 1),
                "replay": self.replay.as_dict(),
                "scorer": {
                    "consumed": stats.consumed,
                    "scored": stats.scored,
                    "duplicates": stats.duplicates,
                    "batches": stats.batches,
                    "dead_letters": dead,
                    "dead_letters_total": sum(dead.values()),
                    "model_version": self.scorer.model.model_version,
                    "inference_latency_seconds": histogram_summary(registry, "finsentry_inference_latency_seconds"),
                    "scored_latency_seconds": histogram_summary(registry, "finsentry_scored_latency_seconds"),
                    "metrics_url": self.scorer.metrics_url,
                },
                "aggregator": {
                    "rejected": labelled_counts(
                        self.aggregator_registry, "finsentry_aggregator_rejected_messages", "reason"
                    )
                },
                "services": dict(self.services),
                "processes": [{"name": n, "pid": p} for n, p in self.processes()],
            }
