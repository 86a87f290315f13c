"""Test helpers of the alerts tests: local HTTP receivers (sinks), a monitor API stub, webhook payloads."""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from finsentry.alerts.metrics import REGISTRY
from finsentry.alerts.relay import WEBHOOK_PATH
from finsentry.alerts.settings import AlertsSettings


class Receiver:
    """An HTTP server on 127.0.0.1 that records POST bodies (JSON) and answers as ``behaviour`` says.

    ``behaviour(n)`` gets the 1-based request number and returns an HTTP status; it may block (a hanging sink).
    """

    def __init__(self, behaviour: Callable[[int], int] = lambda n: 200) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        """``(time.monotonic() when it arrived, body)`` of every recorded body."""
        self.headers: list[dict[str, str]] = []
        self.requests = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                status = behaviour(receiver.requests)
                if status == 200:
                    receiver.headers.append(dict(self.headers))
                    data = json.loads(body)
                    receiver.arrivals.append((time.monotonic(), data))
                    receiver.bodies.put(data)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def get(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The next recorded body; raises queue.Empty after ``timeout_s``."""
        return self.bodies.get(timeout=timeout_s)

    def arrived(self, body: dict[str, Any]) -> float:
        """When ``body`` (a dict :meth:`get` returned) arrived, ``time.monotonic()``."""
        return next(t for t, b in self.arrivals if b is body)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


SPIKE_EVENT: dict[str, Any] = {
    "event": "started",
    "key": "topic:earnings",
    "bucket_start": "2024-05-01T12:00:00+00:00",
    "bucket_end": "2024-05-01T12:01:00+00:00",
    "window_seconds": 300,
    "share": 0.72,
    "baseline_mean": 0.21,
    "baseline_std": 0.08,
    "z": 6.4,
    "volume": 25,
    "volume_baseline": 10.0,
    "volume_z": 3.1,
    "items": 25,
    "negative": 18,
    "trigger": "share",
    "share_z": 6.4,
    "spike_id": "topic:earnings@2024-05-01T12:01:00Z",
    "evidence": [
        {
            "id": "n2",
            "text": "Acme misses Q1 estimates, cuts guidance",
            "url": "https://news.example.com/acme-q1",
            "sentiment_score": -0.91,
            "published_at": "2024-05-01T12:00:10+00:00",
        },
        {
            "id": "n1",
            "text": "Globex shares slump after profit warning",
            "url": "https://news.example.com/globex",
            "sentiment_score": -0.97,
            "published_at": "2024-05-01T12:00:05+00:00",
        },
    ],
}


_FIGURES = ("window_seconds", "trigger", "z", "share_z", "share", "baseline_mean", "baseline_std", "items", "negative")
SPIKE_EVENT["start"] = SPIKE_EVENT["peak"] = {k: SPIKE_EVENT[k] for k in ("bucket_end", *_FIGURES)} | {
    "volume_baseline": SPIKE_EVENT["volume_baseline"],
    "volume_z": SPIKE_EVENT["volume_z"],
}
"""A ``started`` spike record (docs/contracts.md): its start and peak are its own figures."""


def stocked(alerts: AlertsSettings, sinks: list[Any], spikes: list[dict[str, Any]] | None = None) -> Any:
    """A (not yet started) relay whose spike cache holds ``spikes`` (default: :data:`SPIKE_EVENT`), as if its
    ``sentiment.spikes`` consumer had read them."""
    from finsentry.alerts.relay import RelayService
    from finsentry.monitor.spikes import SpikeEvent

    relay = RelayService(alerts, sinks=sinks)
    for spike in [SPIKE_EVENT] if spikes is None else spikes:
        relay.spikes.add(SpikeEvent.from_dict(spike))
    return relay


class MonitorStub:
    """Serves ``GET /api/spikes`` in the shape of docs/contracts.md and records every query: the relay must never
    ask it (it reads ``sentiment.spikes``); the end-to-end test uses the real aggregator."""

    def __init__(self, spikes: list[dict[str, Any]]) -> None:
        self.spikes = spikes
        self.queries: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                from urllib.parse import parse_qs, urlparse

                url = urlparse(self.path)
                stub.queries.append(self.path)
                key = parse_qs(url.query).get("key", [None])[0]
                body = json.dumps({"spikes": [s for s in stub.spikes if key is None or s["key"] == key]}).encode()
                self.send_response(200 if url.path == "/api/spikes" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MonitorStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook_payload(status: str = "firing", key: str = "topic:earnings", n_alerts: int = 1) -> dict[str, Any]:
    """An Alertmanager version-4 webhook body for a NegativeSentimentSpike group on ``key``."""
    alerts = []
    for i in range(n_alerts):
        alerts.append(
            {
                "status": status,
                "labels": {
                    "alertname": "NegativeSentimentSpike",
                    "key": key,
                    "topic": key.split(":", 1)[-1],
                    "severity": "warning",
                    "instance": f"agg-{i}:8600",
                },
                "annotations": {
                    "summary": f"Negative news spike in topic {key.split(':', 1)[-1]}",
                    "description": "The negative share is 6.4 standard deviations above its baseline, over 25 items.",
                    "runbook_url": "docs/runbooks/NegativeSentimentSpike.md",
                },
                "startsAt": "2024-05-01T12:01:30Z",
                "endsAt": "2024-05-01T12:09:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": f"f{i}",
            }
        )
    return {
        "version": "4",
        "groupKey": '{}:{alertname="NegativeSentimentSpike", key="' + key + '"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "finsentry-relay",
        "groupLabels": {"alertname": "NegativeSentimentSpike", "key": key},
        "commonLabels": {"alertname": "NegativeSentimentSpike", "key": key},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``predicate`` every 50 ms until true or ``timeout_s``; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.05)
    return True


def utcnow() -> datetime:
    return datetime.now(UTC)


TOKEN = "correct-horse-battery-staple"


def post(url: str, body: bytes, token: str | None = TOKEN, timeout_s: float = 10.0) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + WEBHOOK_PATH, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("finsentry_relay_rejected_requests_total", {"reason": reason}) or 0.0


def counter(name: str, sink: str) -> float:
    return REGISTRY.get_sample_value(name, {"sink": sink}) or 0.0


def settings(monitor: MonitorStub, **kw: Any) -> AlertsSettings:
    base: dict[str, Any] = {
        "relay_port": 0,
        "relay_token": TOKEN,
        "monitor_api_url": monitor.url,
        "max_body_bytes": 4096,
        "sink_timeout_s": 1.0,
        "sink_max_attempts": 2,
        "sink_backoff_initial_s": 0.1,
        "sink_backoff_max_s": 0.2,
    }
    return AlertsSettings(**(base | kw))
