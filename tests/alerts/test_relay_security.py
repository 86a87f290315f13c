"""The relay refuses what it should (401, 411, 413, 400) without forwarding anything, and one hanging sink
does not block the others."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alerts_testkit import TOKEN, MonitorStub, Receiver, counter, post, rejected, settings, wait_for, webhook_payload

from finsentry.alerts.relay import WEBHOOK_PATH, RelayService
from finsentry.alerts.sinks import WebhookSink


@pytest.fixture
def relay(monitor: MonitorStub, receiver: Receiver) -> Iterator[RelayService]:
    with RelayService(settings(monitor), sinks=[WebhookSink("sec-hook", receiver.url, 1.0)]) as service:
        yield service


def assert_only_valid_one_forwarded(relay: RelayService, receiver: Receiver) -> None:
    """Send a valid request after the refused ones: the sink's first (and only) body is the valid one."""
    status, _ = post(relay.url, json.dumps(webhook_payload(key="topic:valid")).encode())
    assert status == 200
    first = receiver.get()
    assert first["group_labels"]["key"] == "topic:valid"
    assert receiver.bodies.empty()
    assert receiver.requests == 1


@pytest.mark.parametrize(
    "token",
    [None, "wrong-token", TOKEN + "x", TOKEN[:-1], "", "Basic " + TOKEN],
    ids=["missing", "wrong", "longer", "shorter", "empty", "basic-scheme"],
)
def test_missing_or_wrong_token_is_401_and_nothing_forwarded(
    relay: RelayService, receiver: Receiver, token: str | None
) -> None:
    before = rejected("unauthorized")
    body = json.dumps(webhook_payload()).encode()
    if token is not None and token.startswith("Basic "):
        req = urllib.request.Request(relay.url + WEBHOOK_PATH, data=body, headers={"Authorization": token})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        status, headers = err.value.code, err.value.headers
    else:
        status, _ = post(relay.url, body, token=token)
        headers = None
    assert status == 401
    if headers is not None:
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert rejected("unauthorized") == before + 1
    assert_only_valid_one_forwarded(relay, receiver)


def test_oversized_body_is_413_and_not_read(relay: RelayService, receiver: Receiver) -> None:
    before = rejected("too_large")
    payload = webhook_payload()
    payload["alerts"][0]["annotations"]["description"] = "x" * 5000  # over max_body_bytes = 4096
    status, answer = post(relay.url, json.dumps(payload).encode())
    assert status == 413
    assert "4096" in answer["error"] and "alerts.max_body_bytes" in answer["error"]
    assert rejected("too_large") == before + 1
    assert_only_valid_one_forwarded(relay, receiver)


def test_oversized_claim_is_refused_before_the_body_arrives(relay: RelayService, receiver: Receiver) -> None:
    """A client announcing 1 GB gets 413 at once; the relay does not wait for (or buffer) the body."""
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as s:
        s.sendall(
            (
                f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
            ).encode()
        )
        answer = s.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert_only_valid_one_forwarded(relay, receiver)


def test_missing_content_length_is_411(relay: RelayService, receiver: Receiver) -> None:
    before = rejected("length_required")
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as s:
        s.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode()
        )
        answer = s.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 411")
    assert rejected("length_required") == before + 1
    assert_only_valid_one_forwarded(relay, receiver)


@pytest.mark.parametrize(
    ("body", "reason", "message"),
    [
        (b"{not json", "invalid_json", "not UTF-8 JSON"),
        (b"\xff\xfe\x00", "invalid_json", "not UTF-8 JSON"),
        (b"[1, 2]", "invalid_payload", "JSON object"),
        (json.dumps({"version": "3", "alerts": []}).encode(), "invalid_payload", "version"),
        (json.dumps(webhook_payload() | {"alerts": []}).encode(), "invalid_payload", "alerts"),
        (json.dumps(webhook_payload() | {"status": "exploded"}).encode(), "invalid_payload", "status"),
    ],
    ids=["broken-json", "not-utf8", "array", "old-version", "no-alerts", "bad-status"],
)
def test_malformed_payload_is_400_logged_and_not_forwarded(
    relay: RelayService,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    reason: str,
    message: str,
) -> None:
    before = rejected(reason)
    status, answer = post(relay.url, body)
    assert status == 400
    assert message in answer["error"]
    assert rejected(reason) == before + 1
    assert any(message in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert_only_valid_one_forwarded(relay, receiver)


def test_token_never_logged(monitor: MonitorStub, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    s = settings(monitor)
    assert TOKEN not in repr(s) and TOKEN not in str(s.model_dump())
    with RelayService(s, sinks=[WebhookSink("log-hook", receiver.url, 1.0)]) as relay:
        post(relay.url, b"{}", token="not-" + TOKEN)
        post(relay.url, json.dumps(webhook_payload()).encode())
        receiver.get()
    assert caplog.records
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


class BlockedSink:
    """A sink whose send() blocks until released: ignores every timeout (the worst sink there is)."""

    name = "blocked"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def send(self, notification: Any) -> None:
        self.entered.set()
        self.release.wait(30)

    def close(self) -> None:
        self.release.set()


def test_a_hanging_sink_does_not_block_the_others(monitor: MonitorStub, receiver: Receiver) -> None:
    """Two bad sinks (one blocks forever, one is an HTTP server that never answers) and one good one: the
    relay answers Alertmanager, the good sink gets every notification, the hung HTTP sink times out, is
    retried with backoff and counted, and the blocked sink's full queue drops (and counts) the rest."""

    def hang(n: int) -> int:
        hanging.release.wait(20)
        return 200

    blocked = BlockedSink()
    with Receiver(hang) as hanging:
        sinks = [blocked, WebhookSink("hung-hook", hanging.url, 0.5), WebhookSink("good-hook", receiver.url, 1.0)]
        failures_before = counter("finsentry_relay_sink_failures_total", "hung-hook")
        dropped_before = counter("finsentry_relay_sink_failures_total", "blocked")
        with RelayService(settings(monitor, sink_queue_size=1), sinks=sinks) as relay:
            for i in range(3):  # one at a time: the good sink's queue never holds more than one
                status, answer = post(relay.url, json.dumps(webhook_payload(key=f"topic:t{i}")).encode())
                assert status == 200
                assert receiver.get()["group_labels"]["key"] == f"topic:t{i}"
                if i == 0:
                    assert answer["sinks"] == ["blocked", "hung-hook", "good-hook"]
                    assert blocked.entered.wait(10)
            # blocked holds t0 and has room for one queued (t1): t2 was dropped and counted
            assert counter("finsentry_relay_sink_failures_total", "blocked") == dropped_before + 1
            # the hung webhook: 2 attempts per notification time out (sink_timeout_s = 0.5) and are counted
            assert wait_for(lambda: counter("finsentry_relay_sink_failures_total", "hung-hook") >= failures_before + 2)
            assert counter("finsentry_relay_notifications_total", "hung-hook") == 0
            blocked.release.set()
            assert wait_for(lambda: counter("finsentry_relay_notifications_total", "good-hook") >= 3)


def test_pathological_json_is_an_invalid_payload_not_a_crash():
    from finsentry.alerts.payload import InvalidPayload, parse_payload

    for body in (b"[" * 200_000, b'{"version": "4", "n": ' + b"9" * 5000 + b"}"):
        with pytest.raises(InvalidPayload):
            parse_payload(body)
