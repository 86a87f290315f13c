"""Settings of the model room (section ``model``; env ``FINSENTRY_MODEL__<KEY>``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from finsentry.common.paths import SHIPPED_MODEL_DIR


class RetrainSettings(BaseModel):
    """Label store, periodic retraining and its quality gate (env ``FINSENTRY_MODEL__RETRAIN__<KEY>``).

    See ``docs/retraining.md``; the gate's rule is in :mod:`finsentry.model.gate`.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    labels_dir: Path = Field(
        Path("var/labels"), description="label store folder: append-only Parquet files partitioned by date=YYYY-MM-DD"
    )
    recipe: Path | None = Field(
        None,
        description="training recipe YAML of the challenger; null = the champion's own recipe and seed (its card's"
        " training_config), else model/configs/shipped.yaml",
    )
    work_dir: Path = Field(Path("runs/retrain"), description="folder of the challengers' training runs (checkpoints)")
    holdout_percent: int = Field(
        20, ge=1, le=50, description="percent of labelled items held out for the gate (fixed by a hash of the item id)"
    )
    min_new_labels: int = Field(
        1, ge=1, description="labels added since the current model needed to retrain; fewer exits non-zero"
    )
    recent_days: float | None = Field(
        None, gt=0, description="labels this many days (labeled_at) before the newest label count extra; null = off"
    )
    recent_copies: int = Field(2, ge=1, le=10, description="copies of each recent label in the training mix")
    min_drop_points: float = Field(
        0.5,
        ge=0,
        description="macro-F1 drop a frozen set may show, points (1 point = 0.01); the gate allows the larger of this"
        " and the 95% paired-bootstrap half-width",
    )
    bootstrap_resamples: int = Field(1000, ge=100, description="paired-bootstrap resamples of the gate")
    eval_limit: int | None = Field(
        None,
        ge=8,
        description="smoke runs: the gate compares on a fixed random sample of N rows of each frozen set, the card"
        " reports the first N rows, the INT8 parity check uses N FPB test rows (null = all rows)",
    )
    export_gpu_variants: bool = Field(True, description="also export model.fp16.onnx and model.qdq.onnx")
    export_max_disagreement: float = Field(
        0.01, gt=0, le=1, description="largest share of FPB test texts where INT8 and FP32 argmax may differ"
    )
    static_int8: bool = Field(
        True,
        description="re-quantize the challenger to static INT8 with temperatures fitted on dev, as the shipped model"
        " was made (finsentry model requantize and its dev gate), so a promoted model scores each text the same in"
        " any batch; false, or no static recipe within export_max_disagreement: the dynamic INT8 export is served",
    )


class ModelSettings(BaseModel):
    """Where the scoring model lives and how it runs.

    ``intra_op_spinning`` is off by default. ONNX Runtime's own default lets idle intra-op worker threads spin
    (busy-wait) after each operator and each run, which buys a few microseconds of wake-up latency per operator
    at the price of whole cores. The scorer handles a stream of micro-batches and shares the machine with the
    aggregator, the broker and the relay (one process under ``finsentry run``); there the spinning cost about
    25% more CPU per scored item, measured on the 2-core development machine, for no throughput gain. Turn it
    on only for a scorer with cores of its own that chases the last bit of batch latency. With
    ``intra_op_threads: 1`` there is no worker pool and the setting has no effect. The same value is set for
    the inter-op pool (``session.inter_op.allow_spinning``), which ONNX Runtime only creates in its parallel
    execution mode (the scorer runs sequentially), so a later switch to that mode does not bring spinning back.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: Path = Field(
        SHIPPED_MODEL_DIR, description="model artifact folder (model.onnx, tokenizer.json, labels.json, card.json)"
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="ONNX Runtime execution providers in order of preference",
    )
    intra_op_threads: int = Field(
        0, ge=0, le=256, description="ONNX Runtime intra-op threads (0 = ONNX Runtime's default; at most 256)"
    )
    intra_op_spinning: bool = Field(
        False,
        description="let ONNX Runtime's idle worker threads busy-wait for work (session.intra_op.allow_spinning; the"
        " same value goes to session.inter_op.allow_spinning); false = they sleep, which saves ~25% CPU per item on"
        " a shared machine",
    )
    max_length: int = Field(
        64,
        ge=8,
        le=512,
        description="tokens per model window; a longer text is scored in windows overlapping by max_length // 4"
        " tokens (see max_chunks), the softmax of their logits averaged with weights = each window's text tokens",
    )
    max_chunks: int = Field(
        16,
        ge=1,
        le=256,
        description="windows of max_length tokens scored per text at most; the rest of a longer text is not scored"
        " and the item is reported truncated (field truncated, finsentry_scorer_truncated_total); 1 = first window"
        " only",
    )
    batch_size: int = Field(
        16,
        ge=1,
        le=4096,
        description="texts per ONNX Runtime call inside Scorer.predict (length-sorted, so each run is padded to its own"
        " longest text; 16 halves the padding of one run of 64 on CPU, see benchmarks/model_speed.py; raise it, e.g. to"
        " 256, for a GPU execution provider, which needs large runs to be busy)",
    )
    registry_dir: Path = Field(Path("var/registry"), description="model registry folder (v0001/, ..., current)")
    retrain: RetrainSettings = Field(
        default_factory=RetrainSettings, description="label store, retraining and quality gate (see docs/retraining.md)"
    )
