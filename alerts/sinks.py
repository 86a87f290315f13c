"""Notification sinks: stdout, generic JSON webhook, Slack-compatible webhook, SMTP email, Kafka topic.

A sink's :meth:`~Sink.send` delivers one :class:`~finsentry.alerts.notification.Notification` or raises
:class:`SinkError` (or any ``OSError``); it never retries itself: :mod:`finsentry.alerts.delivery` retries
with backoff on a worker thread per sink. Every network call has a timeout (``timeout_s``, seconds).
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import ssl
import sys
import threading
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any, Protocol, TextIO

from finsentry.alerts.notification import Notification
from finsentry.alerts.settings import (
    AlertsSettings,
    EmailSinkSettings,
    KafkaSinkSettings,
    SlackSinkSettings,
    StdoutSinkSettings,
    WebhookSinkSettings,
)
from finsentry.ingest.settings import KafkaSettings


class SinkError(RuntimeError):
    """A delivery attempt failed; the message says where and why (never with secrets)."""


class Sink(Protocol):
    """Something that delivers notifications; ``name`` is its ``sink`` label in metrics and logs."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification or raise."""
        ...

    def close(self) -> None:
        """Release connections (called once on relay stop)."""
        ...


class StdoutSink:
    """Write the plain-text notification (and a separator line) to ``stream`` (default ``sys.stdout``)."""

    def __init__(self, name: str = "stdout", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(notification.text + "-" * 72 + "\n")
            stream.flush()

    def close(self) -> None:
        pass


def _post_json(url: str, body: dict[str, Any], timeout_s: float, headers: dict[str, str], what: str) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read(65536)
    except urllib.error.HTTPError as exc:
        raise SinkError(f"{what} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkError(f"{what} unreachable: {reason}") from None


class WebhookSink:
    """POST :meth:`Notification.to_json` to a URL; any non-2xx answer or network error is a failure."""

    def __init__(self, name: str, url: str, timeout_s: float, bearer_token: str | None = None) -> None:
        self.name = name
        self.url = url
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}

    def send(self, notification: Notification) -> None:
        _post_json(self.url, notification.to_json(), self.timeout_s, self._headers, f"webhook {self.url}")

    def close(self) -> None:
        pass


class SlackSink:
    """POST :meth:`Notification.slack_message` to a Slack-compatible incoming webhook (URL kept secret)."""

    def __init__(self, name: str, url: str, timeout_s: float) -> None:
        self.name = name
        self._url = url
        self.timeout_s = timeout_s

    def send(self, notification: Notification) -> None:
        _post_json(self._url, notification.slack_message(), self.timeout_s, {}, f"slack sink {self.name}")

    def close(self) -> None:
        pass


class EmailSink:
    """Send a plain-text email (subject = title, body = text) over SMTP with ``smtplib``; one connection per mail."""

    def __init__(self, name: str, settings: EmailSinkSettings, timeout_s: float) -> None:
        self.name = name
        self.settings = settings
        self.timeout_s = timeout_s

    def send(self, notification: Notification) -> None:
        s = self.settings
        msg = EmailMessage()
        msg["Subject"] = notification.title
        msg["From"] = s.from_addr
        msg["To"] = ", ".join(s.to_addrs)
        msg["X-Finsentry-Group-Key"] = notification.group_key
        msg.set_content(notification.text)
        try:
            if s.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=self.timeout_s, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout_s)
            with smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.username:
                    smtp.login(s.username, s.password.get_secret_value() if s.password else "")
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise SinkError(f"email via {s.smtp_host}:{s.smtp_port} failed: {exc}") from None

    def close(self) -> None:
        pass


class KafkaSink:
    """Produce :meth:`Notification.to_json` to a topic (default ``sentiment.alerts``), key = the group key.

    The producer comes from :func:`finsentry.ingest.kafka_clients.make_producer` and is created on first use,
    so a broker that is down at start only fails (and retries) deliveries. A failed delivery closes it and the
    next delivery builds a new one: kafka-python 3.0.x can leave an idempotent producer stuck for good after a
    batch expired across a broker outage (never acknowledging, never failing; see ``TrackedProducer`` in
    :mod:`finsentry.ingest.consume_loop`), and every later alert would then fail until a restart.
    """

    def __init__(self, name: str, kafka: KafkaSettings, topic: str, timeout_s: float) -> None:
        self.name = name
        self.kafka = kafka
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Any = None

    def send(self, notification: Notification) -> None:
        from kafka.errors import KafkaError

        from finsentry.ingest.kafka_clients import make_producer

        try:
            if self._producer is None:
                timeout_ms = int(self.timeout_s * 1000)
                self._producer = make_producer(self.kafka, request_timeout_ms=timeout_ms, max_block_ms=timeout_ms)
            value = json.dumps(notification.to_json(), ensure_ascii=False).encode("utf-8")
            future = self._producer.send(self.topic, key=notification.group_key.encode("utf-8"), value=value)
            future.get(timeout=self.timeout_s)
        except (KafkaError, OSError) as exc:
            self._discard_producer()
            raise SinkError(f"kafka topic {self.topic}: {type(exc).__name__}: {exc}") from None

    def _discard_producer(self) -> None:
        """Close the producer without waiting (its pending record failed already) so the next send starts afresh."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):  # a stuck or broken producer may refuse a clean close
                producer.close(timeout=0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.timeout_s)
            self._producer = None


def make_sinks(settings: AlertsSettings, kafka: KafkaSettings | None = None) -> list[Sink]:
    """Build the sinks listed in ``settings.sinks`` (names from :meth:`AlertsSettings.sink_names`).

    ``kafka`` is needed only for ``type: kafka`` sinks (defaults to :class:`KafkaSettings` defaults).
    """
    sinks: list[Sink] = []
    for name, cfg in zip(settings.sink_names(), settings.sinks, strict=True):
        timeout = settings.sink_timeout_s
        if isinstance(cfg, StdoutSinkSettings):
            sinks.append(StdoutSink(name))
        elif isinstance(cfg, WebhookSinkSettings):
            token = cfg.bearer_token.get_secret_value() if cfg.bearer_token else None
            sinks.append(WebhookSink(name, str(cfg.url), timeout, token))
        elif isinstance(cfg, SlackSinkSettings):
            sinks.append(SlackSink(name, cfg.url.get_secret_value(), timeout))
        elif isinstance(cfg, EmailSinkSettings):
            sinks.append(EmailSink(name, cfg, timeout))
        elif isinstance(cfg, KafkaSinkSettings):
            sinks.append(KafkaSink(name, kafka or KafkaSettings(), cfg.topic, timeout))
        else:  # pragma: no cover - the discriminated union admits no other type
            raise TypeError(f"unknown sink settings {type(cfg).__name__}")
    return sinks
