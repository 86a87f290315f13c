"""Factories for kafka-python clients built from :class:`~finsentry.ingest.settings.KafkaSettings`.

Every Kafka client of every stage is built here so security settings pass through one place.
"""

from __future__ import annotations

import contextlib
from typing import Any

from finsentry.ingest.settings import KafkaSettings


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python keyword arguments common to producers, consumers and admin clients (secrets unwrapped)."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()],
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        cfg["sasl_mechanism"] = settings.sasl_mechanism
        cfg["sasl_plain_username"] = settings.sasl_username
        cfg["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, key)
        if value is not None:
            cfg[key] = str(value)
    return cfg


def make_producer(settings: KafkaSettings, **overrides: Any):
    """A ``KafkaProducer`` with ``acks='all'`` and bytes keys/values (callers serialize)."""
    from kafka import KafkaProducer

    cfg = client_config(settings) | {"acks": "all", "linger_ms": 5, "max_request_size": 4 * 1024 * 1024}
    return KafkaProducer(**(cfg | overrides))


def make_consumer(settings: KafkaSettings, group_id: str | None, *topics: str, **overrides: Any):
    """A ``KafkaConsumer`` in ``group_id`` (None = no group) with manual offset commits, subscribed to ``topics``."""
    from kafka import KafkaConsumer

    cfg = client_config(settings) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
    }
    return KafkaConsumer(*topics, **(cfg | overrides))


def make_admin(settings: KafkaSettings, **overrides: Any):
    """A ``KafkaAdminClient``."""
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(**(client_config(settings) | overrides))


def ensure_topics(settings: KafkaSettings, partitions: dict[str, int]) -> list[str]:
    """Create the topics in ``partitions`` (name -> partition count) that do not exist, with the retention of
    :data:`~finsentry.ingest.topics.TOPIC_RETENTION_MS` where it names one; returns those created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, n, 1, topic_configs=_topic_configs(name))
            for name, n in partitions.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        admin.close()


def _topic_configs(name: str) -> dict[str, str]:
    """Topic-level configs :func:`ensure_topics` creates ``name`` with (``retention.ms`` where one is set)."""
    from finsentry.ingest.topics import TOPIC_RETENTION_MS

    return {"retention.ms": str(TOPIC_RETENTION_MS[name])} if name in TOPIC_RETENTION_MS else {}
