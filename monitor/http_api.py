"""The monitor's HTTP service: ``/metrics``, the JSON API and the dashboard page (stdlib ThreadingHTTPServer).

Routes (shapes in docs/contracts.md):

* ``GET /metrics`` Prometheus text exposition.
* ``GET /api/health`` ``{status, watermark, keys, model_versions, records, accepted, late, duplicates, future,
  partitions}``.
* ``GET /api/trends[?window=NAME][&limit=N][&key=K]`` views per key and window: the ``limit`` busiest keys (default
  and most ``monitor.api_max_keys``; ``all``, topics and keys with an open spike always) or ``key`` alone, and
  ``total``, the keys held.
* ``GET /api/spikes[?state=active|all][&key=K][&limit=N]`` spike events, newest first.
* ``GET /api/keys/<key>/buckets[?limit=N]`` a key's bucket history.
* ``GET /api/detectors[?key=K][&limit=N]`` detector baselines and state per key (the same keys as ``/api/trends``).
* ``GET /`` the dashboard (``monitor/static/index.html``); ``GET /static/<file>`` its other files.
* Extra JSON routes added by the process that embeds the service (:attr:`MonitorHTTPServer.json_routes`; the
  ``finsentry run`` supervisor adds ``/api/pipeline``).

Errors are JSON ``{"error": message}`` with 400 (bad parameter), 404 (unknown route or key) or 500.
``HEAD`` is answered for every ``GET`` route (the same status and headers, no body). Limits
(:mod:`finsentry.common.httpd`, shared with the other finsentry servers): a connection that sends nothing for
:data:`IDLE_TIMEOUT_S` seconds is closed; a request must arrive within ``request_deadline_s`` seconds in total
(:data:`~finsentry.common.httpd.REQUEST_DEADLINE_S`), however slowly its bytes come; at most ``max_connections``
(:data:`~finsentry.common.httpd.MAX_CONNECTIONS`) are served at once, more get 503 at once; a client that resets the
connection is one DEBUG line. Drops are counted in ``finsentry_http_connections_dropped_total{reason}``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from finsentry.common.httpd import MAX_CONNECTIONS, REQUEST_DEADLINE_S, GuardedHandler, GuardedHTTPServer
from finsentry.common.net import IDLE_TIMEOUT_S
from finsentry.monitor.queries import BadRequestError, MonitorState, UnknownKeyError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Static files of the dashboard."""

ROUTES = (
    "/metrics",
    "/api/health",
    "/api/trends",
    "/api/spikes",
    "/api/keys/<key>/buckets",
    "/api/detectors",
    "/",
    "/static/<file>",
)


STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
"""Content types of the static files served (other suffixes are not served)."""


class _Handler(GuardedHandler):
    server: MonitorHTTPServer
    server_version = "finsentry-monitor"
    _head = False  # answering HEAD: headers only

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        """The GET route's status and headers (its Content-Length too), without the body."""
        self._head = True
        try:
            self.do_GET()
        finally:
            self._head = False

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        state = self.server.state
        try:
            path = url.path.rstrip("/") or "/"
            if path == "/metrics":
                self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
            elif path == "/":
                self._send(200, (STATIC_DIR / "index.html").read_bytes(), "text/html; charset=utf-8")
            elif path.startswith("/static/"):
                self._static(path[len("/static/") :])
            elif path in self.server.json_routes:
                self._json(200, self.server.json_routes[path]())
            elif path == "/api/health":
                self._json(200, state.health())
            elif path == "/api/trends":
                self._json(200, state.trends(query.get("window"), _int(query, "limit", None), query.get("key")))
            elif path == "/api/spikes":
                limit = _int(query, "limit", 100)
                self._json(200, state.spikes(query.get("state", "all"), query.get("key"), limit))
            elif path == "/api/detectors":
                self._json(200, state.detectors(query.get("key"), _int(query, "limit", None)))
            elif path.startswith("/api/keys/") and path.endswith("/buckets"):
                key = unquote(path[len("/api/keys/") : -len("/buckets")])
                self._json(200, state.buckets(key, _int(query, "limit", None)))
            else:
                routes = ", ".join((*ROUTES, *sorted(self.server.json_routes)))
                self._json(404, {"error": f"no route {url.path}; routes: {routes}"})
        except BadRequestError as exc:
            self._json(400, {"error": str(exc)})
        except UnknownKeyError as exc:
            self._json(404, {"error": f"key {exc.args[0]!r} is not held by this aggregator"})
        except (ConnectionError, TimeoutError):  # the client went away or is too slow: GuardedHandler counts it
            raise
        except Exception as exc:  # a handler bug must not kill the server thread
            log.exception("error serving %s", self.path)
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _static(self, name: str) -> None:
        """A file directly in :data:`STATIC_DIR` with a suffix of :data:`STATIC_TYPES` (no sub-folders)."""
        file = STATIC_DIR / name
        kind = STATIC_TYPES.get(file.suffix)
        if "/" in name or name.startswith(".") or kind is None or not file.is_file():
            self._json(404, {"error": f"no static file {name!r}"})
            return
        self._send(200, file.read_bytes(), kind)

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._send(code, json.dumps(body, allow_nan=False, default=str).encode(), "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self._head:
            self.wfile.write(body)


def _int(query: dict[str, str], name: str, default: int | None) -> int | None:
    if name not in query:
        return default
    try:
        return int(query[name])
    except ValueError as exc:
        raise BadRequestError(f"{name} must be an integer, got {query[name]!r}") from exc


class MonitorHTTPServer(GuardedHTTPServer):
    """Serves :data:`ROUTES` for one :class:`MonitorState` and Prometheus registry.

    Args:
        host, port: bind address (port 0 = any free port; read the bound one from :attr:`port`).
        idle_timeout_s: seconds a connection may stay silent before it is closed (:data:`IDLE_TIMEOUT_S`).
        request_deadline_s: seconds a request may take to arrive in total, and its answer to be taken.
        max_connections: connections served at once (one thread each); more get 503 at once.

    Raises:
        OSError: the address cannot be bound (the message names it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        state: MonitorState,
        registry,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.state = state
        self.registry = registry
        self.json_routes: dict[str, Callable[[], dict[str, Any]]] = {}
        """Extra ``GET`` paths answered with the JSON of a callable (added by an embedding supervisor)."""
        try:
            super().__init__(
                (host, port),
                _Handler,
                registry=registry,
                max_connections=max_connections,
                request_deadline_s=request_deadline_s,
                idle_timeout_s=idle_timeout_s,
            )
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind the monitor HTTP service to {host}:{port}: {exc.strerror}") from exc
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self.server_address[1])

    def start(self) -> MonitorHTTPServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="monitor-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()
