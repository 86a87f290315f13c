"""The HTTP layer of every finsentry service: a route table, typed responses and the server that answers them.

A service states its endpoints as a :class:`Routes` table of :class:`Route` entries (method + path, or a path
with one ``*``) whose handlers take a :class:`Request` and return a :class:`Response`; :class:`RoutedServer` serves
the table on :class:`~finsentry.common.httpd.GuardedHTTPServer`, so every limit of :mod:`finsentry.common.httpd`
holds (bounded threads, a deadline per request, counted drops) and it starts and stops in a background thread.
The answers every service shares are written once here:

- :func:`json_response`: a JSON body (``allow_nan=False``, other types as ``str``) with ``Content-Type:
  application/json`` and its ``Content-Length``; :func:`content_response` for any other body.
- :func:`metrics_route`: ``/metrics`` of a ``prometheus_client`` registry, either always the text format
  (``CONTENT_TYPE_LATEST``, with ``Content-Length``) or negotiated from ``Accept``, ``Accept-Encoding`` and
  ``?name[]=`` as ``prometheus_client``'s own ``MetricsHandler`` does.
- :func:`health_route`: ``GET`` a health path -> 200 ``{"status": ..., ...}``.

The standard library's ``http.server`` stays the base (not an ASGI stack): it is what the per-request deadline of
:mod:`finsentry.common.httpd` is built on, which uvicorn has no equivalent of.

Example, a table answered without a server (:meth:`Routes.answer`)::

    >>> routes = Routes(
    ...     [health_route("/healthz", lambda: {"sinks": 2}),
    ...      Route("GET", "/items/*", lambda r: json_response(200, {"item": r.match}))],
    ...     not_found=lambda r: json_response(404, {"error": f"no route {r.path}"}),
    ... )
    >>> routes.answer(Request.of("GET", "/items/42?x=1")).body
    b'{"item": "42"}'
    >>> answer = routes.answer(Request.of("GET", "/healthz"))
    >>> answer.status, answer.headers, answer.body
    (200, (('Content-Type', 'application/json'), ('Content-Length', '28')), b'{"status": "ok", "sinks": 2}')
    >>> routes.answer(Request.of("GET", "/nope")).status
    404
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.message import Message
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder, gzip_accepted

from finsentry.common.httpd import MAX_CONNECTIONS, REQUEST_DEADLINE_S, GuardedHandler, GuardedHTTPServer
from finsentry.common.net import IDLE_TIMEOUT_S

log = logging.getLogger(__name__)

Header = tuple[str, str]
"""One response header: ``(name, value)``."""


@dataclass(frozen=True)
class Response:
    """One answer: ``status`` (an HTTP status code), ``body`` (bytes; not sent to ``HEAD``) and ``headers`` in the
    order they are sent (``Server`` and ``Date`` are added by the server; a ``Connection: close`` header also
    closes the connection after the answer)."""

    status: int
    body: bytes = b""
    headers: tuple[Header, ...] = ()


def content_response(status: int, body: bytes, content_type: str, headers: Iterable[Header] = ()) -> Response:
    """``body`` with ``Content-Type: content_type`` and its ``Content-Length``, then ``headers``."""
    return Response(int(status), body, (("Content-Type", content_type), ("Content-Length", str(len(body))), *headers))


def json_response(status: int, body: Any, headers: Iterable[Header] = ()) -> Response:
    """``body`` as JSON (``json.dumps``: ASCII, ``", "`` and ``": "`` separators, key order kept, a value JSON has no
    type for written as its ``str``) with ``Content-Type: application/json`` and its ``Content-Length``.

    >>> json_response(404, {"error": "no route /x"}, [("Connection", "close")]).headers[1:]
    (('Content-Length', '24'), ('Connection', 'close'))

    Raises:
        ValueError: ``body`` holds NaN or an infinity (not JSON; the caller's bug, answered 500 where the table
            maps errors).
    """
    return content_response(
        status, json.dumps(body, allow_nan=False, default=str).encode(), "application/json", headers
    )


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it.

    Attributes:
        method: as sent (``GET``, ``HEAD``, ``POST``); a ``HEAD`` is routed as ``GET`` where the table answers it.
        target: the request target as read (path and query; ``http.server`` already folded a leading ``//``).
        path: the target's path (``urllib.parse.urlsplit``; percent-escapes kept, query and fragment dropped).
        query: every query parameter's values (``parse_qs``: blank values dropped).
        headers: the request headers (``email.message.Message``; ``get_all`` for repeated ones).
        client: the client's address.
        match: the text the route's ``*`` matched ("" for an exact route).
        read: reads that many bytes of the body (within the server's deadlines).
    """

    method: str
    target: str
    path: str
    query: Mapping[str, list[str]]
    headers: Message = field(default_factory=Message)
    client: str = ""
    match: str = ""
    read: Callable[[int], bytes] = field(default=lambda n: b"", repr=False)

    @classmethod
    def of(
        cls,
        method: str,
        target: str,
        headers: Message | None = None,
        client: str = "",
        read: Callable[[int], bytes] | None = None,
    ) -> Request:
        """The request for ``method`` and ``target``, its path and query split off (``match`` is set by routing)."""
        url = urlsplit(target)
        return cls(
            method, target, url.path, parse_qs(url.query), headers or Message(), client, "", read or (lambda n: b"")
        )

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter ``name``, or ``default``."""
        values = self.query.get(name)
        return values[-1] if values else default


Handler = Callable[[Request], Response]
"""What a route runs: the request in, the answer out."""


@dataclass(frozen=True)
class Route:
    """``method`` (``GET``, ``POST``) and ``path``, answered by ``handler``.

    ``path`` is exact, or holds one ``*`` that matches any text, ``/`` and the empty text included (given to the
    handler as :attr:`Request.match`): ``/static/*``, ``/api/keys/*/buckets``, or ``*`` for every path.
    """

    method: str
    path: str
    handler: Handler

    def match(self, path: str) -> str | None:
        """What ``*`` matched in ``path`` ("" for an exact route), or None when ``path`` is not this route's.

        >>> Route("GET", "/api/keys/*/buckets", print).match("/api/keys/ticker:AAPL/buckets")
        'ticker:AAPL'
        >>> Route("GET", "/metrics", print).match("/metrics/x") is None
        True
        """
        head, star, tail = self.path.partition("*")
        if not star:
            return "" if path == head else None
        if not (path.startswith(head) and path.endswith(tail)):
            return None
        return path[len(head) : len(path) - len(tail)]


class Routes:
    """A service's route table: the first :class:`Route` that matches a request answers it.

    Args:
        routes: the table, in the order they are tried.
        not_found: the answer when no route matches.
        on_error: the answer when a handler raises (not a ``ConnectionError`` or ``TimeoutError``: the client went
            away, which the server counts); None: the error reaches the server, which logs it and closes the
            connection unanswered.
        head: answer ``HEAD`` as ``GET`` without the body (same status and headers, ``Content-Length`` included);
            False: ``HEAD`` is 501 as any method without a route.
        strip_trailing_slash: match ``/api/health/`` as ``/api/health`` (``/`` stays ``/``).

    Attributes:
        json_routes: ``GET`` paths added at run time, answered 200 with the JSON of their callable, tried after the
            table (a process that embeds a service adds its own, e.g. ``finsentry run``'s ``/api/pipeline``).
    """

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        not_found: Handler,
        on_error: Callable[[Request, Exception], Response] | None = None,
        head: bool = False,
        strip_trailing_slash: bool = False,
    ) -> None:
        self.routes = list(routes)
        self.not_found = not_found
        self.on_error = on_error
        self.head = head
        self.strip_trailing_slash = strip_trailing_slash
        self.json_routes: dict[str, Callable[[], Any]] = {}

    def serves(self, method: str) -> bool:
        """True if the table answers ``method`` (``HEAD`` where :attr:`head` and a ``GET`` route exist)."""
        if method == "HEAD" and self.head:
            method = "GET"
        return (method == "GET" and bool(self.json_routes)) or any(r.method == method for r in self.routes)

    def answer(self, request: Request) -> Response:
        """The answer to ``request``: its route's, else :attr:`not_found`'s; a handler's error goes to
        :attr:`on_error` when set.

        Raises:
            ConnectionError, TimeoutError: from a handler (the client went away or is too slow).
            Exception: a handler's error when there is no :attr:`on_error`.
        """
        method = "GET" if request.method == "HEAD" and self.head else request.method
        path = (request.path.rstrip("/") or "/") if self.strip_trailing_slash else request.path
        try:
            for route in self.routes:
                if route.method == method and (match := route.match(path)) is not None:
                    return route.handler(replace(request, match=match))
            if method == "GET" and path in self.json_routes:
                return json_response(200, self.json_routes[path]())
            return self.not_found(request)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:
            if self.on_error is None:
                raise
            return self.on_error(request, exc)


def json_route(path: str, produce: Callable[[], Any]) -> Route:
    """``GET path`` -> 200 with the JSON of ``produce()``."""
    return Route("GET", path, lambda request: json_response(200, produce()))


def health_route(path: str, report: Callable[[], Mapping[str, Any]]) -> Route:
    """``GET path`` -> 200 ``{"status": "ok", ...report()}``: ``status`` first, ``ok`` unless ``report`` says
    otherwise (the monitor says ``starting`` until it has read its partitions); what the deploy probes call."""
    return json_route(path, lambda: {"status": "ok", **report()})


def metrics_response(registry: CollectorRegistry, request: Request | None = None) -> Response:
    """The metrics of ``registry``.

    ``request`` None: the Prometheus text format (``generate_latest``, ``CONTENT_TYPE_LATEST``) with
    ``Content-Length`` (the monitor's and the relay's ``/metrics``). Given: negotiated as ``prometheus_client``'s
    ``MetricsHandler`` does (the scorer's): OpenMetrics or a text version from ``Accept`` (else text 0.0.4),
    only the ``?name[]=`` series when asked, gzip when ``Accept-Encoding`` allows it; no ``Content-Length``.
    """
    if request is None:
        return content_response(200, generate_latest(registry), CONTENT_TYPE_LATEST)
    encoder, content_type = choose_encoder(request.headers.get("Accept"))
    if "name[]" in request.query:
        registry = registry.restricted_registry(request.query["name[]"])
    body = encoder(registry)
    headers: list[Header] = [("Content-Type", content_type)]
    if gzip_accepted(request.headers.get("Accept-Encoding")):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return Response(200, body, tuple(headers))


def metrics_route(registry: CollectorRegistry, path: str = "/metrics", *, negotiate: bool = False) -> Route:
    """``GET path`` -> :func:`metrics_response` of ``registry`` (``negotiate``: from the request's headers)."""
    return Route("GET", path, lambda request: metrics_response(registry, request if negotiate else None))


class RoutedHandler(GuardedHandler):
    """Answers every request from its server's :class:`Routes` (the limits are :class:`GuardedHandler`'s)."""

    server: RoutedServer

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._serve()

    def _serve(self) -> None:
        """Route the request and write its answer (no body to ``HEAD``); a method the table has no route for is
        501, word for word as ``http.server`` answers a method it has no ``do_`` for."""
        routes = self.server.routes
        if not routes.serves(self.command):
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        request = Request.of(self.command, self.path, self.headers, self.client_address[0], self.rfile.read)
        response = routes.answer(request)
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class RoutedServer(GuardedHTTPServer):
    """Serves a :class:`Routes` table with the limits of :class:`GuardedHTTPServer`; :meth:`start` serves it from a
    background thread, :meth:`stop` ends it, :attr:`port` is the bound port.

    Args:
        address: ``(host, port)`` to bind (port 0: any free port).
        routes: what it answers.
        server_version: the ``Server`` header's first word (None: ``http.server``'s ``BaseHTTP/0.6``).
        protocol_version: ``HTTP/1.0`` (one request a connection) or ``HTTP/1.1`` (keep-alive).
        registry, max_connections, request_deadline_s, idle_timeout_s, thread_name, poll_interval_s: as
            :class:`GuardedHTTPServer`.

    Raises:
        OSError: the address cannot be bound.
        ValueError: a limit is not positive.
    """

    def __init__(
        self,
        address: tuple[str, int],
        routes: Routes,
        *,
        server_version: str | None = None,
        protocol_version: str = "HTTP/1.0",
        registry: CollectorRegistry | None = None,
        max_connections: int = MAX_CONNECTIONS,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        thread_name: str = "http",
        poll_interval_s: float = 0.5,
    ) -> None:
        self.routes = routes
        attributes: dict[str, str] = {"protocol_version": protocol_version}
        if server_version is not None:
            attributes["server_version"] = server_version
        super().__init__(
            address,
            type("RoutedHandler", (RoutedHandler,), attributes),
            registry=registry,
            max_connections=max_connections,
            request_deadline_s=request_deadline_s,
            idle_timeout_s=idle_timeout_s,
            thread_name=thread_name,
            poll_interval_s=poll_interval_s,
        )


__all__ = [
    "Handler",
    "Header",
    "Request",
    "Response",
    "Route",
    "RoutedHandler",
    "RoutedServer",
    "Routes",
    "content_response",
    "health_route",
    "json_response",
    "json_route",
    "metrics_response",
    "metrics_route",
]
