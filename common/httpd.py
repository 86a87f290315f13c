"""The HTTP server base every finsentry server is built on: the scorer's ``/metrics``, the monitor HTTP service and
the alert relay (stdlib ``http.server``, the project's HTTP choice). Written once here so the three share the
same limits:

- **Bounded handler threads.** At most ``max_connections`` connections are served at once, one thread each; a
  connection beyond that is answered ``503`` with ``Connection: close`` at once by the accepting thread (no
  handler thread is started) and counted as ``busy``.
- **A total deadline per request.** A request (request line, headers and body) must arrive within
  ``request_deadline_s`` seconds of the server starting to wait for it, however the client paces its bytes (a
  byte every 2 s no longer holds a thread); its answer must be taken within another ``request_deadline_s``.
  Each read also waits at most ``idle_timeout_s`` for the next byte. A connection cut by either limit after a
  byte of its request arrived is counted as ``timeout``; a keep-alive connection that merely stays idle is closed
  without being counted.
- **Quiet client resets.** A client that resets or closes the connection before its answer is written is
  logged at DEBUG (one line) and counted as ``client_reset``, instead of a 23-line traceback on stderr. Any
  other error in a handler is logged once through :mod:`logging` with its traceback.
- **Strict ``Content-Length``** (:func:`parse_content_length`): ASCII digits only; ``int()`` alone would take
  ``'١٢'`` and crash on ``'²'``.

Counts go to ``finsentry_http_connections_dropped_total{reason}`` (:data:`HTTP_METRICS`) on the registry the
server exports, registered when the server is built (:func:`dropped_counter`). A server serves from a background
thread between :meth:`GuardedHTTPServer.start` and :meth:`GuardedHTTPServer.stop`. Routes, responses and the
shared JSON, ``/metrics`` and health answers are in :mod:`finsentry.common.http_routes`.
"""

from __future__ import annotations

import io
import logging
import socket
import sys
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from prometheus_client import CollectorRegistry, Counter

from finsentry.common.metric_spec import MetricSpec
from finsentry.common.net import IDLE_TIMEOUT_S, serve_in_thread, stop_serving

log = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 30.0
"""Default total seconds a client may take to send one request (and, again, to take its answer)."""

MAX_CONNECTIONS = 32
"""Default number of connections a server serves at once (one handler thread each)."""

MAX_CONTENT_LENGTH_DIGITS = 18
"""Longest ``Content-Length`` value accepted, digits (under 2**63; every body limit is far smaller)."""

DROP_REASONS: tuple[str, ...] = ("busy", "timeout", "client_reset")
"""Values of the ``reason`` label of :data:`HTTP_DROPPED`."""

HTTP_DROPPED = MetricSpec(
    "finsentry_http_connections_dropped_total",
    "counter",
    ("reason",),
    "HTTP connections this server closed without a complete answer, by reason: busy (every handler thread taken;"
    " answered 503 at once), timeout (a request not received, or its answer not taken, within the request deadline"
    " or the idle timeout), client_reset (the client reset or closed the connection first)",
    "connections",
)
HTTP_METRICS: tuple[MetricSpec, ...] = (HTTP_DROPPED,)
"""The metrics every finsentry HTTP server exports on its registry, for ``docs/metrics.md``."""

_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_COUNTERS_LOCK = threading.Lock()

_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nserver busy, retry.\r\n"
)


def dropped_counter(registry: CollectorRegistry) -> Counter:
    """The :data:`HTTP_DROPPED` counter on ``registry``, registered on first use (one per registry, shared by every
    server that exports it), its ``reason`` series created at 0."""
    with _COUNTERS_LOCK:
        counter = _COUNTERS.get(registry)
        if counter is None:
            counter = _COUNTERS[registry] = HTTP_DROPPED.counter(registry)
            for reason in DROP_REASONS:
                counter.labels(reason=reason)
        return counter


def parse_content_length(value: str) -> int:
    """The body length in a ``Content-Length`` value: ASCII digits only, at most
    :data:`MAX_CONTENT_LENGTH_DIGITS` of them (surrounding blanks allowed, as RFC 9110 allows them around a field).

    >>> parse_content_length(" 42 ")
    42
    >>> parse_content_length("١٢")  # Arabic-Indic digits: int() would read 12
    Traceback (most recent call last):
    ...
    ValueError: Content-Length '١٢' is not a number of ASCII digits

    Raises:
        ValueError: anything else (a sign, a non-ASCII digit, ``²``, a list ``5, 5``, more than 18 digits).
    """
    text = value.strip(" \t")
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_CONTENT_LENGTH_DIGITS):
        raise ValueError(f"Content-Length {value[:40]!r} is not a number of ASCII digits")
    return int(text)


class _Clock:
    """The deadlines of the request being served: reading it, then writing its answer (monotonic seconds)."""

    def __init__(self, deadline_s: float, idle_timeout_s: float) -> None:
        self.deadline_s = deadline_s
        self.idle_timeout_s = idle_timeout_s
        self.read_until = 0.0
        self.write_until: float | None = None
        self.received = 0  # bytes of the current request read so far

    @property
    def started(self) -> bool:
        """True once a byte of the current request arrived or its answer began (an idle connection is not)."""
        return self.received > 0 or self.write_until is not None

    def restart(self) -> None:
        """A new request: its read deadline starts now, its write deadline at its first written byte."""
        self.read_until = time.monotonic() + self.deadline_s
        self.write_until = None
        self.received = 0

    def timeout_for(self, until: float) -> float:
        """Seconds the next socket call may wait: the idle timeout, or less when ``until`` is nearer.

        Raises:
            TimeoutError: ``until`` has passed (the request or answer took longer than the deadline).
        """
        left = until - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"request deadline of {self.deadline_s:g} s passed")
        return min(self.idle_timeout_s, left)


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each ``recv`` bounded by the idle timeout and the request's read deadline."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self._sock = sock
        self._clock = clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._clock.timeout_for(self._clock.read_until))
        n = self._sock.recv_into(buffer)
        self._clock.received += n
        return n


class _DeadlineWriter(io.BufferedIOBase):
    """Writes straight to the socket (as ``http.server``'s unbuffered writer), each ``sendall`` bounded by the
    idle timeout and the answer's write deadline (``sendall``'s timeout bounds the whole call)."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self._sock = sock
        self._clock = clock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        clock = self._clock
        if clock.write_until is None:
            clock.write_until = time.monotonic() + clock.deadline_s
        self._sock.settimeout(clock.timeout_for(clock.write_until))
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


class GuardedHandler(BaseHTTPRequestHandler):
    """A request handler with the limits of the module doc; subclass it (or mix it in before another handler
    class) and write ``do_GET`` etc. as usual. Needs a :class:`GuardedHTTPServer`."""

    server: GuardedHTTPServer

    def setup(self) -> None:
        """Wrap the connection in readers and writers that keep the server's deadlines."""
        self.timeout = self.server.idle_timeout_s
        super().setup()
        self._clock = _Clock(self.server.request_deadline_s, self.server.idle_timeout_s)
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self._clock))
        self.wfile = _DeadlineWriter(self.connection, self._clock)

    def handle_one_request(self) -> None:
        """Serve one request within its deadlines; a timeout or client reset closes the connection, counted."""
        clock = self._clock
        clock.restart()
        self._timed_out = False
        try:
            super().handle_one_request()  # catches TimeoutError itself: log_error(), then closes the connection
        except ConnectionError as exc:  # reset or closed by the client: nothing to answer, nobody to answer to
            self.close_connection = True
            if clock.started:
                self.server.count_dropped("client_reset")
            log.debug("%s: client went away (%s)", self.client_address[0], type(exc).__name__)
            return
        if self._timed_out and clock.started:
            self.server.count_dropped("timeout")

    _timed_out = False

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """``http.server`` reports "Request timed out" here: remember it for the count, log it at DEBUG."""
        if args and isinstance(args[0], TimeoutError):
            self._timed_out = True
        log.debug("%s %s", self.client_address[0], format % args)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Access lines go to :mod:`logging` at DEBUG (not to stderr)."""
        log.debug("%s %s", self.client_address[0], format % args)


class GuardedHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` with bounded handler threads, per-request deadlines and counted drops.

    Args:
        address: ``(host, port)`` to bind (port 0: any free port).
        handler: a :class:`GuardedHandler` subclass.
        registry: where :data:`HTTP_DROPPED` is counted (None: counted nowhere, e.g. a test server).
        max_connections: connections served at once; more are answered 503 at once (``busy``).
        request_deadline_s: seconds a request may take to arrive, and its answer to be taken.
        idle_timeout_s: seconds one read or write may wait for the client.
        thread_name: name of the thread :meth:`start` serves from.
        poll_interval_s: seconds between that thread's checks for :meth:`stop`.
        bind_and_activate: as ``socketserver.TCPServer``.

    Raises:
        OSError: the address cannot be bound.
        ValueError: a limit is not positive.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[GuardedHandler],
        *,
        registry: CollectorRegistry | None = None,
        max_connections: int = MAX_CONNECTIONS,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        thread_name: str = "http",
        poll_interval_s: float = 0.5,
        bind_and_activate: bool = True,
    ) -> None:
        if max_connections < 1 or request_deadline_s <= 0 or idle_timeout_s <= 0:
            raise ValueError(
                f"max_connections ({max_connections}), request_deadline_s ({request_deadline_s}) and idle_timeout_s"
                f" ({idle_timeout_s}) must be positive"
            )
        self.max_connections = max_connections
        self.request_deadline_s = request_deadline_s
        self.idle_timeout_s = idle_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._dropped = dropped_counter(registry) if registry is not None else None
        self.thread_name = thread_name
        self.poll_interval_s = poll_interval_s
        self._thread: threading.Thread | None = None
        super().__init__(address, handler, bind_and_activate)

    @property
    def port(self) -> int:
        """The bound TCP port (the one chosen when bound to port 0)."""
        return int(self.server_address[1])

    @property
    def serving(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    def start(self) -> Self:
        """Serve from a daemon thread named :attr:`thread_name` (once; a second call does nothing); returns self."""
        if self._thread is None:
            self._thread = serve_in_thread(self, self.thread_name, self.poll_interval_s)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread (at most 5 s); idempotent."""
        stop_serving(self, self._thread)
        self._thread = None

    def count_dropped(self, reason: str) -> None:
        """Count one connection closed without a complete answer (``reason`` one of :data:`DROP_REASONS`)."""
        if self._dropped is not None:
            self._dropped.labels(reason=reason).inc()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve on a new thread if one of ``max_connections`` is free; else answer 503 at once and close."""
        if not self._slots.acquire(blocking=False):
            self.count_dropped("busy")
            log.debug("%s: refused, all %d connections busy", client_address[0], self.max_connections)
            try:
                request.setblocking(False)
                request.send(_BUSY_ANSWER)  # fits any socket buffer; never waits for the client
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: give the slot back
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve the connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log an error a handler did not catch once through :mod:`logging` (not ``socketserver``'s stderr print);
        a client that went away or timed out is one DEBUG line."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("%s: connection ended: %s", client_address[0], exc)
            return
        log.error("error serving %s", client_address[0], exc_info=exc)


__all__ = [
    "DROP_REASONS",
    "HTTP_DROPPED",
    "HTTP_METRICS",
    "MAX_CONNECTIONS",
    "REQUEST_DEADLINE_S",
    "GuardedHTTPServer",
    "GuardedHandler",
    "dropped_counter",
    "parse_content_length",
]
