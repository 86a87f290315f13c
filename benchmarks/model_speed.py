"""Scoring speed on 2,000 real headlines: PyTorch FP32 eager vs ONNX FP32 vs ONNX INT8 vs INT8 length-sorted.

All in one process and one run, batch sizes 1, 8 and 32, 2 intra-op threads; texts/s and the ratio of each
variant to PyTorch FP32 at the same batch size. The PyTorch model is the same architecture (MiniLM + heads;
head weights do not change the speed); the ONNX FP32 graph is ``model.fp32.onnx`` of the artifact if
present, else exported from that PyTorch model into a temp folder. Needs the ``train`` extra.

    python benchmarks/model_speed.py [--texts 2000] [--out benchmarks/model_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from finsentry.common.paths import SHIPPED_MODEL_DIR
from finsentry.model.datasets import load_examples
from finsentry.model.export import export_fp32
from finsentry.model.network import MultiTaskModel
from finsentry.model.scorer import Scorer
from finsentry.model.train import encode, load_tokenizer

THREADS = 2


def cpu_flags() -> str:
    """Model name and the SIMD flags that matter for INT8 (avx2, avx512*, vnni) from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    keep = sorted(f for f in flags if f.startswith(("avx", "fma", "vnni", "amx")) or "vnni" in f)
    return f"{model}; {' '.join(keep)}"


def time_torch(model, tokenizer, texts, batch_size, max_length) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            model(**encode(tokenizer, texts[i : i + batch_size], max_length))
    return len(texts) / (time.perf_counter() - start)


def time_scorer(scorer: Scorer, texts, batch_size, sort: bool) -> float:
    scorer.batch_size = batch_size
    scorer.sort_by_length = sort
    start = time.perf_counter()
    if sort:  # one call: the scorer sorts all texts by length, then batches
        scorer.logits(texts)
    else:  # arrival order, padded to each batch's longest text
        for i in range(0, len(texts), batch_size):
            scorer.logits(texts[i : i + batch_size])
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/model_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    texts = [e.text for e in load_examples("topic_valid")][: args.texts]
    labels = json.loads((args.model / "labels.json").read_text())
    max_length = int(labels.get("max_length", 64))
    model = MultiTaskModel.from_pretrained().eval()
    tokenizer = load_tokenizer()
    tmp = Path(tempfile.mkdtemp())
    try:
        fp32_dir = args.model
        if not (args.model / "model.fp32.onnx").is_file():
            fp32_dir = tmp
            for f in ("tokenizer.json", "labels.json"):
                shutil.copyfile(args.model / f, tmp / f)
            export_fp32(model, tmp / "model.fp32.onnx")
        # an FP32 export of the pretrained encoder for speed only: no card to verify it against
        onnx_fp32 = Scorer.load(fp32_dir, variant="model.fp32.onnx", intra_op_threads=THREADS, verify=False)
        onnx_int8 = Scorer.load(args.model, intra_op_threads=THREADS)
        results = []
        for bs in (1, 8, 32):
            row = {"batch_size": bs}
            row["torch_fp32"] = time_torch(model, tokenizer, texts, bs, max_length)
            row["onnx_fp32"] = time_scorer(onnx_fp32, texts, bs, sort=False)
            row["onnx_int8"] = time_scorer(onnx_int8, texts, bs, sort=False)
            row["onnx_int8_sorted"] = time_scorer(onnx_int8, texts, bs, sort=True)
            for k in ("onnx_fp32", "onnx_int8", "onnx_int8_sorted"):
                row[f"{k}_vs_torch"] = row[k] / row["torch_fp32"]
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_flags(),
        "python": platform.python_version(),
        "threads": THREADS,
        "texts": len(texts),
        "model_version": labels.get("model_version"),
        "results": results,
    }
    args.out.write_text(json.dumps(out, indent=2))
    print(markdown(out))


def markdown(out: dict) -> str:
    """The RESULTS.md section for one run."""
    lines = [
        f"## Model speed ({out['date']}, model {out['model_version']})",
        "",
        f"CPU: {out['cpu']}; {out['threads']} intra-op threads; {out['texts']} real headlines (topic validation).",
        "Command: `python benchmarks/model_speed.py`",
        "",
        "| batch | PyTorch FP32 texts/s | ONNX FP32 | ONNX INT8 | INT8 length-sorted | sorted INT8 / PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["results"]:
        lines.append(
            f"| {r['batch_size']} | {r['torch_fp32']:.0f} | {r['onnx_fp32']:.0f} ({r['onnx_fp32_vs_torch']:.2f}x) | "
            f"{r['onnx_int8']:.0f} ({r['onnx_int8_vs_torch']:.2f}x) | {r['onnx_int8_sorted']:.0f} | "
            f"{r['onnx_int8_sorted_vs_torch']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
