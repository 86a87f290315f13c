"""``/metrics`` for one Prometheus registry: the scorer's, served by :class:`finsentry.common.http_routes.RoutedServer`
(the project's HTTP layer).

Every path answers ``GET`` and ``HEAD`` (headers only; for health checks) with the metrics, negotiated as
``prometheus_client``'s own ``MetricsHandler`` does (:func:`~finsentry.common.http_routes.metrics_route` with
``negotiate``: OpenMetrics or a text version from ``Accept``, gzip, ``?name[]=``), with the limits of
:mod:`finsentry.common.httpd`: a per-read idle timeout (:data:`finsentry.common.net.IDLE_TIMEOUT_S`), a total
deadline per request, at most ``max_connections`` at once, quiet and counted client resets.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from finsentry.common.http_routes import RoutedServer, Routes, metrics_route
from finsentry.common.httpd import MAX_CONNECTIONS, REQUEST_DEADLINE_S
from finsentry.common.net import IDLE_TIMEOUT_S

log = logging.getLogger(__name__)


def metrics_routes(registry: CollectorRegistry) -> Routes:
    """The scorer's table: every path (``*``) is the negotiated metrics of ``registry``, ``HEAD`` answered too."""
    route = metrics_route(registry, "*", negotiate=True)
    return Routes([route], not_found=route.handler, head=True)


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
        self._server: RoutedServer | None = None

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
        self._server = RoutedServer(
            (self.host, self.port),
            metrics_routes(self.registry),
            registry=self.registry,
            max_connections=self.max_connections,
            request_deadline_s=self.request_deadline_s,
            idle_timeout_s=self.idle_timeout_s,
            thread_name="metrics-http",
        ).start()
        self.port = self._server.port
        log.info("metrics on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            self._server.stop()
        self._server = None
