"""Settings of the model room (section ``model``; env ``FINSENTRY_MODEL__<KEY>``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from finsentry.paths import SHIPPED_MODEL_DIR


class ModelSettings(BaseModel):
    """Where the scoring model lives and how it runs."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        SHIPPED_MODEL_DIR, description="model artifact folder (model.onnx, tokenizer.json, labels.json, card.json)"
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="ONNX Runtime execution providers in order of preference",
    )
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads (0 = ONNX Runtime's default)")
    max_length: int = Field(64, ge=8, le=512, description="tokens per text; longer texts are truncated and reported")
    batch_size: int = Field(64, ge=1, le=4096, description="texts per ONNX Runtime call inside Scorer.predict")
    registry_dir: Path = Field(Path("var/registry"), description="model registry folder (v0001/, ..., current)")
