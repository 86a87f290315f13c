"""Settings of the ingest room (section ``ingest``; env ``FINSENTRY_INGEST__<KEY>``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IngestSettings(BaseModel):
    """Kafka connection, topics, the scorer service and the replay producer."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port")
