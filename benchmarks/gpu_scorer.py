"""Scorer throughput on an NVIDIA GPU: CUDA and TensorRT execution providers, FP16 and INT8 (QDQ) variants.

Prepared for a machine with a GPU and ``onnxruntime-gpu`` (the GPU image, deploy/docker/gpu.Dockerfile, has
both); this repository's CI machine has none. Every configuration runs in one process on the same real
headlines (validation + test splits, length-sorted batching as the scorer service does), at batch sizes
32-512, after a warm-up pass that also builds the TensorRT engines (their build time is reported apart).

Configurations (files written by ``finsentry model export``; a missing file or a provider ONNX Runtime does
not grant is reported as skipped, with the reason):

=====================  ===================  ==========================================================
provider               variant              provider options
=====================  ===================  ==========================================================
CPU (baseline)         model.onnx           dynamic INT8, all cores: the ratio column divides by this
CUDA                   model.fp32.onnx      FP32 reference on the GPU
CUDA                   model.fp16.onnx      FP16 weights and activations (the service's CUDA choice)
TensorRT               model.fp32.onnx (*)  trt_fp16_enable: TensorRT picks FP16 kernels
TensorRT               model.qdq.onnx       static QDQ INT8 (explicit quantization) + FP16 elsewhere
=====================  ===================  ==========================================================

(*) ``model.fp16.onnx`` when the artifact has no ``model.fp32.onnx`` (it is not committed).
TensorRT gets one optimization profile covering batch 1-512 x 1-``max_length`` tokens and an engine cache
(``--trt-cache``), so a length it has not seen does not trigger a rebuild. Agreement = share of texts whose
sentiment and topic argmax equal the CPU INT8 baseline's (a wrong variant shows up here, not as speed).

    python benchmarks/gpu_scorer.py [--model-dir model/artifacts/current] [--texts 8192]
        [--batches 32,64,128,256,512] [--out benchmarks/gpu_scorer.json]

Exit status: 0 with at least one GPU configuration measured, 2 if none could run (no GPU provider).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from finsentry.common.paths import SHIPPED_MODEL_DIR
from finsentry.model.datasets import load_examples
from finsentry.model.scorer import Scorer

REPO_OF_SCRIPT = Path(__file__).resolve().parents[1]
"""The clone this script sits in: its data/splits are used even when finsentry is installed elsewhere (an image)."""

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@dataclass
class Config:
    """One provider x model-file combination. ``options``: ONNX Runtime provider options."""

    name: str
    provider: str
    variant: str
    options: dict = field(default_factory=dict)


@dataclass
class Result:
    """Measurements of one configuration; ``texts_per_s`` maps batch size -> texts/s (median of repeats)."""

    name: str
    provider: str
    variant: str
    status: str = "ok"
    granted: str | None = None
    warmup_s: float | None = None
    texts_per_s: dict[int, float] = field(default_factory=dict)
    ms_per_batch: dict[int, float] = field(default_factory=dict)
    sentiment_agreement: float | None = None
    topic_agreement: float | None = None
    options: dict = field(default_factory=dict)


def configs(trt_cache: Path, max_length: int, max_batch: int, folder: Path) -> list[Config]:
    """The configurations of the module docstring's table, in order.

    ``model.fp32.onnx`` is not committed (``.gitignore``); without it TensorRT FP16 builds from
    ``model.fp16.onnx`` instead, and CUDA FP32 is reported as skipped.
    """
    trt_fp16_source = "model.fp32.onnx" if (folder / "model.fp32.onnx").is_file() else "model.fp16.onnx"

    def shape(batch: int, length: int) -> str:
        return f"input_ids:{batch}x{length},attention_mask:{batch}x{length}"

    shapes = {
        "trt_profile_min_shapes": shape(1, 1),
        "trt_profile_opt_shapes": shape(max_batch // 2, max_length // 2),
        "trt_profile_max_shapes": shape(max_batch, max_length),
    }
    trt_common = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache), **shapes}
    return [
        Config("cpu-int8", CPU, "model.onnx"),
        Config("cuda-fp32", CUDA, "model.fp32.onnx"),
        Config("cuda-fp16", CUDA, "model.fp16.onnx"),
        Config("trt-fp16", TRT, trt_fp16_source, {**trt_common, "trt_fp16_enable": True}),
        Config("trt-int8-qdq", TRT, "model.qdq.onnx", {**trt_common, "trt_fp16_enable": True, "trt_int8_enable": True}),
    ]


def gpu_name() -> str:
    """``nvidia-smi`` name, driver and memory of the first GPU, or ``?``."""
    if shutil.which("nvidia-smi") is None:
        return "?"
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "?"


def open_scorer(folder: Path, cfg: Config, max_length: int):
    """A :class:`Scorer` on a session built with ``cfg``'s provider options (CPU listed last as fallback).

    Returns (scorer, granted provider) or raises RuntimeError with the reason it cannot run.
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    path = folder / cfg.variant
    if not path.is_file():
        raise RuntimeError(f"{path.name} not in the artifact (run `finsentry model export` with gpu variants)")
    if cfg.provider not in ort.get_available_providers():
        raise RuntimeError(f"{cfg.provider} not available in this onnxruntime build")
    providers = [(cfg.provider, cfg.options)] + ([CPU] if cfg.provider != CPU else [])
    session = ort.InferenceSession(str(path), sess_options=ort.SessionOptions(), providers=providers)
    granted = session.get_providers()[0]
    if granted != cfg.provider:
        raise RuntimeError(f"{cfg.provider} was not granted (ONNX Runtime fell back to {granted})")
    labels = json.loads((folder / "labels.json").read_text())
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return Scorer(session, tokenizer, labels, folder, cfg.variant, max_length, batch_size=32), granted


def measure(scorer: Scorer, texts: list[str], batch: int, repeats: int) -> tuple[float, float]:
    """(texts/s, ms per batch), medians over ``repeats`` full passes at ``batch`` texts per session run."""
    scorer.batch_size = batch
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        scorer.logits(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return rate, 1000.0 * batch / rate


def run(folder: Path, texts: list[str], batches: list[int], repeats: int, trt_cache: Path) -> list[Result]:
    """Measure every configuration; the first (CPU INT8) is the agreement reference."""
    labels = json.loads((folder / "labels.json").read_text())
    max_length = int(labels.get("max_length", 64))
    results: list[Result] = []
    reference: tuple[np.ndarray, np.ndarray] | None = None
    for cfg in configs(trt_cache, max_length, max(batches), folder):
        result = Result(cfg.name, cfg.provider, cfg.variant, options=cfg.options)
        results.append(result)
        try:
            scorer, result.granted = open_scorer(folder, cfg, max_length)
        except Exception as exc:  # report and go on: one missing provider must not hide the others
            result.status = f"skipped: {exc}"
            print(f"{cfg.name}: {result.status}", file=sys.stderr)
            continue
        start = time.perf_counter()
        scorer.batch_size = max(batches)
        topic, sentiment, _ = scorer.logits(texts)  # warm-up: TensorRT engine builds, CUDA kernel selection
        result.warmup_s = time.perf_counter() - start
        if reference is None:
            reference = (topic.argmax(1), sentiment.argmax(1))
        result.topic_agreement = float((topic.argmax(1) == reference[0]).mean())
        result.sentiment_agreement = float((sentiment.argmax(1) == reference[1]).mean())
        for batch in batches:
            result.texts_per_s[batch], result.ms_per_batch[batch] = measure(scorer, texts, batch, repeats)
            print(f"{cfg.name} batch {batch}: {result.texts_per_s[batch]:.0f} texts/s", file=sys.stderr)
    return results


def markdown(results: list[Result], batches: list[int], meta: dict) -> str:
    """Table of texts/s per configuration and batch, the ratio to CPU INT8 at the same batch, agreement."""
    base = next((r for r in results if r.name == "cpu-int8" and r.status == "ok"), None)
    lines = [
        f"GPU scorer benchmark, {meta['date']}: {meta['gpu']}; onnxruntime {meta['onnxruntime']}; "
        f"{meta['texts']} headlines, max_length {meta['max_length']}, length-sorted batches.",
        "",
        "| configuration | " + " | ".join(f"batch {b} texts/s (x CPU)" for b in batches) + " | agreement sent./topic |",
        "|---|" + "---|" * len(batches) + "---|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.name} | " + " | ".join("-" for _ in batches) + f" | {r.status} |")
            continue
        cells = []
        for b in batches:
            ratio = f" ({r.texts_per_s[b] / base.texts_per_s[b]:.1f}x)" if base else ""
            cells.append(f"{r.texts_per_s[b]:,.0f}{ratio}")
        agree = f"{100 * r.sentiment_agreement:.1f}% / {100 * r.topic_agreement:.1f}%"
        lines.append(f"| {r.name} | " + " | ".join(cells) + f" | {agree} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); writes ``--out`` JSON and prints the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--texts", type=int, default=8192, help="headlines scored per pass (repeated if needed)")
    parser.add_argument("--batches", default="32,64,128,256,512", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size (median reported)")
    parser.add_argument("--trt-cache", type=Path, default=None, help="TensorRT engine cache folder (default: temp)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/gpu_scorer.json"))
    parser.add_argument(
        "--splits-dir", type=Path, default=REPO_OF_SCRIPT / "data" / "splits", help="split CSVs (the headlines)"
    )
    args = parser.parse_args(argv)

    import onnxruntime as ort

    batches = sorted(int(b) for b in args.batches.split(","))
    pool = [
        e.text
        for name in ("sentiment_valid", "fpb_test", "topic_dev")
        for e in load_examples(name, splits_dir=args.splits_dir)
    ]
    texts = (pool * (args.texts // len(pool) + 1))[: args.texts]
    labels = json.loads((args.model_dir / "labels.json").read_text())
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "gpu": gpu_name(),
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "python": platform.python_version(),
        "model_dir": str(args.model_dir),
        "model_version": labels.get("model_version"),
        "max_length": labels.get("max_length", 64),
        "texts": len(texts),
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.model_dir, texts, batches, args.repeats, args.trt_cache or Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2) + "\n")
    print(markdown(results, batches, meta))
    measured_gpu = [r for r in results if r.status == "ok" and r.provider != CPU]
    if not measured_gpu:
        print(f"no GPU configuration could run (providers here: {meta['available_providers']})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
