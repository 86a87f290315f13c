"""The alert relay: an HTTP receiver for Alertmanager webhooks that adds evidence and fans out to sinks.

Routes (a :class:`~finsentry.common.http_routes.Routes` table on :class:`~finsentry.common.http_routes.RoutedServer`,
the HTTP layer every finsentry service shares, bound to ``alerts.relay_host``, default 127.0.0.1; a query string is
ignored, ``HEAD`` and other methods are 501):

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
import logging
import threading
from http import HTTPStatus

from finsentry.alerts.delivery import SinkWorker
from finsentry.alerts.evidence import Evidence, spike_evidence
from finsentry.alerts.metrics import REGISTRY, REJECTED_REQUESTS
from finsentry.alerts.notification import build_notification
from finsentry.alerts.payload import InvalidPayload, WebhookPayload, parse_payload
from finsentry.alerts.settings import AlertsSettings
from finsentry.alerts.sinks import Sink, make_sinks
from finsentry.alerts.spike_cache import SpikeCache, SpikeConsumer
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
from finsentry.common.httpd import parse_content_length
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


def relay_routes(relay: RelayService) -> Routes:
    """The relay's table: ``/metrics``, ``/healthz`` and ``POST`` :data:`WEBHOOK_PATH`; anything else is 404, counted
    as ``not_found`` (a ``POST`` also closes the connection)."""
    return Routes(
        [
            metrics_route(REGISTRY),
            health_route("/healthz", lambda: {"sinks": {w.sink.name: w.pending for w in relay.workers}}),
            Route("POST", WEBHOOK_PATH, lambda request: _webhook(relay, request)),
        ],
        not_found=lambda r: _reject(
            r, HTTPStatus.NOT_FOUND, "not_found", f"no route {r.method} {r.target}", r.method != "GET"
        ),
    )


def _reject(request: Request, status: HTTPStatus, reason: str, message: str, close: bool = False) -> Response:
    """``{"error": message}`` with ``status``, counted by ``reason`` and logged; ``close``: ``Connection: close``."""
    REJECTED_REQUESTS.labels(reason=reason).inc()
    log.warning("rejected %s %s from %s: %s", request.method, request.target, request.client, message)
    headers = [("WWW-Authenticate", 'Bearer realm="finsentry-relay"')] if status == HTTPStatus.UNAUTHORIZED else []
    if close:
        headers.append(("Connection", "close"))
    return json_response(status, {"error": message}, headers)


def _webhook(relay: RelayService, request: Request) -> Response:
    """An Alertmanager webhook: the checks of the module doc in order, then :meth:`RelayService.handle`."""
    if not relay.authorized(request.headers.get("Authorization")):
        return _reject(request, HTTPStatus.UNAUTHORIZED, "unauthorized", "missing or wrong bearer token", close=True)
    length_headers = request.headers.get_all("Content-Length") or []
    if not length_headers:
        return _reject(request, HTTPStatus.LENGTH_REQUIRED, "length_required", "Content-Length required", close=True)
    try:
        if len(length_headers) > 1:
            raise ValueError(f"{len(length_headers)} Content-Length headers; send one")
        length = parse_content_length(length_headers[0])
    except ValueError as exc:
        return _reject(request, HTTPStatus.BAD_REQUEST, "bad_length", str(exc), close=True)
    limit = relay.settings.max_body_bytes
    if length > limit:
        msg = f"body of {length} bytes exceeds the limit of {limit} bytes (alerts.max_body_bytes)"
        return _reject(request, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", msg, close=True)
    body = request.read(length)
    try:
        payload = parse_payload(body)
    except InvalidPayload as exc:
        reason = "invalid_json" if "not UTF-8 JSON" in str(exc) else "invalid_payload"
        return _reject(request, HTTPStatus.BAD_REQUEST, reason, str(exc))
    try:
        names = relay.handle(payload)
    except Exception:  # rendering bug: 500 makes Alertmanager retry
        log.exception("failed to handle alert group %s", payload.groupKey)
        return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
    return json_response(HTTPStatus.OK, {"status": "queued", "sinks": names})


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
        self._server: RoutedServer | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``relay_port=0``)."""
        if self._server is None:
            raise RuntimeError("relay not started")
        return self._server.port

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
        self._server = RoutedServer(
            (s.relay_host, s.relay_port),
            relay_routes(self),
            server_version="finsentry-relay",
            protocol_version="HTTP/1.1",
            registry=REGISTRY,
            max_connections=s.max_connections,
            request_deadline_s=s.request_timeout_s,
            idle_timeout_s=s.request_timeout_s,
            thread_name="relay-http",
            poll_interval_s=0.1,
        ).start()
        if self.kafka is not None:
            self.consumer = SpikeConsumer(self.kafka, self.spikes, s.spikes_group_id, s.spikes_lookback_seconds).start()
        log.info(
            "relay listening on %s%s, sinks: %s", self.url, WEBHOOK_PATH, ", ".join(w.sink.name for w in self.workers)
        )
        return self

    def stop(self) -> None:
        """Stop the HTTP server and the workers (queued notifications are dropped and logged); idempotent."""
        if self._server is not None:
            self._server.stop()
        self._server = None
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
