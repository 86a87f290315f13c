"""The scorer's ``/metrics`` server on 127.0.0.1: GET, HEAD (headers only) and the idle-connection timeout."""

from __future__ import annotations

import socket

from http_testkit import raw
from prometheus_client import CollectorRegistry, Counter

from finsentry.common.net import IDLE_TIMEOUT_S
from finsentry.ingest.metrics_http import MetricsServer


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("finsentry_test_items", "items seen in this test", registry=registry).inc(7)
    return registry


def test_get_and_head_of_metrics():
    server = MetricsServer(_registry()).start()
    try:
        assert server.idle_timeout_s == IDLE_TIMEOUT_S == 30.0
        status, headers, body = raw(server.port, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert status == "HTTP/1.0 200 OK"
        assert "finsentry_test_items_total 7.0" in body.decode()
        head_status, head_headers, head_body = raw(server.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert head_status == "HTTP/1.0 200 OK" and head_body == b""
        assert head_headers["content-type"] == headers["content-type"]
        assert set(head_headers) == set(headers)  # the GET's headers (prometheus_client sends no Content-Length)
    finally:
        server.stop()


def test_an_idle_or_half_sent_connection_is_closed_and_the_server_keeps_serving():
    server = MetricsServer(_registry(), idle_timeout_s=0.3).start()
    try:
        for sent in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(sent)
                assert sock.recv(1024) == b""  # the server closed it (a client-side timeout would raise)
        status, _, body = raw(server.port, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert status == "HTTP/1.0 200 OK" and b"finsentry_test_items_total 7.0" in body
    finally:
        server.stop()
