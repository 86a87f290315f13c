"""The monitor's HTTP service: ``/metrics``, the JSON API and the dashboard page.

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
``HEAD`` is answered for every ``GET`` route (the same status and headers, no body); a trailing ``/`` is ignored.
The routes are a :class:`~finsentry.common.http_routes.Routes` table served by
:class:`~finsentry.common.http_routes.RoutedServer`, the HTTP layer every finsentry service shares. Limits
(:mod:`finsentry.common.httpd`): a connection that sends nothing for :data:`IDLE_TIMEOUT_S` seconds is closed; a
request must arrive within ``request_deadline_s`` seconds in total
(:data:`~finsentry.common.httpd.REQUEST_DEADLINE_S`), however slowly its bytes come; at most ``max_connections``
(:data:`~finsentry.common.httpd.MAX_CONNECTIONS`) are served at once, more get 503 at once; a client that resets the
connection is one DEBUG line. Drops are counted in ``finsentry_http_connections_dropped_total{reason}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry

from finsentry.common.http_routes import (
    Request,
    Response,
    Route,
    RoutedServer,
    Routes,
    content_response,
    health_route,
    json_response,
    metrics_route,
)
from finsentry.common.httpd import MAX_CONNECTIONS, REQUEST_DEADLINE_S
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


def api_routes(state: MonitorState, registry: CollectorRegistry) -> list[Route]:
    """The routes of :data:`ROUTES` for ``state`` and ``registry``, in the order they are tried."""

    def trends(r: Request) -> Response:
        return json_response(200, state.trends(r.param("window"), _int(r, "limit", None), r.param("key")))

    def spikes(r: Request) -> Response:
        limit = _int(r, "limit", 100)
        return json_response(200, state.spikes(r.param("state", "all"), r.param("key"), limit))

    def detectors(r: Request) -> Response:
        return json_response(200, state.detectors(r.param("key"), _int(r, "limit", None)))

    def buckets(r: Request) -> Response:
        return json_response(200, state.buckets(unquote(r.match), _int(r, "limit", None)))

    return [
        metrics_route(registry),
        Route("GET", "/", lambda r: _static_file(STATIC_DIR / "index.html")),
        Route("GET", "/static/*", _static),
        health_route("/api/health", state.health),
        Route("GET", "/api/trends", trends),
        Route("GET", "/api/spikes", spikes),
        Route("GET", "/api/detectors", detectors),
        Route("GET", "/api/keys/*/buckets", buckets),
    ]


def _static(request: Request) -> Response:
    """A file directly in :data:`STATIC_DIR` with a suffix of :data:`STATIC_TYPES` (no sub-folders)."""
    name = request.match
    file = STATIC_DIR / name
    if "/" in name or name.startswith(".") or file.suffix not in STATIC_TYPES or not file.is_file():
        return json_response(404, {"error": f"no static file {name!r}"})
    return _static_file(file)


def _static_file(file: Path) -> Response:
    return content_response(200, file.read_bytes(), STATIC_TYPES[file.suffix])


def _error(request: Request, exc: Exception) -> Response:
    """400 for a bad parameter, 404 for a key not held, else 500 (logged with its traceback)."""
    if isinstance(exc, BadRequestError):
        return json_response(400, {"error": str(exc)})
    if isinstance(exc, UnknownKeyError):
        return json_response(404, {"error": f"key {exc.args[0]!r} is not held by this aggregator"})
    log.error("error serving %s", request.target, exc_info=exc)  # a handler bug must not kill the server thread
    return json_response(500, {"error": f"{type(exc).__name__}: {exc}"})


def _int(request: Request, name: str, default: int | None) -> int | None:
    value = request.param(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise BadRequestError(f"{name} must be an integer, got {value!r}") from exc


class MonitorHTTPServer(RoutedServer):
    """Serves :data:`ROUTES` for one :class:`MonitorState` and Prometheus registry; :meth:`start` serves from a
    daemon thread, :meth:`stop` ends it, :attr:`port` is the bound port.

    Args:
        host, port: bind address (port 0 = any free port; read the bound one from :attr:`port`).
        idle_timeout_s: seconds a connection may stay silent before it is closed (:data:`IDLE_TIMEOUT_S`).
        request_deadline_s: seconds a request may take to arrive in total, and its answer to be taken.
        max_connections: connections served at once (one thread each); more get 503 at once.

    Attributes:
        json_routes: extra ``GET`` paths answered with the JSON of a callable (added by an embedding supervisor),
            tried after :data:`ROUTES`.

    Raises:
        OSError: the address cannot be bound (the message names it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        state: MonitorState,
        registry: CollectorRegistry,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.state = state
        self.registry = registry
        routes = Routes(
            api_routes(state, registry),
            not_found=self._not_found,
            on_error=_error,
            head=True,
            strip_trailing_slash=True,
        )
        self.json_routes: dict[str, Callable[[], dict[str, Any]]] = routes.json_routes
        try:
            super().__init__(
                (host, port),
                routes,
                server_version="finsentry-monitor",
                registry=registry,
                max_connections=max_connections,
                request_deadline_s=request_deadline_s,
                idle_timeout_s=idle_timeout_s,
                thread_name="monitor-http",
            )
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind the monitor HTTP service to {host}:{port}: {exc.strerror}") from exc

    def _not_found(self, request: Request) -> Response:
        routes = ", ".join((*ROUTES, *sorted(self.json_routes)))
        return json_response(404, {"error": f"no route {request.path}; routes: {routes}"})
