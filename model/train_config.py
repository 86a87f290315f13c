"""Training recipe: a pydantic model validated on construction, loaded from YAML (``model/configs/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finsentry.common.paths import REPO_ROOT
from finsentry.common.textfiles import MAX_CONFIG_BYTES, read_limited_text

SHIPPED_RECIPE = REPO_ROOT / "model" / "configs" / "shipped.yaml"
"""The shipped model's recipe: ``finsentry model build|train``'s default, the first trial of every tuning study,
and a retrain's recipe when the champion's card has none."""


class TrainConfig(BaseModel):
    """Hyper-parameters of one multi-task training run. Every field has a unit or a range in its description."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(
        13, description="seed of torch, numpy and python's random; the run is reproducible on one machine"
    )
    epochs: int = Field(3, ge=1, le=20, description="passes over the (oversampled) training mix")
    batch_size: int = Field(32, ge=1, le=1024, description="examples per optimizer step")
    lr: float = Field(8e-5, gt=0, lt=1, description="peak learning rate of the encoder (AdamW)")
    head_lr: float = Field(5e-4, gt=0, lt=1, description="peak learning rate of the two heads")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW decoupled weight decay")
    warmup_ratio: float = Field(0.06, ge=0, le=0.5, description="fraction of steps with linear warm-up")
    grad_clip: float = Field(1.0, gt=0, description="max global L2 norm of gradients")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the pooled vector")
    pooling: Literal["mean", "cls"] = Field("mean", description="masked mean of tokens or the first token")
    freeze_layers: int = Field(0, ge=0, le=6, description="bottom encoder layers (plus embeddings) kept frozen")
    max_length: int = Field(64, ge=8, le=512, description="tokens per text after truncation")
    topic_weight: float = Field(1.0, ge=0, description="weight of the topic cross-entropy")
    sentiment_weight: float = Field(1.0, ge=0, description="weight of the sentiment cross-entropy")
    fpb_oversample: int = Field(2, ge=1, le=5, description="copies of each FPB training sentence per epoch")
    fpb_soft_targets: bool = Field(
        False, description="agreement-aware soft targets for FPB: less annotator agreement -> more smoothing"
    )
    patience: int = Field(1, ge=0, description="epochs without dev improvement before stopping early")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (smoke runs)")
    subset: int | None = Field(
        None, ge=8, description="use at most this many examples per training source (smoke runs)"
    )
    dev_subset: int | None = Field(None, ge=8, description="use at most this many examples per dev set (smoke runs)")
    threads: int = Field(2, ge=1, description="torch intra-op threads")
    eval_every: int | None = Field(
        None, ge=1, description="also evaluate on dev every this many steps (tuning reports these to the pruner)"
    )

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        """Load a config file.

        Raises:
            ValueError: the file is missing, a device, larger than
                :data:`~finsentry.common.textfiles.MAX_CONFIG_BYTES`, not UTF-8
                (:class:`~finsentry.common.textfiles.FileReadError`), not YAML, or a key is unknown or out of range (the
                message names it).
        """
        text = read_limited_text(Path(path), "training config", MAX_CONFIG_BYTES)
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"cannot read training config {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"training config {path} must be a mapping of keys to values")
        try:
            return cls(**raw)
        except ValidationError as exc:
            raise ValueError(f"invalid training config {path}:\n{exc}") from exc
