"""Settings of the monitor room (section ``monitor``; env ``FINSENTRY_MONITOR__<KEY>``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MonitorSettings(BaseModel):
    """Aggregator windows, spike detection and the monitor HTTP service."""

    model_config = ConfigDict(extra="forbid")

    http_host: str = Field("127.0.0.1", description="bind address of /metrics, the JSON API and the dashboard")
    http_port: int = Field(8600, ge=0, le=65535, description="port of the monitor HTTP service (0 = any free port)")
