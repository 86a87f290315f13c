"""Settings of the ingest room (section ``ingest``; env ``FINSENTRY_INGEST__<KEY>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class KafkaSettings(BaseModel):
    """Connection and security settings passed through to kafka-python (env ``FINSENTRY_INGEST__KAFKA__<KEY>``).

    Secrets (``sasl_password``) are :class:`pydantic.SecretStr`: they never appear in logs or ``repr``.
    """

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port")
    client_id: str = Field("finsentry", description="Kafka client id prefix")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with SASL_* protocols)"
    )
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret; never logged)")
    ssl_cafile: Path | None = Field(None, description="CA bundle file (PEM) to verify the brokers")
    ssl_certfile: Path | None = Field(None, description="client certificate file (PEM) for mutual TLS")
    ssl_keyfile: Path | None = Field(None, description="client private key file (PEM) for mutual TLS")
    session_timeout_ms: int = Field(
        6000, ge=1000, description="consumer group session timeout, ms (the embedded broker's joins take half of it)"
    )
    heartbeat_interval_ms: int = Field(1000, ge=100, description="consumer heartbeat interval, ms")


class IngestSettings(BaseModel):
    """Kafka connection, topics, the scorer service and the replay producer."""

    model_config = ConfigDict(extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
