"""The shared HTTP layer (common/http_routes.py): a route table served by a real RoutedServer on 127.0.0.1:0, the
JSON, /metrics and health answers, HEAD, 501, errors, run-time JSON routes and start/stop."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest
from http_testkit import raw
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter

from finsentry.common.http_routes import (
    Request,
    Response,
    Route,
    RoutedServer,
    Routes,
    health_route,
    json_response,
    metrics_route,
)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("finsentry_test_items", "items seen in this test", registry=registry).inc(7)
    Counter("finsentry_test_other", "another series", registry=registry).inc(2)
    return registry


def _echo(request: Request) -> Response:
    n = int(request.headers["Content-Length"])
    return json_response(201, {"read": request.read(n).decode(), "q": request.param("q")}, [("X-Seen", request.client)])


def _boom(request: Request) -> Response:
    raise ValueError(f"bad {request.match}")


def _routes() -> Routes:
    return Routes(
        [
            health_route("/healthz", lambda: {"sinks": {"stdout": 0}}),
            metrics_route(_registry()),
            Route("GET", "/items/*/parts", lambda r: json_response(200, {"item": r.match})),
            Route("GET", "/boom/*", _boom),
            Route("POST", "/echo", _echo),
        ],
        not_found=lambda r: json_response(404, {"error": f"no route {r.method} {r.path}"}),
        on_error=lambda r, exc: json_response(400, {"error": str(exc)}),
        head=True,
        strip_trailing_slash=True,
    )


@pytest.fixture()
def server() -> Iterator[RoutedServer]:
    srv = RoutedServer(("127.0.0.1", 0), _routes(), server_version="finsentry-test").start()
    yield srv
    srv.stop()


def _get(port: int, target: str, method: str = "GET", extra: str = "") -> tuple[str, dict[str, str], bytes]:
    return raw(port, f"{method} {target} HTTP/1.0\r\nHost: x\r\n{extra}\r\n".encode())


def test_health_is_status_first_as_json_with_its_length(server: RoutedServer) -> None:
    status, headers, body = _get(server.port, "/healthz")
    assert status == "HTTP/1.0 200 OK"
    assert body == b'{"status": "ok", "sinks": {"stdout": 0}}'
    assert headers["content-type"] == "application/json" and headers["content-length"] == "40"
    assert headers["server"].startswith("finsentry-test Python/")


def test_head_is_the_gets_status_and_headers_without_the_body(server: RoutedServer) -> None:
    for target in ("/healthz", "/metrics", "/items/1/parts/", "/boom/1"):
        get_status, get_headers, get_body = _get(server.port, target)
        status, headers, body = _get(server.port, target, "HEAD")
        assert (status, body) == (get_status, b"") and len(get_body) > 0
        assert {k: v for k, v in headers.items() if k != "date"} == {
            k: v for k, v in get_headers.items() if k != "date"
        }
    assert status == "HTTP/1.0 400 Bad Request"


def test_a_star_matches_any_text_and_trailing_slashes_are_ignored(server: RoutedServer) -> None:
    assert json.loads(_get(server.port, "/items/a%2Fb/parts/")[2]) == {"item": "a%2Fb"}
    assert json.loads(_get(server.port, "/items/x/y/parts?z=1")[2]) == {"item": "x/y"}
    assert json.loads(_get(server.port, "/healthz/")[2])["status"] == "ok"
    status, _, body = _get(server.port, "/items/x")
    assert status == "HTTP/1.0 404 Not Found" and json.loads(body) == {"error": "no route GET /items/x"}


def test_post_reads_its_body_and_sends_extra_headers(server: RoutedServer) -> None:
    status, headers, body = raw(server.port, b"POST /echo?q=1&q=two HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
    assert status == "HTTP/1.0 201 Created"
    assert json.loads(body) == {"read": "hello", "q": "two"}
    assert headers["x-seen"] == "127.0.0.1"
    status, _, body = raw(server.port, b"POST /nope HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    assert status == "HTTP/1.0 404 Not Found" and json.loads(body) == {"error": "no route POST /nope"}


def test_a_handler_error_goes_to_on_error(server: RoutedServer) -> None:
    status, _, body = _get(server.port, "/boom/17")
    assert status == "HTTP/1.0 400 Bad Request" and json.loads(body) == {"error": "bad 17"}


def test_methods_without_a_route_are_501_as_http_server_answers_them(server: RoutedServer) -> None:
    plain = RoutedServer(("127.0.0.1", 0), Routes([metrics_route(_registry())], not_found=_boom)).start()
    try:
        for port, method in ((plain.port, "POST"), (plain.port, "HEAD"), (server.port, "PUT")):
            status, headers, body = _get(port, "/metrics", method, "Content-Length: 0\r\n")
            assert status == f"HTTP/1.0 501 Unsupported method ('{method}')"
            assert headers["connection"] == "close" and headers["content-type"] == "text/html;charset=utf-8"
            message = f"<p>Message: Unsupported method ('{method}').</p>".encode()
            assert message in body if method != "HEAD" else body == b""
        assert _get(plain.port, "/metrics")[2].startswith(b"# HELP finsentry_test_items_total")
        assert _get(plain.port, "/") == ("", {}, b"")  # no on_error: the server logs it, closes unanswered
    finally:
        plain.stop()


def test_plain_metrics_are_the_text_format_with_a_length(server: RoutedServer) -> None:
    status, headers, body = _get(server.port, "/metrics", extra="Accept: application/openmetrics-text\r\n")
    assert status == "HTTP/1.0 200 OK"
    assert headers["content-type"] == CONTENT_TYPE_LATEST == "text/plain; version=1.0.0; charset=utf-8"
    assert int(headers["content-length"]) == len(body)
    assert b"finsentry_test_items_total 7.0\n" in body and b"# EOF" not in body


def test_negotiated_metrics_answer_as_prometheus_clients_handler() -> None:
    srv = RoutedServer(
        ("127.0.0.1", 0), Routes([metrics_route(_registry(), "*", negotiate=True)], not_found=_boom)
    ).start()
    try:
        status, headers, plain = _get(srv.port, "/anything")
        assert status == "HTTP/1.0 200 OK" and "content-length" not in headers
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert headers["server"].startswith("BaseHTTP/0.6 ")
        _, headers, body = _get(srv.port, "/metrics", extra="Accept: application/openmetrics-text; version=1.0.0\r\n")
        assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert body.endswith(b"# EOF\n")
        _, headers, body = _get(srv.port, "/metrics", extra="Accept-Encoding: gzip\r\n")
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == plain
        _, _, body = _get(srv.port, "/metrics?name[]=finsentry_test_other_total")
        assert b"finsentry_test_other_total 2.0" in body and b"finsentry_test_items" not in body
    finally:
        srv.stop()


def test_json_routes_added_at_run_time_come_after_the_table(server: RoutedServer) -> None:
    assert _get(server.port, "/api/pipeline")[0] == "HTTP/1.0 404 Not Found"
    server.routes.json_routes["/api/pipeline"] = lambda: {"scored": 7}
    server.routes.json_routes["/healthz"] = lambda: {"shadowed": True}
    assert json.loads(_get(server.port, "/api/pipeline")[2]) == {"scored": 7}
    assert json.loads(_get(server.port, "/healthz")[2])["status"] == "ok"  # the table's own route wins


def test_start_stop_and_the_bound_port() -> None:
    srv = RoutedServer(("127.0.0.1", 0), _routes(), protocol_version="HTTP/1.1", thread_name="t-http")
    assert srv.port > 0 and not srv.serving
    assert srv.start() is srv and srv.serving and srv.start() is srv
    assert _get(srv.port, "/healthz", extra="Connection: close\r\n")[0] == "HTTP/1.1 200 OK"
    port = srv.port
    srv.stop()
    srv.stop()
    assert not srv.serving
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_answer_without_a_server_first_match_wins_and_errors_propagate_without_on_error() -> None:
    routes = Routes(
        [Route("GET", "/a", lambda r: json_response(200, 1)), Route("GET", "*", lambda r: json_response(200, 2))],
        not_found=_boom,
    )
    assert routes.answer(Request.of("GET", "/a")).body == b"1"
    assert routes.answer(Request.of("GET", "/b")).body == b"2"
    assert not routes.serves("HEAD") and not routes.serves("POST") and routes.serves("GET")
    with pytest.raises(ValueError, match="bad"):
        Routes([Route("GET", "/x/*", _boom)], not_found=_boom).answer(Request.of("GET", "/x/1"))

    def gone(request: Request) -> Response:
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):  # never an answer to a client that left, whatever on_error says
        Routes([Route("GET", "/", gone)], not_found=_boom, on_error=lambda r, e: json_response(500, {})).answer(
            Request.of("GET", "/")
        )


def test_json_response_refuses_nan_and_writes_other_types_as_text() -> None:
    assert json_response(200, {"at": PurePosixPath("/x"), "n": [1, 0.5]}).body == b'{"at": "/x", "n": [1, 0.5]}'
    with pytest.raises(ValueError):
        json_response(200, {"x": float("nan")})
