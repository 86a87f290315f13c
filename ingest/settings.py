"""Settings of the ingest room (section ``ingest``; env ``FINSENTRY_INGEST__<KEY>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from finsentry.paths import DATA_DIR


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


class ScorerServiceSettings(BaseModel):
    """The scorer service (``finsentry scorer``; env ``FINSENTRY_INGEST__SCORER__<KEY>``)."""

    model_config = ConfigDict(extra="forbid")

    group_id: str = Field("finsentry-scorer", min_length=1, description="consumer group of the scorers on news.raw")
    max_batch_items: int = Field(64, ge=1, le=4096, description="items per micro-batch (one Scorer.predict call)")
    max_batch_wait_ms: int = Field(
        50, ge=0, le=60_000, description="ms a micro-batch waits for more items after its first one arrives"
    )
    idle_poll_ms: int = Field(200, ge=10, le=10_000, description="ms one poll waits when no batch is open")
    max_poll_records: int = Field(500, ge=1, description="kafka-python max_poll_records (records per poll call)")
    fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        le=10_000,
        description="ms the broker may hold a fetch that has no data yet (kafka-python fetch_max_wait_ms); Tansu"
        " holds it the full time even when data arrives, so this bounds the embedded broker's delivery delay",
    )
    max_poll_interval_ms: int = Field(
        300_000,
        ge=1000,
        description="kafka-python max_poll_interval_ms: the longest gap between polls before the member is"
        " evicted; far above the slowest batch, so scoring never triggers a rebalance",
    )
    produce_timeout_s: float = Field(
        30.0, gt=0, description="seconds to wait for the acknowledgement of one batch's produces"
    )
    seen_ids_capacity: int = Field(
        100_000, ge=0, description="item ids remembered to skip duplicates (LRU; 0 = no duplicate check)"
    )
    max_message_bytes: int = Field(
        65_536, ge=256, description="largest news.raw value accepted, bytes; larger ones go to the DLQ"
    )
    dlq_max_value_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=3_145_728,
        description="largest original value copied to news.dlq, bytes; longer ones are cut (at most 3 MiB, under"
        " the producer's 4 MiB max_request_size, so a dead letter can always be written)",
    )
    allowed_langs: list[str] = Field(
        default_factory=lambda: ["en"],
        description="languages scored, by the item's `lang` field (primary subtag, case-insensitive);"
        " items without `lang` are scored; others go to the DLQ as unsupported_language",
    )
    metrics_host: str = Field("127.0.0.1", description="bind address of the scorer's /metrics endpoint")
    metrics_port: int = Field(8601, ge=0, le=65535, description="port of the scorer's /metrics (0 = any free port)")
    lag_refresh_s: float = Field(
        5.0, gt=0, description="seconds between updates of the consumer-lag gauge (from fetch high watermarks)"
    )


class ReplaySettings(BaseModel):
    """The replay producer (``finsentry replay``; env ``FINSENTRY_INGEST__REPLAY__<KEY>``)."""

    model_config = ConfigDict(extra="forbid")

    speedup: float | None = Field(
        None, gt=0, description="replay this many times faster than the original event times (unitless factor)"
    )
    rate: float | None = Field(None, gt=0, description="fixed send rate, messages per second (instead of speedup)")
    progress: bool = Field(True, description="show a tqdm progress bar on stderr")

    @model_validator(mode="after")
    def _one_pace(self) -> ReplaySettings:
        if self.speedup is not None and self.rate is not None:
            raise ValueError("set either speedup or rate, not both")
        return self


class IngestSettings(BaseModel):
    """Kafka connection, topics, the scorer service and the replay producer."""

    model_config = ConfigDict(extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    scorer: ScorerServiceSettings = Field(default_factory=ScorerServiceSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    company_table: Path | None = Field(
        DATA_DIR / "stocknet_tweets" / "StockTable.tsv",
        description="TSV (Sector, Symbol, Company) mapping company names in texts to tickers; null = no mapping",
    )
