"""Settings of the alerts room (section ``alerts``; env ``FINSENTRY_ALERTS__<KEY>``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AlertsSettings(BaseModel):
    """The Alertmanager webhook relay and its sinks."""

    model_config = ConfigDict(extra="forbid")

    relay_host: str = Field("127.0.0.1", description="bind address of the relay")
    relay_port: int = Field(8700, ge=0, le=65535, description="port of the relay (0 = any free port)")
