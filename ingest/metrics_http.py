"""``/metrics`` for one Prometheus registry on a stdlib ``ThreadingHTTPServer`` (the project's HTTP choice).

prometheus_client's ``MetricsHandler`` with two additions: ``HEAD`` (headers of the ``GET``, no body; for
health checks) and a per-connection socket timeout (:data:`finsentry.net.IDLE_TIMEOUT_S`), so an idle
keep-alive client cannot hold a server thread forever.
"""

from __future__ import annotations

import logging
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from finsentry.net import IDLE_TIMEOUT_S, serve_in_thread, stop_serving

log = logging.getLogger(__name__)


class _Discard:
    """A write-only file that drops what it is given (the body of a ``HEAD`` answer)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def metrics_handler(registry: CollectorRegistry, idle_timeout_s: float = IDLE_TIMEOUT_S) -> type[MetricsHandler]:
    """A ``MetricsHandler`` class for ``registry`` that also answers ``HEAD`` and times out idle connections.

    Args:
        registry: what ``GET /metrics`` exposes.
        idle_timeout_s: seconds a connection may stay silent before it is closed.
    """
    base = MetricsHandler.factory(registry)

    class Handler(base):  # type: ignore[valid-type, misc]
        timeout = idle_timeout_s

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

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ConnectionError, TimeoutError):  # the client went away, or was silent for idle_timeout_s
                self.close_connection = True

    return Handler


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    ``port`` 0 binds any free port; :attr:`port` holds the bound one after :meth:`start`. ``HEAD /metrics``
    answers the headers only; a connection silent for ``idle_timeout_s`` seconds is closed.

    Raises:
        OSError: from :meth:`start` when the address is taken or cannot be bound.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.idle_timeout_s = idle_timeout_s
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
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
        self._server = ThreadingHTTPServer((self.host, self.port), metrics_handler(self.registry, self.idle_timeout_s))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = serve_in_thread(self._server, "metrics-http")
        log.info("metrics on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            stop_serving(self._server, self._thread)
        self._server = self._thread = None
