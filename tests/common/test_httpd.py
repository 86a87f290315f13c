"""Issue 15, finding 8: the limits every finsentry HTTP server shares (common/httpd.py), run against each of
the three servers built on it: the relay, the monitor HTTP service and the scorer's /metrics."""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from http_testkit import raw
from prometheus_client import CollectorRegistry

from finsentry.alerts.metrics import REGISTRY as RELAY_REGISTRY
from finsentry.alerts.relay import RelayService
from finsentry.alerts.settings import AlertsSettings
from finsentry.alerts.sinks import StdoutSink
from finsentry.common.httpd import GuardedHTTPServer, parse_content_length
from finsentry.ingest.metrics_http import MetricsServer
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.http_api import MonitorHTTPServer
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.settings import MonitorSettings

DEADLINE_S = 1.0
"""Request deadline (and idle timeout) of the servers under test, seconds."""


@dataclass
class Served:
    """A started server: its port, the registry its drops are counted on, its GuardedHTTPServer, a stop()."""

    port: int
    registry: CollectorRegistry
    http: GuardedHTTPServer
    stop: Callable[[], None]

    def dropped(self, reason: str) -> float:
        value = self.registry.get_sample_value("finsentry_http_connections_dropped_total", {"reason": reason})
        return value or 0.0


def _relay(max_connections: int) -> Served:
    settings = AlertsSettings(
        relay_token="t0ken", relay_port=0, request_timeout_s=DEADLINE_S, max_connections=max_connections
    )
    relay = RelayService(settings, sinks=[StdoutSink(stream=io.StringIO())]).start()
    assert relay._server is not None
    return Served(relay.port, RELAY_REGISTRY, relay._server, relay.stop)


def _monitor(max_connections: int) -> Served:
    registry = CollectorRegistry()
    state = MonitorState(Aggregator(MonitorSettings(http_port=0)))
    srv = MonitorHTTPServer(
        "127.0.0.1",
        0,
        state,
        registry,
        idle_timeout_s=DEADLINE_S,
        request_deadline_s=DEADLINE_S,
        max_connections=max_connections,
    ).start()
    return Served(srv.port, registry, srv, srv.stop)


def _scorer_metrics(max_connections: int) -> Served:
    registry = CollectorRegistry()
    srv = MetricsServer(
        registry, idle_timeout_s=DEADLINE_S, request_deadline_s=DEADLINE_S, max_connections=max_connections
    ).start()
    assert srv._server is not None
    return Served(srv.port, registry, srv._server, srv.stop)


SERVERS = {"relay": _relay, "monitor": _monitor, "scorer-metrics": _scorer_metrics}


@pytest.fixture(params=sorted(SERVERS))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    s = SERVERS[request.param](2)
    yield s
    s.stop()


def test_a_client_dripping_a_byte_at_a_time_is_cut_at_the_total_deadline(served: Served) -> None:
    """Before: each byte reset the socket timeout, so a byte every 2-3 s held a thread for 40-45 s."""
    before = served.dropped("timeout")
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    sent = 0
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        closed = False
        for byte in request:  # 200+ bytes at 0.05 s: 10 s if never cut, 10x the deadline
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset by the server
                closed = True
                break
            sent += 1
            time.sleep(0.05)
            sock.setblocking(False)
            try:
                closed = sock.recv(1024) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed = True
            sock.setblocking(True)
            if closed:
                break
    assert closed, "the server kept a dripping client past 10 times its deadline"
    assert sent < len(request)
    assert served.dropped("timeout") == before + 1


def _answer_unasked(port: int) -> bytes:
    """What the server sends on a fresh connection before the client sends anything, until it closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_connections_beyond_the_limit_get_503_at_once_and_are_counted(served: Served) -> None:
    """Before: no limit, one thread per connection for as long as each client cared to stay."""
    before = served.dropped("busy")
    holders = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(2)]
    try:
        for h in holders:
            h.sendall(b"GET /metrics HTTP/1.1\r\n")  # a request begun, never finished: holds its thread
        answer = _answer_unasked(served.port)
    finally:
        for h in holders:
            h.close()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert answer.endswith(b"\r\n\r\nserver busy, retry.\r\n")
    assert served.dropped("busy") == before + 1
    deadline = time.monotonic() + 10
    status = ""
    while time.monotonic() < deadline and not status.endswith("200 OK"):  # the holders' slots come back
        status, _, _ = raw(served.port, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status.endswith("200 OK")


def test_a_client_gone_before_its_answer_is_one_debug_line_and_counted(
    served: Served, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a client that reset before reading /metrics logged a 23-line traceback on stderr."""
    caplog.set_level(logging.DEBUG)
    before = served.dropped("client_reset")
    ours, theirs = socket.socketpair()  # the peer's close makes the server's write fail at once (EPIPE)
    theirs.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    theirs.close()
    assert served.http._slots.acquire(blocking=False)
    served.http.process_request_thread(ours, ("client", 0))  # the thread body of one connection, run here
    assert capsys.readouterr().err == ""
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert served.dropped("client_reset") == before + 1
    status, _, _ = raw(served.port, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status.endswith("200 OK")


@pytest.mark.parametrize("value", ["١٢", "²", "+5", "-1", "5, 5", "0x10", "1" * 19, ""])
def test_content_length_takes_ascii_digits_only(value: str) -> None:
    with pytest.raises(ValueError, match="is not a number of ASCII digits"):
        parse_content_length(value)


def test_content_length_of_plain_digits_is_read() -> None:
    assert parse_content_length("0") == 0
    assert parse_content_length(" 1048576\t") == 1_048_576
    assert parse_content_length("9" * 18) == 10**18 - 1
