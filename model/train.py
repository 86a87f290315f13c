"""Multi-task fine-tuning of all-MiniLM-L6-v2 on topic + sentiment (needs the ``train`` extra).

Recipe: every example carries one task's label; the training mix per epoch is topic train + tweet-sentiment
train + ``fpb_oversample`` copies of FPB train, shuffled together (the oversampling is the task/source
sampling ratio); loss = weighted sum of per-task cross-entropy over the examples that carry that label
(:func:`finsentry.model.network.multitask_loss`); AdamW (encoder and heads with separate learning rates,
no decay on biases and LayerNorm), linear warm-up then linear decay, gradient clipping; batches padded to
their own longest text; after each epoch the dev score (mean of topic dev macro-F1 and the mean of FPB-dev
and tweet-sentiment-dev macro-F1) decides the best checkpoint and early stopping.

Outputs in ``out_dir``: ``config.yaml``, ``train_log.jsonl`` (one JSON object per logged step / epoch),
``epoch<N>.pt`` and ``best.pt`` (state dict + config + dev metrics), ``tokenizer.json``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from finsentry.model.datasets import AGREEMENT_SMOOTHING, DEV_SETS, Example, load_examples
from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
from finsentry.model.network import MultiTaskModel, encoder_dir, multitask_loss
from finsentry.model.quality import macro_f1
from finsentry.model.train_config import TrainConfig


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_tokenizer():
    """The encoder's fast WordPiece tokenizer (uncased), loaded offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(encoder_dir()), local_files_only=True)


def training_mix(cfg: TrainConfig) -> list[Example]:
    """Training examples of one epoch before shuffling: topic + tweet sentiment + FPB x ``fpb_oversample``."""
    topic = load_examples("topic_train", cfg.subset)
    sentiment = load_examples("sentiment_train", cfg.subset)
    fpb = load_examples("fpb_train", cfg.subset)
    return topic + sentiment + fpb * cfg.fpb_oversample


def sentiment_target(example: Example, soft: bool) -> list[float]:
    """Probability target ``[3]`` for a sentiment example (zeros for a topic example)."""
    target = [0.0, 0.0, 0.0]
    if example.task != "sentiment":
        return target
    eps = AGREEMENT_SMOOTHING.get(example.agreement or 100, 0.0) if soft else 0.0
    for i in range(len(SENTIMENT_LABELS)):
        target[i] = 1.0 - eps if i == example.label else eps / (len(SENTIMENT_LABELS) - 1)
    return target


def encode(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenize ``texts`` padded to the longest in the batch: ``input_ids`` / ``attention_mask`` int64 ``[B, T]``."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@torch.no_grad()
def predict_logits(
    model: MultiTaskModel, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch FP32 logits for ``texts``: ``(topic [N, 20], sentiment [N, 3])`` float32, in input order.

    Texts are sorted by length before batching so each batch pads little.
    """
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    topic = np.zeros((len(texts), len(TOPIC_LABELS)), dtype=np.float32)
    sent = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        t, s = model(**encode(tokenizer, [texts[i] for i in idx], max_length))
        topic[idx] = t.numpy()
        sent[idx] = s.numpy()
    return topic, sent


def dev_scores(model: MultiTaskModel, tokenizer, cfg: TrainConfig) -> dict[str, float]:
    """Macro-F1 on each dev set and the selection score ``dev_score`` (see module docstring)."""
    scores: dict[str, float] = {}
    for name in DEV_SETS:
        examples = load_examples(name, cfg.dev_subset)
        topic, sent = predict_logits(model, tokenizer, [e.text for e in examples], cfg.max_length)
        logits, n = (topic, len(TOPIC_LABELS)) if name.startswith("topic") else (sent, len(SENTIMENT_LABELS))
        gold = np.array([e.label for e in examples])
        scores[name] = macro_f1(gold, logits.argmax(axis=1), n)
    scores["dev_score"] = (scores["topic_dev"] + (scores["fpb_dev"] + scores["sentiment_dev"]) / 2) / 2
    return scores


def build_optimizer(model: MultiTaskModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with four groups: encoder/heads x decay/no-decay (biases and LayerNorm weights get no decay)."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = not name.startswith("encoder.")
        no_decay = name.endswith("bias") or "LayerNorm" in name
        groups.setdefault((is_head, no_decay), []).append(p)
    params = [
        {"params": ps, "lr": cfg.head_lr if head else cfg.lr, "weight_decay": 0.0 if nd else cfg.weight_decay}
        for (head, nd), ps in groups.items()
    ]
    return torch.optim.AdamW(params)


def train(
    cfg: TrainConfig,
    out_dir: Path,
    progress: bool = True,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    save_checkpoints: bool = True,
    extra_examples: Sequence[Example] = (),
) -> dict:
    """Run the recipe; returns the best checkpoint's summary ``{"epoch", "dev", "path"}``.

    ``extra_examples`` are added to every epoch's training mix (retraining with analysts' labels,
    :mod:`finsentry.model.retrain`).

    ``on_eval(step, dev_scores)`` is called after every dev evaluation (each epoch end, and every
    ``cfg.eval_every`` steps); it may raise (optuna's ``TrialPruned``) to stop the run.
    ``save_checkpoints=False`` keeps nothing but the log (tuning trials).

    Raises:
        RuntimeError: if the train extra is missing.
    """
    from transformers import get_linear_schedule_with_warmup

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=True))
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads)
    tokenizer = load_tokenizer()
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    model = MultiTaskModel.from_pretrained(pooling=cfg.pooling, dropout=cfg.dropout)
    model.freeze_bottom_layers(cfg.freeze_layers)

    mix = training_mix(cfg) + list(extra_examples)
    steps_per_epoch = (len(mix) + cfg.batch_size - 1) // cfg.batch_size
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = build_optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    rng = random.Random(cfg.seed)
    log = (out_dir / "train_log.jsonl").open("a")
    best: dict = {"dev": {"dev_score": -1.0}}
    stale = 0
    step = 0
    started = time.monotonic()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = list(range(len(mix)))
        rng.shuffle(order)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress)
        for b in bar:
            if step >= total_steps:
                break
            batch = [mix[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            inputs = encode(tokenizer, [e.text for e in batch], cfg.max_length)
            topic_t = torch.tensor([e.label if e.task == "topic" else -1 for e in batch])
            sent_t = torch.tensor([sentiment_target(e, cfg.fpb_soft_targets) for e in batch])
            topic_logits, sent_logits = model(**inputs)
            loss = multitask_loss(topic_logits, sent_logits, topic_t, sent_t, (cfg.topic_weight, cfg.sentiment_weight))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if cfg.eval_every and step % cfg.eval_every == 0 and on_eval is not None:
                on_eval(step, dev_scores(model, tokenizer, cfg))
                model.train()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
                log.write(
                    json.dumps(
                        {
                            "step": step,
                            "epoch": epoch,
                            "loss": loss.item(),
                            "lr": scheduler.get_last_lr()[0],
                            "elapsed_s": time.monotonic() - started,
                        }
                    )
                    + "\n"
                )
                log.flush()
        dev = dev_scores(model, tokenizer, cfg)
        if on_eval is not None:
            on_eval(step, dev)
        ckpt = out_dir / f"epoch{epoch}.pt"
        if save_checkpoints:
            blob = {"state_dict": model.state_dict(), "config": cfg.model_dump(), "epoch": epoch, "dev": dev}
            torch.save(blob, ckpt)
        log.write(
            json.dumps({"epoch_end": epoch, "step": step, "dev": dev, "elapsed_s": time.monotonic() - started}) + "\n"
        )
        log.flush()
        print(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in dev.items()), flush=True)
        if dev["dev_score"] > best["dev"]["dev_score"]:
            best = {"epoch": epoch, "dev": dev, "path": str(out_dir / "best.pt")}
            if save_checkpoints:
                shutil.copyfile(ckpt, out_dir / "best.pt")
            stale = 0
        else:
            stale += 1
            if stale > cfg.patience:
                print(f"early stop after epoch {epoch}: no dev improvement for {stale} epochs", flush=True)
                break
        if step >= total_steps:
            break
    log.close()
    (out_dir / "best.json").write_text(json.dumps(best, indent=2))
    return best


def load_checkpoint(path: Path) -> tuple[MultiTaskModel, TrainConfig]:
    """Rebuild the model from a ``*.pt`` checkpoint written by :func:`train`."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    cfg = TrainConfig(**blob["config"])
    model = MultiTaskModel.from_pretrained(pooling=cfg.pooling, dropout=cfg.dropout)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, cfg
