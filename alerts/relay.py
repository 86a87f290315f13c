"""The alert relay: an HTTP receiver for Alertmanager webhooks that adds evidence and fans out to sinks.

Routes (stdlib :class:`~http.server.ThreadingHTTPServer`, bound to ``alerts.relay_host``, default 127.0.0.1):

- ``POST /webhook`` an Alertmanager webhook (version 4). Checks, in order: bearer token (missing or wrong
  -> 401, constant-time comparison, nothing forwarded), ``Content-Length`` (missing -> 411; repeated or not
  ASCII digits -> 400; above ``alerts.max_body_bytes`` -> 413, the body is not read), JSON and payload shape
  (-> 400, logged). Then
  looks up, for each distinct ``key`` label, the spike behind the alerts in the relay's spike cache (by the
  alerts' ``spike_id`` label, else the key's newest spike), which a consumer of ``sentiment.spikes`` fills
  (:mod:`finsentry.alerts.spike_cache`); renders one notification for the group and queues it on every sink's
  worker; answers 200 ``{"status": "queued", "sinks": [names]}``. Nothing in the handler waits on the monitor or
  a sink: it answers in milliseconds whatever their state.
- ``GET /metrics`` the relay's own metrics (``finsentry_relay_*``).
- ``GET /healthz`` ``{"status": "ok", "sinks": {name: pending}}``.

Limits (:mod:`finsentry.common.httpd`, shared with the other finsentry servers): a request must arrive within
``alerts.request_timeout_s`` seconds in total, however slowly its bytes come; at most ``alerts.max_connections``
connections are served at once (more get 503 at once); a client that resets the connection is one DEBUG line.
Every refusal is counted (``finsentry_relay_rejected_requests_total``, ``finsentry_http_connections_dropped_total``).

Run it with :meth:`RelayService.run` in a thread with a stop event (``finsentry run``), or as
``finsentry relay``.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from finsentry.alerts.delivery import SinkWorker
from finsentry.alerts.evidence import Evidence, spike_evidence
from finsentry.alerts.metrics import REGISTRY, REJECTED_REQUESTS
from finsentry.alerts.notification import build_notification
from finsentry.alerts.payload import InvalidPayload, WebhookPayload, parse_payload
from finsentry.alerts.settings import AlertsSettings
from finsentry.alerts.sinks import Sink, make_sinks
from finsentry.alerts.spike_cache import SpikeCache, SpikeConsumer
from finsentry.common.httpd import GuardedHandler, GuardedHTTPServer, parse_content_length
from finsentry.common.net import serve_in_thread, stop_serving
from finsentry.common.textfiles import MAX_SECRET_BYTES, FileReadError, read_limited_text
from finsentry.ingest.settings import KafkaSettings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook"
"""Path Alertmanager posts to (``webhook_configs[].url`` in alerts/alertmanager.yml)."""

MAX_EVIDENCE_KEYS = 10
"""Most distinct aggregate keys whose evidence is shown in one notification (the rest are skipped)."""


class RelayConfigError(ValueError):
    """The relay cannot start: no bearer token, an unreadable token file, or no sinks; says which key."""


def load_token(settings: AlertsSettings) -> str:
    """The bearer token from ``alerts.relay_token`` or the file ``alerts.relay_token_file`` (stripped).

    The file is read with :func:`~finsentry.common.textfiles.read_limited_text`: at most
    :data:`~finsentry.common.textfiles.MAX_SECRET_BYTES` bytes of UTF-8 text, never from a device such as ``/dev/zero``.

    Raises:
        RelayConfigError: neither is set; the file is missing, unreadable, a device, larger than
            :data:`~finsentry.common.textfiles.MAX_SECRET_BYTES` or not UTF-8 (one line naming the file); the token is
            empty.
    """
    if settings.relay_token is not None:
        token = settings.relay_token.get_secret_value().strip()
        source = "alerts.relay_token (env FINSENTRY_ALERTS__RELAY_TOKEN)"
    elif settings.relay_token_file is not None:
        source = f"alerts.relay_token_file ({settings.relay_token_file})"
        try:
            token = read_limited_text(settings.relay_token_file, "alerts.relay_token_file", MAX_SECRET_BYTES).strip()
        except FileReadError as exc:
            raise RelayConfigError(str(exc)) from None
    else:
        raise RelayConfigError(
            "the relay needs a bearer token: set alerts.relay_token_file (env FINSENTRY_ALERTS__RELAY_TOKEN_FILE) "
            "or alerts.relay_token (env FINSENTRY_ALERTS__RELAY_TOKEN)"
        )
    if not token:
        raise RelayConfigError(f"the bearer token in {source} is empty")
    return token


class _Server(GuardedHTTPServer):
    relay: RelayService


class _Handler(GuardedHandler):
    server: _Server
    server_version = "finsentry-relay"
    protocol_version = "HTTP/1.1"

    def _reply(self, status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _reject(self, status: HTTPStatus, reason: str, message: str, close: bool = False) -> None:
        REJECTED_REQUESTS.labels(reason=reason).inc()
        log.warning("rejected %s %s from %s: %s", self.command, self.path, self.client_address[0], message)
        headers = {"WWW-Authenticate": 'Bearer realm="finsentry-relay"'} if status == HTTPStatus.UNAUTHORIZED else {}
        if close:
            headers["Connection"] = "close"
            self.close_connection = True
        self._reply(status, {"error": message}, headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        relay = self.server.relay
        if self.path == "/metrics":
            data = generate_latest(REGISTRY)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok", "sinks": {w.sink.name: w.pending for w in relay.workers}})
        else:
            self._reject(HTTPStatus.NOT_FOUND, "not_found", f"no route GET {self.path}")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        relay = self.server.relay
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            self._reject(HTTPStatus.NOT_FOUND, "not_found", f"no route POST {self.path}", close=True)
            return
        if not relay.authorized(self.headers.get("Authorization")):
            self._reject(HTTPStatus.UNAUTHORIZED, "unauthorized", "missing or wrong bearer token", close=True)
            return
        length_headers = self.headers.get_all("Content-Length") or []
        if not length_headers:
            self._reject(HTTPStatus.LENGTH_REQUIRED, "length_required", "Content-Length required", close=True)
            return
        try:
            if len(length_headers) > 1:
                raise ValueError(f"{len(length_headers)} Content-Length headers; send one")
            length = parse_content_length(length_headers[0])
        except ValueError as exc:
            self._reject(HTTPStatus.BAD_REQUEST, "bad_length", str(exc), close=True)
            return
        limit = relay.settings.max_body_bytes
        if length > limit:
            msg = f"body of {length} bytes exceeds the limit of {limit} bytes (alerts.max_body_bytes)"
            self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", msg, close=True)
            return
        body = self.rfile.read(length)
        try:
            payload = parse_payload(body)
        except InvalidPayload as exc:
            reason = "invalid_json" if "not UTF-8 JSON" in str(exc) else "invalid_payload"
            self._reject(HTTPStatus.BAD_REQUEST, reason, str(exc))
            return
        try:
            names = relay.handle(payload)
        except Exception:  # rendering bug: 500 makes Alertmanager retry
            log.exception("failed to handle alert group %s", payload.groupKey)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return
        self._reply(HTTPStatus.OK, {"status": "queued", "sinks": names})


class RelayService:
    """The relay: HTTP server, spike cache (and its ``sentiment.spikes`` consumer) and one :class:`SinkWorker` per sink.

    Args:
        settings: the ``alerts`` settings (token, limits, spike cache, sinks, retry policy).
        kafka: Kafka connection (``ingest.kafka``) for ``type: kafka`` sinks and the ``sentiment.spikes`` consumer;
            None: no consumer (the cache is filled by whoever holds :attr:`spikes`, as in tests).
        sinks: ready-made sinks instead of those in ``settings.sinks`` (tests, embedding).

    Attributes:
        spikes: the :class:`SpikeCache` notifications take their evidence from. consumer: its consumer, or None.

    Raises:
        RelayConfigError: from :meth:`start` when there is no usable token or no sink.
    """

    def __init__(
        self, settings: AlertsSettings, kafka: KafkaSettings | None = None, sinks: list[Sink] | None = None
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self._sinks = sinks
        self._token = b""
        self.spikes = SpikeCache(settings.spike_cache_size)
        self.consumer: SpikeConsumer | None = None
        self.workers: list[SinkWorker] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``relay_port=0``)."""
        if self._server is None:
            raise RuntimeError("relay not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the running relay."""
        return f"http://{self.settings.relay_host}:{self.port}"

    def authorized(self, header: str | None) -> bool:
        """True if ``header`` is ``Bearer <token>`` with the configured token (constant-time comparison)."""
        if not header:
            return False
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode("utf-8"), self._token)

    def handle(self, payload: WebhookPayload) -> list[str]:
        """Look the spikes up, render one notification and queue it on every sink; returns the sink names queued.

        In memory only (the spike cache, the sinks' queues): it never waits on the monitor or a sink.
        """
        keys: dict[str, str | None] = {}  # key -> spike_id label of its first alert that has one
        for alert in payload.alerts:
            key = alert.labels.get("key")
            if key and (key not in keys or keys[key] is None):
                keys[key] = alert.labels.get("spike_id") or None
        if len(keys) > MAX_EVIDENCE_KEYS:
            log.warning(
                "group %s has %d keys; evidence for the first %d", payload.groupKey, len(keys), MAX_EVIDENCE_KEYS
            )
        evidence: dict[str, Evidence] = {}
        if self.settings.evidence_limit > 0:
            for key, sid in list(keys.items())[:MAX_EVIDENCE_KEYS]:
                cached = self.spikes.get(sid) if sid else None
                evidence[key] = spike_evidence(key, cached or self.spikes.latest(key), self.settings.evidence_limit)
        notification = build_notification(
            payload, evidence, self.settings.runbook_base_url, str(self.settings.monitor_api_url)
        )
        log.info("notification %s (%d alerts) for %d sinks", notification.title, len(payload.alerts), len(self.workers))
        return [w.sink.name for w in self.workers if w.submit(notification)]

    def start(self) -> RelayService:
        """Load the token, start the sink workers and the HTTP server thread.

        Raises:
            RelayConfigError: no usable token or no sinks configured.
            OSError: the address is in use.
        """
        self._token = load_token(self.settings).encode("utf-8")
        sinks = self._sinks if self._sinks is not None else make_sinks(self.settings, self.kafka)
        if not sinks:
            raise RelayConfigError("alerts.sinks is empty: configure at least one sink (e.g. [{type: stdout}])")
        s = self.settings
        self.workers = [
            SinkWorker(
                sink,
                max_attempts=s.sink_max_attempts,
                backoff_initial_s=s.sink_backoff_initial_s,
                backoff_max_s=s.sink_backoff_max_s,
                queue_size=s.sink_queue_size,
            ).start()
            for sink in sinks
        ]
        self._server = _Server(
            (s.relay_host, s.relay_port),
            _Handler,
            registry=REGISTRY,
            max_connections=s.max_connections,
            request_deadline_s=s.request_timeout_s,
            idle_timeout_s=s.request_timeout_s,
        )
        self._server.relay = self
        self._thread = serve_in_thread(self._server, "relay-http", poll_interval=0.1)
        if self.kafka is not None:
            self.consumer = SpikeConsumer(self.kafka, self.spikes, s.spikes_group_id, s.spikes_lookback_seconds).start()
        log.info(
            "relay listening on %s%s, sinks: %s", self.url, WEBHOOK_PATH, ", ".join(w.sink.name for w in self.workers)
        )
        return self

    def stop(self) -> None:
        """Stop the HTTP server and the workers (queued notifications are dropped and logged); idempotent."""
        if self._server is not None:
            stop_serving(self._server, self._thread)
        self._server = self._thread = None
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        for worker in self.workers:
            worker.stop(timeout_s=min(self.settings.sink_timeout_s, 5.0))
        self.workers = []

    def run(self, stop: threading.Event) -> None:
        """Start, serve until ``stop`` is set, then stop (for a supervisor thread or the CLI)."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> RelayService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
