"""Scoring speed on real texts: PyTorch MiniLM and a FinBERT-shape BERT-base vs ``Scorer.predict`` (issue 14).

One process, one run, the same texts (default: the FPB test sentences, 968, in file order = arrival order),
2 intra-op threads for PyTorch and ONNX Runtime alike:

* PyTorch FP32 eager MiniLM-L6 (:class:`MultiTaskModel`, both heads) at batch 32, padded to the batch's max;
* PyTorch FP32 BERT-base with FinBERT's shape (12 layers, 768 hidden, 12 heads, 3072 FFN, 3-way head; random
  weights: the speed does not depend on them) at batch 32, the FinBERT-shape baseline;
* ``Scorer.predict`` of the shipped artifact (``--model``) called as the scorer service calls it, each call
  the next 64 texts in arrival order (sorted by length inside and run ``model.batch_size`` at a time: the
  default, and one run of 64 as before that default), and one call of all texts;
* the same for the rollback artifact (``--rollback``, v1 dynamic INT8) and for an ONNX FP32 graph of it
  (``model.fp32.onnx`` if the folder has one, else rebuilt with :func:`fp32_from_dynamic_int8`; reference).

Both PyTorch models truncate to the artifact's ``max_length`` (64 tokens), the scorer's window. Each variant
is warmed up on one batch, then timed once per round; rounds repeat (``--repeats``) while the last round would
still fit ``--budget-s``, and each variant's best round is reported (other jobs share the cores). Ratios are
against PyTorch MiniLM at batch 32 and against the FinBERT-shape baseline; the issue's targets: ``Scorer.
predict`` batches of 64 in arrival order >= 5x the former and >= 40x the latter. Needs the ``train`` extra.

    python benchmarks/model_speed.py [--texts 1000] [--set fpb_test] [--out benchmarks/model_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

from finsentry.common.paths import SHIPPED_MODEL_DIR
from finsentry.model.datasets import load_examples
from finsentry.model.network import MultiTaskModel
from finsentry.model.scorer import Scorer
from finsentry.model.train import encode, load_tokenizer

THREADS = 2
TORCH_BATCH = 32
SERVICE_BATCH = 64
TARGET_VS_MINILM = 5.0
TARGET_VS_FINBERT = 40.0
ROLLBACK_MODEL_DIR = SHIPPED_MODEL_DIR.parent / "minilm-mt-v1"


def cpu_flags() -> str:
    """Model name and the SIMD flags that matter for INT8 (avx2, avx512*, vnni) from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    keep = sorted(f for f in flags if f.startswith(("avx", "fma", "vnni", "amx")) or "vnni" in f)
    return f"{model}; {' '.join(keep)}"


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def finbert_shape() -> torch.nn.Module:
    """BERT-base with FinBERT's shape and a 3-way classifier, random weights (no download)."""
    from transformers import BertConfig, BertForSequenceClassification

    shape = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}
    config = BertConfig(vocab_size=30522, num_labels=3, **shape)
    torch.manual_seed(0)
    return BertForSequenceClassification(config).eval()


def torch_runner(model, tokenizer, batch_size: int, max_length: int) -> Callable[[Sequence[str]], None]:
    """Eager FP32 forward passes over batches of ``batch_size`` in order, each padded to its longest text."""

    def run(texts: Sequence[str]) -> None:
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                model(**encode(tokenizer, texts[i : i + batch_size], max_length))

    return run


def service_runner(scorer: Scorer, batch_size: int) -> Callable[[Sequence[str]], None]:
    """``Scorer.predict`` as the scorer service calls it: each call the next ``batch_size`` texts."""

    def run(texts: Sequence[str]) -> None:
        for i in range(0, len(texts), batch_size):
            scorer.predict(texts[i : i + batch_size])

    return run


def one_call_runner(scorer: Scorer) -> Callable[[Sequence[str]], None]:
    """One ``Scorer.predict`` call of all texts (sorted by length inside, batches of ``scorer.batch_size``)."""
    return lambda texts: scorer.predict(texts)


def timed(run: Callable[[Sequence[str]], None], texts: Sequence[str]) -> float:
    """Texts per second of one pass of ``run`` over ``texts``."""
    start = time.perf_counter()
    run(texts)
    return len(texts) / (time.perf_counter() - start)


def fp32_folder(rollback: Path, tmp: Path) -> Path:
    """A folder with the rollback artifact's FP32 graph as ``model.fp32.onnx`` (rebuilt into ``tmp`` if absent)."""
    if (rollback / "model.fp32.onnx").is_file():
        return rollback
    from finsentry.model.dequantize import fp32_from_dynamic_int8

    for f in ("tokenizer.json", "labels.json"):
        shutil.copyfile(rollback / f, tmp / f)
    fp32_from_dynamic_int8(rollback / "model.onnx", tmp / "model.fp32.onnx")
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="at most this many texts of --set, in file order")
    parser.add_argument("--set", default="fpb_test", help="split to read texts from (fpb_test, topic_valid, ...)")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR, help="shipped artifact")
    parser.add_argument("--rollback", type=Path, default=ROLLBACK_MODEL_DIR, help="v1 dynamic INT8 artifact")
    parser.add_argument("--repeats", type=int, default=2, help="rounds at most; each variant's best is reported")
    parser.add_argument("--budget-s", type=float, default=300.0, help="start another round only if it fits")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/model_speed.json"))
    args = parser.parse_args()
    load_start = load_average()
    torch.set_num_threads(THREADS)
    texts = [e.text for e in load_examples(args.set)][: args.texts]
    labels = json.loads((args.model / "labels.json").read_text())
    rollback_labels = json.loads((args.rollback / "labels.json").read_text())
    max_length = int(labels.get("max_length", 64))
    tokenizer = load_tokenizer()
    minilm = MultiTaskModel.from_pretrained().eval()
    finbert = finbert_shape()
    tmp = Path(tempfile.mkdtemp())
    try:
        shipped = Scorer.load(args.model, intra_op_threads=THREADS)
        runs64 = Scorer.load(args.model, intra_op_threads=THREADS, batch_size=SERVICE_BATCH)
        dynamic = Scorer.load(args.rollback, intra_op_threads=THREADS)
        # the dequantized v1 graph: no card entry to verify it against
        fp32 = Scorer.load(
            fp32_folder(args.rollback, tmp),
            variant="model.fp32.onnx",
            intra_op_threads=THREADS,
            verify=False,
        )
        shipped_name = f"`{labels.get('model_version')}` {labels.get('quantization', 'dynamic')} INT8"
        dynamic_name = f"`{rollback_labels.get('model_version')}` {rollback_labels.get('quantization', 'dynamic')} INT8"
        variants: list[tuple[str, str, Callable[[Sequence[str]], None]]] = [
            (
                "torch_minilm_b32",
                "PyTorch FP32 eager MiniLM-L6, batch 32",
                torch_runner(minilm, tokenizer, TORCH_BATCH, max_length),
            ),
            (
                "torch_finbert_shape_b32",
                "PyTorch FP32 BERT-base, FinBERT's shape, batch 32",
                torch_runner(finbert, tokenizer, TORCH_BATCH, max_length),
            ),
            (
                "shipped_b64",
                f"{shipped_name}, `Scorer.predict` batches of 64 (runs of {shipped.batch_size})",
                service_runner(shipped, SERVICE_BATCH),
            ),
            (
                "shipped_b64_runs64",
                f"{shipped_name}, `Scorer.predict` batches of 64 (one run of 64: the default before)",
                service_runner(runs64, SERVICE_BATCH),
            ),
            ("shipped_one_call", f"{shipped_name}, one call (length-sorted)", one_call_runner(shipped)),
            ("dynamic_b64", f"{dynamic_name}, `Scorer.predict` batches of 64", service_runner(dynamic, SERVICE_BATCH)),
            ("dynamic_one_call", f"{dynamic_name}, one call (length-sorted)", one_call_runner(dynamic)),
            (
                "onnx_fp32_b64",
                "ONNX FP32 (v1 dequantized), `Scorer.predict` batches of 64",
                service_runner(fp32, SERVICE_BATCH),
            ),
            ("onnx_fp32_one_call", "ONNX FP32 (v1 dequantized), one call (length-sorted)", one_call_runner(fp32)),
        ]
        for _, _, run in variants:  # warm-up: first-call allocations and graph preparation
            run(texts[:SERVICE_BATCH])
        rounds: dict[str, list[float]] = {key: [] for key, _, _ in variants}
        started = time.perf_counter()
        for r in range(max(1, args.repeats)):
            round_start = time.perf_counter()
            for key, _, run in variants:
                rounds[key].append(timed(run, texts))
            last = time.perf_counter() - round_start
            print(
                json.dumps(
                    {"round": r + 1, "seconds": round(last, 1)} | {k: round(v[-1], 1) for k, v in rounds.items()}
                )
            )
            if time.perf_counter() - started + last > args.budget_s:
                break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = {key: max(v) for key, v in rounds.items()}
    minilm_rate, finbert_rate = best["torch_minilm_b32"], best["torch_finbert_shape_b32"]
    results = [
        {
            "key": key,
            "label": label,
            "texts_per_s": best[key],
            "rounds": rounds[key],
            "vs_torch_minilm_b32": best[key] / minilm_rate,
            "vs_finbert_shape_b32": best[key] / finbert_rate,
        }
        for key, label, _ in variants
    ]
    target_rate = best["shipped_b64"]
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_flags(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "threads": THREADS,
        "set": args.set,
        "texts": len(texts),
        "max_length": max_length,
        "rounds": len(rounds["shipped_b64"]),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "model_version": labels.get("model_version"),
        "rollback_model_version": rollback_labels.get("model_version"),
        "results": results,
        "static_vs_dynamic_b64": target_rate / best["dynamic_b64"],
        "runs_vs_one_run_b64": target_rate / best["shipped_b64_runs64"],
        "runs_of": shipped.batch_size,
        "static_vs_dynamic_one_call": best["shipped_one_call"] / best["dynamic_one_call"],
        "targets": {
            "b64_vs_torch_minilm_b32": {"needed": TARGET_VS_MINILM, "got": target_rate / minilm_rate},
            "b64_vs_finbert_shape_b32": {"needed": TARGET_VS_FINBERT, "got": target_rate / finbert_rate},
        },
    }
    for t in out["targets"].values():
        t["met"] = t["got"] >= t["needed"]
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(markdown(out))


def markdown(out: dict) -> str:
    """The RESULTS.md section for one run (without the notes written by hand under it)."""
    load = "/".join(f"{x:.2f}" for x in out["load_average_start"]) or "?"
    load_end = "/".join(f"{x:.2f}" for x in out["load_average_end"]) or "?"
    lines = [
        f"## Model speed ({out['date']}, model {out['model_version']})",
        "",
        f"CPU: {out['cpu']}; {out['threads']} intra-op threads; {out['texts']} real texts ({out['set']}, file "
        f"order), up to {out['max_length']} tokens; best of {out['rounds']} round(s); load average (1/5/15 min) "
        f"{load} at start, {load_end} at end.",
        "Command: `python benchmarks/model_speed.py`",
        "",
        "| | texts/s | vs PyTorch MiniLM b32 | vs FinBERT-shape b32 |",
        "|---|---|---|---|",
    ]
    for r in out["results"]:
        lines.append(
            f"| {r['label']} | {r['texts_per_s']:.0f} | {r['vs_torch_minilm_b32']:.2f}x | "
            f"{r['vs_finbert_shape_b32']:.1f}x |"
        )
    t = out["targets"]
    verdict = [
        f">= {t[k]['needed']:g}x {name}: {t[k]['got']:.2f}x, {'met' if t[k]['met'] else 'not met'}"
        for k, name in (("b64_vs_torch_minilm_b32", "PyTorch MiniLM"), ("b64_vs_finbert_shape_b32", "FinBERT-shape"))
    ]
    lines += [
        "",
        f"Runs of {out['runs_of']} / one run of 64 (the shipped model, service calls of 64): "
        f"{out['runs_vs_one_run_b64']:.2f}x. Static / dynamic INT8: "
        f"{out['static_vs_dynamic_b64']:.2f}x in batches of 64, "
        f"{out['static_vs_dynamic_one_call']:.2f}x in one call. Targets (batches of 64 in arrival order): "
        + "; ".join(verdict)
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
