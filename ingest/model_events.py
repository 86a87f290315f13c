"""``models.events``: the registry's promote / rollback events, published here and read by the scorers' hot swap.

Value: JSON ``{"action": "promote" | "rollback", "version": "v0002", "model_version": "minilm-mt-v0002",
"previous": "v0001" | null, "path": "/abs/registry/v0002", "at": ISO-8601 UTC}`` (the dict returned by
:meth:`finsentry.model.registry.Registry.promote`); key ``current`` (one partition, so events stay in order).
A reader loads only ``<its own model.registry_dir>/<version>`` (the registry may be mounted at another path on
its machine) and only when ``version`` is a registry version name (``v`` + 4 or more digits); ``path`` says
where the publisher's registry keeps it and is informational: it is never loaded from
(:func:`finsentry.ingest.hot_swap.resolve_version_folder`), so a forged event cannot point the scorers at an
arbitrary folder.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from finsentry.ingest.contract import ModelEvent, decode_json_object
from finsentry.ingest.dlq import InvalidRecord
from finsentry.ingest.kafka_clients import make_producer
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import MODELS_EVENTS

EVENT_KEY = b"current"
"""Key of every ``models.events`` record."""

ACTIONS = frozenset({"promote", "rollback"})


class BadModelEvent(ValueError):
    """A ``models.events`` value is not a valid event; the message says what is wrong."""


def parse_event(value: bytes | None) -> ModelEvent:
    """Decode one ``models.events`` value.

    Raises:
        BadModelEvent: empty, not UTF-8 or not strict JSON, not an object
            (:func:`~finsentry.ingest.contract.decode_json_object`), unknown ``action`` or no ``version``.
    """
    try:
        data = decode_json_object(value)
    except InvalidRecord as exc:
        raise BadModelEvent(f"not a UTF-8 JSON object: {exc.message}") from exc
    if data.get("action") not in ACTIONS:
        raise BadModelEvent(f"action {data.get('action')!r} is not one of {sorted(ACTIONS)}")
    if not isinstance(data.get("version"), str) or not data["version"]:
        raise BadModelEvent("the event names no version")
    try:
        return ModelEvent.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise BadModelEvent(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def publish_event(kafka: KafkaSettings, event: dict[str, Any], timeout_s: float = 15.0) -> tuple[int, int]:
    """Publish one registry event on ``models.events`` and wait for the acknowledgement.

    Returns ``(partition, offset)`` of the record.

    Raises:
        BadModelEvent: ``event`` is not a valid event. kafka.errors.KafkaError: not acknowledged in ``timeout_s``.
    """
    value = json.dumps(event, separators=(",", ":")).encode("utf-8")
    parse_event(value)
    producer = make_producer(kafka, client_id=f"{kafka.client_id}-registry")
    try:
        meta = producer.send(MODELS_EVENTS, key=EVENT_KEY, value=value).get(timeout=timeout_s)
    finally:
        producer.close(timeout=5)
    return meta.partition, meta.offset


__all__ = ["EVENT_KEY", "BadModelEvent", "ModelEvent", "parse_event", "publish_event"]
