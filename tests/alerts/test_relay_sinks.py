"""The relay delivers one notification per alert group, firing and resolved, with the evidence headlines, to
each kind of sink: JSON webhook, Slack-compatible webhook, SMTP email, Kafka, stdout; failures are retried."""

from __future__ import annotations

import email
import io
import json
import queue
import time
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from alerts_testkit import (
    SPIKE_EVENT,
    TOKEN,
    MonitorStub,
    Receiver,
    counter,
    post,
    settings,
    stocked,
    wait_for,
    webhook_payload,
)

from finsentry.alerts.processes import free_port
from finsentry.alerts.settings import AlertsSettings, EmailSinkSettings
from finsentry.alerts.sinks import EmailSink, KafkaSink, SinkError, SlackSink, StdoutSink, WebhookSink, make_sinks


def test_firing_then_resolved_with_evidence_headlines(monitor: MonitorStub, receiver: Receiver) -> None:
    with stocked(settings(monitor), sinks=[WebhookSink("json-hook", receiver.url, 2.0)]) as relay:
        assert post(relay.url, json.dumps(webhook_payload("firing")).encode())[0] == 200
        firing = receiver.get()
        assert post(relay.url, json.dumps(webhook_payload("resolved")).encode())[0] == 200
        resolved = receiver.get()
    assert firing["status"] == "firing"
    assert firing["title"] == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    ev = firing["evidence"]["topic:earnings"]
    # most negative first, with links; the spike's numbers travel without the evidence list
    assert [h["id"] for h in ev["headlines"]] == ["n1", "n2"]
    assert ev["headlines"][0]["url"] == "https://news.example.com/globex"
    assert ev["spike"]["z"] == 6.4 and "evidence" not in ev["spike"]
    assert ev["spike"]["spike_id"] == "topic:earnings@2024-05-01T12:01:00Z"
    assert ev["spike"]["start"]["z"] == ev["spike"]["peak"]["z"] == 6.4
    assert "Globex shares slump after profit warning" in firing["text"]
    assert "  start 2024-05-01 12:01 UTC: z=6.4  negative 18/25 (72%, baseline 21%)" in firing["text"]
    assert "  peak  2024-05-01 12:01 UTC: z=6.4  negative 18/25 (72%)" in firing["text"]
    assert "  now " not in firing["text"], "a started spike has no later figures"
    assert firing["alerts"][0]["runbook_url"] == "docs/runbooks/NegativeSentimentSpike.md"
    assert firing["alerts"][0]["ends_at"] is None
    assert resolved["status"] == "resolved"
    assert resolved["title"] == "[RESOLVED] NegativeSentimentSpike topic:earnings"
    assert resolved["alerts"][0]["ends_at"] == "2024-05-01T12:09:00+00:00"
    assert "RESOLVED: Negative news spike in topic earnings" in resolved["text"]
    assert "resolved 2024-05-01 12:09:00 UTC" in resolved["text"]
    assert monitor.queries == [], "the relay reads sentiment.spikes, never the monitor's API"


def test_one_notification_per_group_and_no_call_to_the_monitor(monitor: MonitorStub, receiver: Receiver) -> None:
    with stocked(settings(monitor), sinks=[WebhookSink("group-hook", receiver.url, 2.0)]) as relay:
        post(relay.url, json.dumps(webhook_payload(n_alerts=3)).encode())
        body = receiver.get()
    assert body["title"] == "[FIRING:3] NegativeSentimentSpike topic:earnings"
    assert len(body["alerts"]) == 3
    assert body["evidence"]["topic:earnings"]["spike"]["spike_id"] == SPIKE_EVENT["spike_id"]
    assert monitor.queries == []
    assert receiver.requests == 1


def test_monitor_down_still_notifies_with_evidence_within_a_second(receiver: Receiver) -> None:
    """The evidence comes from the relay's cache: a monitor that is down changes nothing, and nothing waits."""
    dead = f"http://127.0.0.1:{free_port()}"
    s = AlertsSettings(relay_port=0, relay_token=TOKEN, monitor_api_url=dead)
    with stocked(s, sinks=[WebhookSink("nomon-hook", receiver.url, 2.0)]) as relay:
        t0 = time.monotonic()
        status, answer = post(relay.url, json.dumps(webhook_payload()).encode())
        answered = time.monotonic() - t0
        body = receiver.get()
        delivered = time.monotonic() - t0
    assert status == 200 and answer["status"] == "queued", answer
    assert answered < 1.0 and delivered < 1.0, (answered, delivered)
    ev = body["evidence"]["topic:earnings"]
    assert ev["error"] is None and [h["id"] for h in ev["headlines"]] == ["n1", "n2"], ev
    assert f"Dashboard: {dead}/" in body["text"]


def test_a_spike_the_relay_has_not_seen_still_notifies_and_says_so(receiver: Receiver) -> None:
    s = AlertsSettings(relay_port=0, relay_token=TOKEN)
    with stocked(s, sinks=[WebhookSink("unseen-hook", receiver.url, 2.0)], spikes=[]) as relay:
        post(relay.url, json.dumps(webhook_payload()).encode())
        body = receiver.get()
    ev = body["evidence"]["topic:earnings"]
    assert ev["headlines"] == [] and ev["spike"] is None and "no spike record" in ev["error"], ev
    assert "evidence unavailable: no spike record for this key on sentiment.spikes" in body["text"]


def test_failing_sink_is_retried_with_backoff_and_counted(monitor: MonitorStub) -> None:
    attempts: list[float] = []

    def flaky(n: int) -> int:
        attempts.append(time.monotonic())
        return 500 if n <= 2 else 200

    with Receiver(flaky) as hook:
        failures = counter("finsentry_relay_sink_failures_total", "flaky-hook")
        delivered = counter("finsentry_relay_notifications_total", "flaky-hook")
        s = settings(monitor, sink_max_attempts=4, sink_backoff_initial_s=0.2, sink_backoff_max_s=1.0)
        with stocked(s, sinks=[WebhookSink("flaky-hook", hook.url, 2.0)]) as relay:
            post(relay.url, json.dumps(webhook_payload()).encode())
            assert hook.get()["status"] == "firing"
            assert wait_for(lambda: counter("finsentry_relay_notifications_total", "flaky-hook") == delivered + 1)
    assert hook.requests == 3
    assert counter("finsentry_relay_sink_failures_total", "flaky-hook") == failures + 2
    # backoff doubles: at least 0.2 s before the 2nd attempt and 0.4 s before the 3rd
    assert attempts[1] - attempts[0] >= 0.2 and attempts[2] - attempts[1] >= 0.4


def test_slack_message_links_the_headlines(monitor: MonitorStub, receiver: Receiver) -> None:
    with stocked(settings(monitor), sinks=[SlackSink("slack", receiver.url, 2.0)]) as relay:
        post(relay.url, json.dumps(webhook_payload()).encode())
        body = receiver.get()
    assert body["text"] == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": body["text"]}}
    evidence = body["blocks"][-1]["text"]["text"]
    assert "<https://news.example.com/globex|Globex shares slump after profit warning>" in evidence
    assert "`-0.97`" in evidence


class _SmtpHandler:
    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[str, list[str], Message]] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        self.messages.put((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _SmtpHandler]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that accepts login alerts/pw."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"alerts" and data.password == b"pw"
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    handler = _SmtpHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def test_email_sink_sends_through_smtp_with_login(monitor: MonitorStub, smtp_server: tuple[int, _SmtpHandler]) -> None:
    port, handler = smtp_server
    cfg = EmailSinkSettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        username="alerts",
        password="pw",
        from_addr="finsentry@example.com",
        to_addrs=["oncall@example.com", "desk@example.com"],
    )
    with stocked(settings(monitor), sinks=[EmailSink("email", cfg, 5.0)]) as relay:
        post(relay.url, json.dumps(webhook_payload()).encode())
        mail_from, rcpts, msg = handler.messages.get(timeout=10)
    assert mail_from == "finsentry@example.com"
    assert rcpts == ["oncall@example.com", "desk@example.com"]
    assert msg["Subject"] == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    body = msg.get_payload(decode=True).decode()
    assert "1. [-0.97] Globex shares slump after profit warning" in body
    assert "https://news.example.com/globex" in body


def test_email_sink_wrong_password_fails_and_counts(
    monitor: MonitorStub, smtp_server: tuple[int, _SmtpHandler], caplog: pytest.LogCaptureFixture
) -> None:
    port, handler = smtp_server
    cfg = EmailSinkSettings(
        smtp_host="127.0.0.1", smtp_port=port, username="alerts", password="nope", from_addr="a@x", to_addrs=["b@x"]
    )
    before = counter("finsentry_relay_sink_failures_total", "email-bad")
    with stocked(settings(monitor), sinks=[EmailSink("email-bad", cfg, 5.0)]) as relay:
        post(relay.url, json.dumps(webhook_payload()).encode())
        assert wait_for(lambda: counter("finsentry_relay_sink_failures_total", "email-bad") == before + 2)
    assert handler.messages.empty()
    assert any("535" in r.getMessage() for r in caplog.records), "the server's refusal is in the log"
    assert all("nope" not in r.getMessage() for r in caplog.records)


def test_stdout_sink_prints_readable_text(monitor: MonitorStub) -> None:
    out = io.StringIO()
    with stocked(settings(monitor), sinks=[StdoutSink("stdout", stream=out)]) as relay:
        post(relay.url, json.dumps(webhook_payload()).encode())
        assert wait_for(lambda: "----" in out.getvalue())
    text = out.getvalue()
    assert text.startswith("[FIRING:1] NegativeSentimentSpike topic:earnings\n")
    assert "FIRING: Negative news spike in topic earnings (warning, since 2024-05-01 12:01:30 UTC)" in text
    assert "Runbook: docs/runbooks/NegativeSentimentSpike.md" in text


@pytest.mark.broker
def test_kafka_sink_produces_to_sentiment_alerts(monitor: MonitorStub, broker: Any) -> None:
    from finsentry.ingest.kafka_clients import make_consumer
    from finsentry.ingest.topics import SENTIMENT_ALERTS

    kafka = broker.kafka_settings()
    with stocked(settings(monitor), sinks=[KafkaSink("kafka", kafka, SENTIMENT_ALERTS, 10.0)]) as relay:
        post(relay.url, json.dumps(webhook_payload()).encode())
        assert wait_for(lambda: counter("finsentry_relay_notifications_total", "kafka") >= 1, timeout_s=30)
    consumer = make_consumer(kafka, None, SENTIMENT_ALERTS)
    records: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while not records and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    assert len(records) == 1
    assert counter("finsentry_relay_notifications_total", "kafka") == 1
    value = json.loads(records[0].value)
    assert records[0].key == value["group_key"].encode()
    assert value["status"] == "firing"
    assert value["evidence"]["topic:earnings"]["headlines"][0]["id"] == "n1"


def test_make_sinks_names_and_types_from_settings() -> None:
    s = AlertsSettings.model_validate(
        {
            "sinks": [
                {"type": "stdout"},
                {"type": "webhook", "url": "http://127.0.0.1:1/a"},
                {"type": "webhook", "url": "http://127.0.0.1:1/b"},
                {"type": "slack", "url": "https://hooks.example.com/T/B/secret", "name": "markets"},
                {"type": "email", "smtp_host": "h", "from_addr": "a@x", "to_addrs": ["b@x"]},
                {"type": "kafka"},
            ]
        }
    )
    sinks = make_sinks(s)
    assert [x.name for x in sinks] == ["stdout", "webhook", "webhook-2", "markets", "email", "kafka"]
    assert [type(x).__name__ for x in sinks] == [
        "StdoutSink",
        "WebhookSink",
        "WebhookSink",
        "SlackSink",
        "EmailSink",
        "KafkaSink",
    ]
    assert "secret" not in repr(s)


def test_evidence_of_the_alerts_spike_id_else_the_newest_spike_of_the_key(receiver: Receiver) -> None:
    """An alert carrying ``spike_id`` gets that spike's record; one without gets its key's newest spike."""
    older = dict(SPIKE_EVENT, z=9.9, spike_id="topic:earnings@2024-05-01T09:01:00Z", bucket_end="2024-05-01T09:01:00Z")
    older["start"] = older["peak"] = dict(SPIKE_EVENT["start"], z=9.9, bucket_end="2024-05-01T09:01:00Z")
    s = AlertsSettings(relay_port=0, relay_token=TOKEN)
    with stocked(s, sinks=[WebhookSink("id-hook", receiver.url, 2.0)], spikes=[SPIKE_EVENT, older]) as relay:
        payload = webhook_payload()
        payload["alerts"][0]["labels"]["spike_id"] = older["spike_id"]
        post(relay.url, json.dumps(payload).encode())
        by_id = receiver.get()
        post(relay.url, json.dumps(webhook_payload()).encode())
        newest = receiver.get()
    assert by_id["evidence"]["topic:earnings"]["spike"]["start"]["z"] == 9.9
    assert newest["evidence"]["topic:earnings"]["spike"]["spike_id"] == SPIKE_EVENT["spike_id"]


def test_kafka_sink_replaces_its_producer_after_a_failed_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery that fails closes the producer; the next one builds a new producer (pure logic, fake producers:
    a stuck kafka-python producer would otherwise fail every later alert)."""
    from kafka.errors import KafkaTimeoutError

    import finsentry.ingest.kafka_clients as kafka_clients
    from finsentry.ingest.settings import KafkaSettings

    class Future:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

        def get(self, timeout: float) -> None:
            if not self.ok:
                raise KafkaTimeoutError("stuck")

    class FakeProducer:
        def __init__(self, ok: bool) -> None:
            self.ok, self.sent, self.closed = ok, [], None

        def send(self, topic: str, key: bytes, value: bytes) -> Future:
            self.sent.append((topic, key))
            return Future(self.ok)

        def close(self, timeout: float) -> None:
            self.closed = timeout

    made = [FakeProducer(ok=False), FakeProducer(ok=True)]
    built: list[FakeProducer] = []

    def make_producer(settings: Any, **overrides: Any) -> FakeProducer:
        built.append(made[len(built)])
        return built[-1]

    monkeypatch.setattr(kafka_clients, "make_producer", make_producer)

    class Note:
        group_key = "all"

        def to_json(self) -> dict[str, Any]:
            return {"status": "firing"}

    sink = KafkaSink("kafka", KafkaSettings(), "sentiment.alerts", 1.0)
    with pytest.raises(SinkError, match="sentiment.alerts: KafkaTimeoutError"):
        sink.send(Note())  # type: ignore[arg-type]
    assert (len(built), made[0].closed) == (1, 0), (built, made[0].closed)
    sink.send(Note())  # type: ignore[arg-type]
    assert len(built) == 2 and made[1].sent == [("sentiment.alerts", b"all")], (built, made[1].sent)
    assert made[1].closed is None
