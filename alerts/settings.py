"""Settings of the alerts room (section ``alerts``; env ``FINSENTRY_ALERTS__<KEY>``).

Sinks are a list of tagged objects, e.g. in YAML::

    alerts:
      relay_token_file: /etc/finsentry/relay-token
      sinks:
        - {type: stdout}
        - {type: webhook, url: "https://hooks.example.com/finsentry"}
        - {type: slack, url: "https://hooks.slack.com/services/..."}
        - {type: email, smtp_host: smtp.example.com, smtp_port: 587, starttls: true,
           from_addr: finsentry@example.com, to_addrs: [oncall@example.com]}
        - {type: kafka, topic: sentiment.alerts}

or as JSON in ``FINSENTRY_ALERTS__SINKS``. Secrets (the relay token, Slack URLs, SMTP password) are
:class:`pydantic.SecretStr`: they never appear in logs or ``repr``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Sink(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(
        None, description="sink name in metrics and logs (label `sink`); defaults to the type, numbered if repeated"
    )


class StdoutSinkSettings(_Sink):
    """Print the plain-text notification to the relay's standard output."""

    type: Literal["stdout"] = "stdout"


class WebhookSinkSettings(_Sink):
    """POST the notification as JSON (see ``finsentry.alerts.notification.Notification.to_json``) to ``url``."""

    type: Literal["webhook"] = "webhook"
    url: AnyHttpUrl = Field(description="URL that receives a JSON POST per notification")
    bearer_token: SecretStr | None = Field(None, description="optional bearer token sent to the webhook (secret)")


class SlackSinkSettings(_Sink):
    """POST a Slack incoming-webhook message (``text`` plus ``blocks``) to ``url``."""

    type: Literal["slack"] = "slack"
    url: SecretStr = Field(description="Slack-compatible incoming webhook URL (secret: it carries the credential)")


class EmailSinkSettings(_Sink):
    """Send a plain-text email per notification through an SMTP server (``smtplib``)."""

    type: Literal["email"] = "email"
    smtp_host: str = Field(description="SMTP server host name")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP server port (25, 587 with STARTTLS, 465 with TLS)")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before logging in")
    ssl: bool = Field(False, description="connect with implicit TLS (SMTPS, usually port 465)")
    username: str | None = Field(None, description="SMTP login user (no login when unset)")
    password: SecretStr | None = Field(None, description="SMTP login password (secret)")
    from_addr: str = Field(description="From address")
    to_addrs: list[str] = Field(min_length=1, description="recipient addresses")


class KafkaSinkSettings(_Sink):
    """Produce the JSON notification to a Kafka topic (connection from ``ingest.kafka``)."""

    type: Literal["kafka"] = "kafka"
    topic: str = Field("sentiment.alerts", description="topic that receives one JSON message per notification")


SinkSettings = Annotated[
    StdoutSinkSettings | WebhookSinkSettings | SlackSinkSettings | EmailSinkSettings | KafkaSinkSettings,
    Field(discriminator="type"),
]
"""One configured sink, selected by its ``type`` field."""


class AlertsSettings(BaseModel):
    """The Alertmanager webhook relay and its sinks."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    relay_host: str = Field("127.0.0.1", description="bind address of the relay")
    relay_port: int = Field(8700, ge=0, le=65535, description="port of the relay (0 = any free port)")
    relay_token: SecretStr | None = Field(
        None,
        description="bearer token Alertmanager must send (secret, never logged); or use relay_token_file",
    )
    relay_token_file: Path | None = Field(
        None,
        description="file holding the bearer token (the file Alertmanager's credentials_file points at)",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="largest accepted webhook body, bytes; larger requests get 413"
    )
    request_timeout_s: float = Field(
        10.0,
        gt=0,
        description="seconds a client may take to send its whole request (and, again, to take the answer) before"
        " the relay drops the connection, however slowly the bytes come",
    )
    max_connections: int = Field(
        32,
        ge=1,
        le=1024,
        description="connections the relay serves at once (one thread each); more are answered 503 at once and"
        " counted (finsentry_http_connections_dropped_total{reason=busy})",
    )
    monitor_api_url: AnyHttpUrl = Field(
        "http://127.0.0.1:8600",
        validate_default=True,
        description="base URL of the monitor's dashboard, linked from notifications (the relay never calls it: the"
        " evidence comes from sentiment.spikes)",
    )
    spikes_group_id: str = Field(
        "finsentry-relay",
        min_length=1,
        description="Kafka consumer group in which the relay reads sentiment.spikes into its spike cache",
    )
    spikes_lookback_seconds: int = Field(
        86_400,
        ge=0,
        description="seconds of wall clock of sentiment.spikes the relay re-reads when it starts (or is assigned the"
        " topic's partitions), so that it knows the spikes that are open",
    )
    spike_cache_size: int = Field(
        4096, ge=1, le=1_000_000, description="spikes the relay keeps (the least recently updated are dropped first)"
    )
    evidence_limit: int = Field(5, ge=0, le=50, description="most negative headlines shown per alert key")
    runbook_base_url: str = Field(
        "", description="prefix for relative runbook_url annotations (e.g. a repository URL ending in /)"
    )
    sinks: list[SinkSettings] = Field(
        default_factory=lambda: [StdoutSinkSettings()],
        description="where notifications go: list of {type: stdout|webhook|slack|email|kafka, ...}",
    )
    sink_timeout_s: float = Field(
        10.0, gt=0, description="timeout of one delivery attempt (HTTP, SMTP, Kafka ack), seconds"
    )
    sink_max_attempts: int = Field(5, ge=1, le=100, description="delivery attempts per notification and sink")
    sink_backoff_initial_s: float = Field(
        1.0, ge=0, description="wait before the first retry, seconds; doubles after each failed attempt"
    )
    sink_backoff_max_s: float = Field(60.0, ge=0, description="longest wait between two attempts, seconds")
    sink_queue_size: int = Field(
        1000, ge=1, description="notifications waiting per sink; when full, new ones for that sink are dropped"
    )

    @model_validator(mode="after")
    def _token_sources(self) -> AlertsSettings:
        if self.relay_token is not None and self.relay_token_file is not None:
            raise ValueError("set only one of relay_token and relay_token_file")
        return self

    def sink_names(self) -> list[str]:
        """Names of the configured sinks in order: ``name`` or the type, with ``-2``, ``-3`` for repeats."""
        names: list[str] = []
        for sink in self.sinks:
            base = sink.name or sink.type
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}-{n}"
            names.append(name)
        return names
