"""The Alertmanager webhook payload (version 4), validated with pydantic.

Reference: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config (the JSON body that
Alertmanager POSTs to a ``webhook_configs`` receiver). Unknown extra fields are ignored, missing required
fields or wrong types raise :class:`InvalidPayload`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finsentry.ingest.contract import decode_json_object
from finsentry.ingest.dlq import DlqReason, InvalidRecord


class InvalidPayload(ValueError):
    """The request body is not JSON or not an Alertmanager webhook payload; the message says what is wrong."""


class Alert(BaseModel):
    """One alert of a group: its labels (``alertname``, ``key``, ``severity``, ...) and annotations."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @property
    def name(self) -> str:
        """The ``alertname`` label (empty if missing)."""
        return self.labels.get("alertname", "")


class WebhookPayload(BaseModel):
    """One notification of one alert group, as Alertmanager sends it."""

    model_config = ConfigDict(extra="ignore")

    version: str
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[Alert] = Field(min_length=1)


def parse_payload(body: bytes) -> WebhookPayload:
    """Parse and validate a webhook body (UTF-8 JSON).

    Raises:
        InvalidPayload: the body is not one UTF-8 JSON object (strictly:
            :func:`~finsentry.ingest.contract.decode_json_object`), or lacks the fields and types of version 4.
    """
    try:
        data = decode_json_object(body)
    except InvalidRecord as exc:
        if exc.reason == DlqReason.NOT_AN_OBJECT:
            raise InvalidPayload(f"body must be a JSON object: {exc.message}") from exc
        raise InvalidPayload(f"body is not UTF-8 JSON: {exc.message}") from exc
    if data.get("version") != "4":
        raise InvalidPayload(f"unsupported webhook payload version {data.get('version')!r} (expected '4')")
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidPayload(f"not an Alertmanager payload: {problems}") from exc
