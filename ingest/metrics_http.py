"""``/metrics`` for one Prometheus registry on a stdlib ``ThreadingHTTPServer`` (the project's HTTP choice)."""

from __future__ import annotations

import logging
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

log = logging.getLogger(__name__)


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    ``port`` 0 binds any free port; :attr:`port` holds the bound one after :meth:`start`.

    Raises:
        OSError: from :meth:`start` when the address is taken or cannot be bound.
    """

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = registry
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
        self._server = ThreadingHTTPServer((self.host, self.port), MetricsHandler.factory(self.registry))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
