"""Factories for kafka-python clients built from :class:`~finsentry.ingest.settings.KafkaSettings`.

Every Kafka client of every stage is built here so security settings pass through one place.
"""

from __future__ import annotations

import contextlib
import functools
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
    """A ``KafkaProducer`` with ``acks='all'`` and bytes keys/values (callers serialize), closed for good by
    ``close(timeout)`` even when records are pending (see :func:`_producer_class`)."""
    cfg = client_config(settings) | {"acks": "all", "linger_ms": 5, "max_request_size": 4 * 1024 * 1024}
    return _producer_class()(**(cfg | overrides))


SENDER_EXIT_S = 1.0
"""Seconds a producer whose close timed out waits for its force-closed sender thread to end."""


@functools.cache
def _producer_class() -> type:
    """``KafkaProducer`` whose ``close(timeout)`` closes it even when its flush times out.

    kafka-python (3.0.x) flushes before closing and, when records are still pending (the broker stopped first),
    raises ``KafkaTimeoutError`` before it closes anything: the sender thread kept running and the producer's
    ``__del__`` at interpreter exit flushed again and printed ``Exception ignored in: KafkaProducer.__del__ ...
    KafkaTimeoutError`` on the terminal after ``finsentry run``. Here the pending records are then failed (their
    futures get ``IllegalStateError``), the producer is closed (its sender joined for up to
    :data:`SENDER_EXIT_S`), and the ``KafkaTimeoutError`` is raised as before.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    class Producer(KafkaProducer):
        def close(self, timeout: float | None = None, null_logger: bool = False) -> None:
            """``KafkaProducer.close``; closed on return, also when it raises ``KafkaTimeoutError``."""
            try:
                super().close(timeout=timeout, null_logger=null_logger)
            except KafkaTimeoutError:
                self._sender.force_close()
                self._accumulator.abort_incomplete_batches()
                super().close(timeout=SENDER_EXIT_S, null_logger=null_logger)  # nothing to flush: joins the sender
                raise

    return Producer


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
