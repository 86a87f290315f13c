"""Per-sink delivery workers: a bounded queue and a thread per sink, retries with exponential backoff.

One slow, failing or hanging sink only fills its own queue: the relay hands each notification to every
worker without waiting, and each worker delivers in order. A notification is tried up to ``max_attempts``
times; the wait before retry ``n`` (n = 1, 2, ...) is ``min(backoff_initial_s * 2 ** (n - 1), backoff_max_s)``
seconds. Every failed attempt increments ``finsentry_relay_sink_failures_total{sink}``; a delivery increments
``finsentry_relay_notifications_total{sink}``. On stop, notifications still queued are dropped and logged.
"""

from __future__ import annotations

import logging
import queue
import threading

from finsentry.alerts.metrics import NOTIFICATIONS, SINK_FAILURES
from finsentry.alerts.notification import Notification
from finsentry.alerts.sinks import Sink

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling from ``initial_s``, capped.

    >>> [backoff_delay(n, 1.0, 5.0) for n in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    """
    return min(initial_s * 2 ** (attempt - 1), max_s)


class SinkWorker:
    """Deliver notifications to one sink from a queue on a daemon thread.

    Args:
        sink: the sink (its ``name`` is the metrics label).
        max_attempts: delivery attempts per notification (>= 1).
        backoff_initial_s, backoff_max_s: retry waits, seconds (see :func:`backoff_delay`).
        queue_size: notifications that may wait; :meth:`submit` drops (and counts a failure) when full.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        max_attempts: int = 5,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        queue_size: int = 1000,
    ) -> None:
        self.sink = sink
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._queue: queue.Queue[Notification] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"relay-sink-{sink.name}", daemon=True)

    @property
    def pending(self) -> int:
        """Notifications waiting in the queue (not counting one being delivered)."""
        return self._queue.qsize()

    def start(self) -> SinkWorker:
        """Start the worker thread."""
        self._thread.start()
        return self

    def submit(self, notification: Notification) -> bool:
        """Queue ``notification`` without blocking; False (logged, counted as a failure) if the queue is full."""
        try:
            self._queue.put_nowait(notification)
            return True
        except queue.Full:
            SINK_FAILURES.labels(sink=self.sink.name).inc()
            log.error("sink %s: queue full (%d), dropped %s", self.sink.name, self._queue.maxsize, notification.title)
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the current attempt (waits at most ``timeout_s``), drop what is queued, close the sink."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("sink %s: still busy after %.1f s; leaving its daemon thread", self.sink.name, timeout_s)
        dropped = self._queue.qsize()
        if dropped:
            log.warning("sink %s: %d queued notifications dropped on stop", self.sink.name, dropped)
        try:
            self.sink.close()
        except Exception:  # closing must not stop the others
            log.exception("sink %s: close failed", self.sink.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                notification = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(notification)

    def _deliver(self, notification: Notification) -> None:
        name = self.sink.name
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.sink.send(notification)
            except Exception as exc:  # any sink error: count, back off, retry
                SINK_FAILURES.labels(sink=name).inc()
                if attempt == self.max_attempts:
                    log.error("sink %s: giving up on %s after %d attempts: %s", name, notification.title, attempt, exc)
                    return
                delay = backoff_delay(attempt, self.backoff_initial_s, self.backoff_max_s)
                log.warning("sink %s: attempt %d failed (%s); retrying in %.1f s", name, attempt, exc, delay)
                if self._stop.wait(delay):
                    log.warning("sink %s: stopping; %s not delivered", name, notification.title)
                    return
            else:
                NOTIFICATIONS.labels(sink=name).inc()
                log.info("sink %s: delivered %s", name, notification.title)
                return
