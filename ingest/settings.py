"""Settings of the ingest room (section ``ingest``; env ``FINSENTRY_INGEST__<KEY>``)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from finsentry.common.paths import DATA_DIR
from finsentry.ingest.contract import MAX_TICKERS

SCORE_BUDGET_MS_PER_ITEM = 100
"""Most time one item may take to score, ms, in the check of ``ingest.scorer.max_poll_interval_ms``
(:func:`worst_batch_ms`): about 7x the shipped model's measured cost on one CPU core (68 items/s per core, 15 ms;
docs/scaling.md), for a slow, shared or throttled core and the one-by-one rescoring of a batch the model refused."""

CLOCK_SKEW_SECONDS = 600
"""Default of ``ingest.scorer.max_future_seconds``: how far ahead of the scorer's clock a source's clock may run."""

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
"""A DNS name or an IPv4 literal (labels of letters, digits, ``-`` and ``_``; ``_`` for container names)."""


def parse_bootstrap_servers(value: str) -> list[tuple[str, int]]:
    """Split a bootstrap list (``host:port,host:port``; IPv6 literals in brackets, ``[::1]:9092``) into pairs.

    Blanks around entries are ignored. Every entry needs a port (an integer 1..65535); kafka-python would
    otherwise guess 9092 for a missing one and raise ``ValueError`` / ``IndexError`` on a malformed one.

    >>> parse_bootstrap_servers("kafka-0.kafka:9092, 10.0.0.7:9093,[::1]:19092")
    [('kafka-0.kafka', 9092), ('10.0.0.7', 9093), ('::1', 19092)]

    Raises:
        ValueError: the list is empty, or an entry is not ``host:port`` (the message names the entry).
    """
    entries = [e.strip() for e in value.split(",")]
    if not any(entries):
        raise ValueError("no bootstrap server given; expected a comma-separated list of host:port (kafka:9092)")
    out = []
    for entry in entries:
        if not entry:
            raise ValueError(f"{value!r} has an empty entry; expected a comma-separated list of host:port")
        out.append(_host_port(entry))
    return out


def _is_ipv6(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return False
    return True


def _host_port(entry: str) -> tuple[str, int]:
    shown = repr(entry[:80])
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"entry {shown}: an IPv6 entry needs a port after the brackets, like [::1]:9092")
        if not _is_ipv6(host):
            raise ValueError(f"entry {shown}: {host[:60]!r} is not an IPv6 address")
        port = rest[1:]
    else:
        host, sep, port = entry.rpartition(":")
        if not sep:
            raise ValueError(f"entry {shown} has no port; expected host:port, like kafka:9092")
        if ":" in host and (_is_ipv6(host) or _is_ipv6(entry)):
            raise ValueError(f"entry {shown}: an IPv6 address goes in brackets with a port, like [::1]:9092")
        if not _HOSTNAME_RE.match(host):
            raise ValueError(f"entry {shown} is not host:port: {host[:60]!r} is not a host name or IP address")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"entry {shown}: port {port[:20]!r} is not an integer 1..65535")
    return host, int(port)


class KafkaSettings(BaseModel):
    """Connection and security settings passed through to kafka-python (env ``FINSENTRY_INGEST__KAFKA__<KEY>``).

    Secrets (``sasl_password``) are :class:`pydantic.SecretStr`: they never appear in logs or ``repr``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated host:port (port 1..65535; IPv6 as [addr]:port)",
    )
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
    heartbeat_interval_ms: int = Field(
        1000, ge=100, description="consumer heartbeat interval, ms; at most a third of session_timeout_ms"
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap_servers(cls, value: str) -> str:
        """Every entry is ``host:port``; stored without blanks around the entries."""
        parse_bootstrap_servers(value)
        return ",".join(e.strip() for e in value.split(","))

    @model_validator(mode="after")
    def _three_heartbeats_per_session(self) -> KafkaSettings:
        """At least three heartbeats fit in a session (Kafka's guidance: heartbeat.interval.ms no higher than a
        third of session.timeout.ms), so one heartbeat lost or late does not get a live member evicted and its
        partitions' batches read again.

        Raises:
            ValueError: ``heartbeat_interval_ms`` x 3 > ``session_timeout_ms`` (the message names both and the fix).
        """
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be at most a third of session_timeout_ms"
                f" ({self.session_timeout_ms}): with fewer than three heartbeats per session, one late heartbeat gets"
                " a live consumer evicted and its records read again; lower heartbeat_interval_ms or raise"
                " session_timeout_ms"
            )
        return self


class ScorerServiceSettings(BaseModel):
    """The scorer service (``finsentry scorer``; env ``FINSENTRY_INGEST__SCORER__<KEY>``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
        f" evicted; must exceed max_batch_items x {SCORE_BUDGET_MS_PER_ITEM} ms + produce_timeout_s (the slowest"
        " batch), so scoring never triggers a rebalance (evictions are counted in"
        " finsentry_scorer_partition_revocations_total{reason=evicted})",
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
    max_future_seconds: int = Field(
        CLOCK_SKEW_SECONDS,
        ge=0,
        le=86_400,
        description="how far an item's published_at may lie ahead of the scorer's wall clock, seconds: the clock"
        " skew tolerated between the sources and the scorer (default 600 s); items further ahead go to the DLQ as"
        " bad_timestamp, because one future-dated item would raise its partition's event-time watermark and make"
        " the aggregator drop that partition's real items as late (at most 86400: the news.raw contract's bound)",
    )
    max_tickers_per_item: int = Field(
        MAX_TICKERS,
        ge=1,
        le=MAX_TICKERS,
        description="tickers one item may carry, count: the given ones, then cashtags and company names in text"
        f" order; each becomes an aggregate key (a sentiment.keyed message and a key an aggregator holds), so"
        " further ones are left out, counted in finsentry_scorer_tickers_dropped_total and in the item's"
        f" tickers_dropped field of news.scored (at most {MAX_TICKERS}, the news.raw contract's bound on given"
        " tickers; the StockNet tweets name at most 26)",
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
    max_partition_skew_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds of event time (published_at) one news.raw partition may be read ahead of the slowest"
        " partition that still has records; partitions further ahead are paused (ingest/event_order.py), so a scorer"
        " catching up after an outage feeds the aggregators in event-time order; must stay below"
        " monitor.grace_seconds",
    )


class ReplaySettings(BaseModel):
    """The replay producer (``finsentry replay``; env ``FINSENTRY_INGEST__REPLAY__<KEY>``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    scorer: ScorerServiceSettings = Field(default_factory=ScorerServiceSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    company_table: Path | None = Field(
        DATA_DIR / "stocknet_tweets" / "StockTable.tsv",
        description="TSV (Sector, Symbol, Company) mapping company names in texts to tickers; null = no mapping",
    )

    @model_validator(mode="after")
    def _poll_interval_covers_a_batch(self) -> IngestSettings:
        """``scorer.max_poll_interval_ms`` exceeds the longest time the scorer can spend between two polls:
        scoring a full batch at :data:`SCORE_BUDGET_MS_PER_ITEM` per item, then waiting up to
        ``produce_timeout_s`` for its acknowledgements (:func:`worst_batch_ms`). Below that, a slow batch gets the
        scorer evicted from its group (kafka-python leaves the group when a poll is late) and the batch is read
        again by the next owner: every slow batch twice (issue 15: 58% duplicates with two scorers).

        Raises:
            ValueError: the interval is not above :func:`worst_batch_ms` (the message gives the sum and the fix).
        """
        scorer = self.scorer
        worst = worst_batch_ms(scorer)
        if scorer.max_poll_interval_ms <= worst:
            raise ValueError(
                f"scorer.max_poll_interval_ms ({scorer.max_poll_interval_ms}) must exceed the longest time the scorer"
                f" may spend between two polls, {worst} ms = scorer.max_batch_items ({scorer.max_batch_items}) x"
                f" {SCORE_BUDGET_MS_PER_ITEM} ms (scoring budget per item) + scorer.produce_timeout_s"
                f" ({scorer.produce_timeout_s:g} s); a batch that takes longer gets the scorer evicted from its group"
                " and the batch read again; raise max_poll_interval_ms or lower max_batch_items / produce_timeout_s"
            )
        return self


def worst_batch_ms(scorer: ScorerServiceSettings) -> int:
    """The longest a scorer may spend between two polls, ms: ``max_batch_items`` x :data:`SCORE_BUDGET_MS_PER_ITEM`
    (scoring) + ``produce_timeout_s`` (waiting for the batch's acknowledgements). Polls continue while a batch is
    being collected, so ``max_batch_wait_ms`` does not count.

    >>> worst_batch_ms(ScorerServiceSettings())  # 64 x 100 ms + 30 s
    36400
    """
    return scorer.max_batch_items * SCORE_BUDGET_MS_PER_ITEM + round(scorer.produce_timeout_s * 1000)
