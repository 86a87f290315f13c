"""Issue 15, finding 8, the relay's part: strict Content-Length, output that labels cannot forge lines in, and no
Unicode direction controls in notifications. (Deadline, thread bound and client resets: tests/common/test_httpd.py.)"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest
from alerts_testkit import TOKEN, MonitorStub, Receiver, post, rejected, settings, wait_for, webhook_payload

from finsentry.alerts.notification import build_notification
from finsentry.alerts.payload import parse_payload
from finsentry.alerts.relay import WEBHOOK_PATH, RelayService
from finsentry.alerts.sinks import StdoutSink, WebhookSink

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE


@pytest.fixture
def relay(monitor: MonitorStub, receiver: Receiver) -> Iterator[RelayService]:
    with RelayService(settings(monitor), sinks=[WebhookSink("hard-hook", receiver.url, 1.0)]) as service:
        yield service


def _send(relay: RelayService, head: bytes, body: bytes = b"") -> str:
    """Send a raw webhook request (``head``: the header lines after the request line); the answer's status line."""
    start = f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as s:
        s.sendall(start + head + b"\r\n" + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer.decode("utf-8", "replace").split("\r\n", 1)[0]


@pytest.mark.parametrize(
    "length",
    [b"\xb2", b"\xb9\xb2", "\u0661\u0662".encode(), b"+12", b"12 12", b"0x0c"],
    ids=["superscript-two", "superscript-12", "arabic-indic-12", "plus-sign", "two-numbers", "hex"],
)
def test_a_content_length_that_is_not_ascii_digits_is_400_and_nothing_forwarded(
    relay: RelayService, receiver: Receiver, length: bytes
) -> None:
    """Before: http.server reads header bytes as Latin-1, so 0xB2 became '²', which passed isdigit() and crashed
    int() (no answer, a traceback); other non-digits were answered 411 as if the header were missing."""
    before = rejected("bad_length")
    status = _send(relay, b"Content-Type: application/json\r\nContent-Length: " + length + b"\r\n", b"x" * 12)
    assert status == "HTTP/1.1 400 Bad Request"
    assert rejected("bad_length") == before + 1
    assert receiver.requests == 0


def test_two_content_length_headers_are_400(relay: RelayService, receiver: Receiver) -> None:
    before = rejected("bad_length")
    body = json.dumps(webhook_payload()).encode()
    status = _send(relay, f"Content-Length: {len(body)}\r\nContent-Length: 5\r\n".encode(), body)
    assert status == "HTTP/1.1 400 Bad Request"
    assert rejected("bad_length") == before + 1
    assert receiver.requests == 0


def _hostile_payload() -> dict:
    payload = webhook_payload()
    forged = "NegativeSentimentSpike\n[FIRING:1] MarketNegativeSpike all\n" + "-" * 72
    alert = payload["alerts"][0]
    alert["labels"]["alertname"] = forged
    payload["groupLabels"]["alertname"] = forged
    alert["annotations"]["summary"] = f"Spike on {RLO}SGNINRAE\r\nFIRING: forged line"
    alert["annotations"]["description"] = "line one\u2028line two\x1b[2J"
    return payload


def test_stdout_sink_output_cannot_be_forged_by_a_label(monitor: MonitorStub) -> None:
    """Before: a newline in alertname started a line of its own: a forged notification on the relay's stdout."""
    out = io.StringIO()
    with RelayService(settings(monitor), sinks=[StdoutSink("stdout", stream=out)]) as relay:
        status, _ = post(relay.url, json.dumps(_hostile_payload()).encode())
        assert status == 200
        assert wait_for(lambda: "-" * 72 + "\n" in out.getvalue())
    text = out.getvalue()
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("[FIRING")] == [lines[0]]  # one title: the real one
    assert lines[0].startswith("[FIRING:1] NegativeSentimentSpike\\n[FIRING:1] MarketNegativeSpike all\\n---")
    assert [line for line in lines if line.startswith("FIRING: ")] == [
        "FIRING: Spike on \\u202eSGNINRAE\\r\\nFIRING: forged line (warning, since 2024-05-01 12:01:30 UTC)"
    ]
    assert "  line one\\u2028line two\\x1b[2J" in lines
    assert lines.count("-" * 72) == 1  # the real separator only
    assert RLO not in text and "\x1b" not in text and "\u2028" not in text


def test_direction_controls_never_reach_a_notification() -> None:
    n = build_notification(parse_payload(json.dumps(_hostile_payload()).encode()), {})
    doc = json.dumps(n.to_json(), ensure_ascii=False) + json.dumps(n.slack_message(), ensure_ascii=False)
    assert RLO not in doc and RLO not in n.title
    assert n.to_json()["alerts"][0]["annotations"]["summary"] == "Spike on SGNINRAE\r\nFIRING: forged line"
    assert "\n" not in n.title
