"""``/metrics`` for one Prometheus registry on :class:`finsentry.common.httpd.GuardedHTTPServer` (the project's
HTTP base).

prometheus_client's ``MetricsHandler`` with ``HEAD`` added (headers of the ``GET``, no body; for health checks)
and the limits of :mod:`finsentry.common.httpd`: a per-read idle timeout
(:data:`finsentry.common.net.IDLE_TIMEOUT_S`), a total deadline per request, at most ``max_connections`` at once,
quiet and counted client resets.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from finsentry.common.httpd import MAX_CONNECTIONS, REQUEST_DEADLINE_S, GuardedHandler, GuardedHTTPServer
from finsentry.common.net import IDLE_TIMEOUT_S, serve_in_thread, stop_serving

log = logging.getLogger(__name__)


class _Discard:
    """A write-only file that drops what it is given (the body of a ``HEAD`` answer)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def metrics_handler(registry: CollectorRegistry) -> type[MetricsHandler]:
    """A ``MetricsHandler`` class for ``registry`` that also answers ``HEAD`` and keeps the limits of
    :class:`~finsentry.common.httpd.GuardedHandler` (set on the :class:`~finsentry.common.httpd.GuardedHTTPServer`
    serving it).

    Args:
        registry: what ``GET /metrics`` exposes.
    """
    base = MetricsHandler.factory(registry)

    class Handler(GuardedHandler, base):  # type: ignore[valid-type, misc]
        def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
            """The ``GET`` answer's status and headers; the body is discarded after the headers are sent."""
            real, end_headers = self.wfile, self.end_headers

            def end_then_discard() -> None:
                end_headers()
                self.wfile = _Discard()

            self.end_headers = end_then_discard  # type: ignore[method-assign]
            try:
                self.do_GET()
            finally:
                self.wfile = real

    return Handler


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    ``port`` 0 binds any free port; :attr:`port` holds the bound one after :meth:`start`. ``HEAD /metrics``
    answers the headers only; a connection silent for ``idle_timeout_s`` seconds is closed, a request must arrive
    within ``request_deadline_s`` seconds in total, and at most ``max_connections`` are served at once (more get
    503 at once); drops are counted on ``registry`` (``finsentry_http_connections_dropped_total``).

    Raises:
        OSError: from :meth:`start` when the address is taken or cannot be bound.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.registry = registry
        self.idle_timeout_s = idle_timeout_s
        self.request_deadline_s = request_deadline_s
        self.max_connections = max_connections
        self.host = host
        self.port = port
        self._server: GuardedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def serving(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        """Bind and serve in a daemon thread; returns self."""
        self._server = GuardedHTTPServer(
            (self.host, self.port),
            metrics_handler(self.registry),
            registry=self.registry,
            max_connections=self.max_connections,
            request_deadline_s=self.request_deadline_s,
            idle_timeout_s=self.idle_timeout_s,
        )
        self.port = int(self._server.server_address[1])
        self._thread = serve_in_thread(self._server, "metrics-http")
        log.info("metrics on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            stop_serving(self._server, self._thread)
        self._server = self._thread = None
