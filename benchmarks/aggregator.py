"""Aggregator speed and memory with 2,000 active tickers, against the scorer's throughput in the same process.

1. Scorer baseline: ``Scorer.predict`` over English StockNet tweets in batches of 64 (items/s), then the rate
   of ``sentiment.keyed`` messages the scorer emits (items/s x the mean fan-out of the aggregator's stream).
2. Aggregator: a synthetic ``sentiment.keyed`` stream in event-time order (``--items`` items over
   ``--hours`` event-hours; each item -> ``all``, one of 20 ``topic:*`` keys and 1-2 of ``--tickers``
   tickers, Zipf-like popularity, keys hashed onto 6 partitions, +-60 s event-time jitter) is fed to
   :class:`~finsentry.monitor.aggregator.Aggregator` as JSON bytes: ``parse_keyed`` + ``process`` per
   message (what the service does per record, minus the Kafka client). Default settings (1-minute buckets;
   5m / 1h / 1d views; 5-minute spike window). Keyed messages/s over ``--rounds`` rounds (median).
3. Memory: ``tracemalloc`` size of everything the aggregator holds after the stream (a separate pass).
4. A snapshot (pandas rolling views of every key and window, what a ``/metrics`` scrape or ``/api/trends``
   costs), timed once.

Scorer and aggregator rounds alternate so load from other jobs hits both alike; ratios are reported.

    python benchmarks/aggregator.py [--items 60000] [--tickers 2000] [--model DIR] [--record]

``--record`` appends a row to the "Aggregator" section of ``benchmarks/RESULTS.md``.
Target (issue 5): aggregator keyed messages/s >= 10 x the scorer's keyed output rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time
import tracemalloc
import zlib
from datetime import UTC, date, datetime
from pathlib import Path

from finsentry.common.paths import REPO_ROOT, SHIPPED_MODEL_DIR
from finsentry.ingest.contract import parse_keyed
from finsentry.model.labels import TOPIC_LABELS, slugify
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.settings import MonitorSettings

RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
START = datetime(2015, 10, 5, 0, 0, tzinfo=UTC).timestamp()


def synthetic_stream(items: int, tickers: int, hours: float, seed: int = 5) -> list[tuple[int, bytes]]:
    """``(partition, value bytes)`` of the keyed messages of ``items`` items, in event-time order (+-60 s)."""
    rng = random.Random(seed)
    symbols = [f"T{i:04d}" for i in range(tickers)]
    weights = [1.0 / (i + 1) ** 0.8 for i in range(tickers)]  # Zipf-like: a few busy, a long tail
    topics = [slugify(t) for t in TOPIC_LABELS]
    span = hours * 3600
    out = []
    for i in range(items):
        t = START + span * i / items + rng.uniform(-60, 60)
        picked = sorted(set(rng.choices(symbols, weights, k=rng.choice((1, 1, 2)))))
        sentiment = rng.choices(("negative", "neutral", "positive"), (0.2, 0.55, 0.25))[0]
        score = {"negative": -0.7, "neutral": 0.0, "positive": 0.6}[sentiment] + rng.uniform(-0.2, 0.2)
        base = {
            "id": f"b{i}",
            "published_at": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
            "sentiment": sentiment,
            "sentiment_probs": [0.2, 0.5, 0.3],
            "sentiment_score": max(-1.0, min(1.0, score)),
            "topic": TOPIC_LABELS[topics.index(rng.choice(topics))],
            "tickers": picked,
            "text": f"Synthetic headline number {i} about {' '.join(picked)} and the market today",
            "url": f"https://example.test/{i}",
            "model_version": "bench",
        }
        keys = ["all", f"topic:{slugify(base['topic'])}", *(f"ticker:{s}" for s in picked)]
        for key in keys:
            out.append((zlib.crc32(key.encode()) % 6, json.dumps(base | {"key": key}).encode()))
    return out


def run_aggregator(stream: list[tuple[int, bytes]]) -> tuple[float, Aggregator]:
    agg = Aggregator(MonitorSettings())
    t0 = time.perf_counter()
    for partition, value in stream:
        agg.process(parse_keyed(value), partition)
    return len(stream) / (time.perf_counter() - t0), agg


def run_scorer(scorer, texts: list[str]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(texts), 64):
        scorer.predict(texts[i : i + 64])
    return len(texts) / (time.perf_counter() - t0)


def memory_bytes(stream: list[tuple[int, bytes]]) -> int:
    items = [(p, parse_keyed(v)) for p, v in stream]  # parsed first: only the aggregator's own state counts
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    agg = Aggregator(MonitorSettings())
    for partition, item in items:
        agg.process(item, partition)
    del items
    gc.collect()
    size = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=60_000)
    ap.add_argument("--tickers", type=int, default=2000)
    ap.add_argument("--hours", type=float, default=24.0, help="event-time span of the synthetic stream")
    ap.add_argument("--scorer-items", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--model", type=Path, default=None, help="model artifact (default: shipped, else $FINSENTRY_MODEL__PATH)"
    )
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    from finsentry.model import Scorer
    from finsentry.monitor.stocknet import load_tweets

    model = args.model or (SHIPPED_MODEL_DIR if (SHIPPED_MODEL_DIR / "model.onnx").is_file() else None)
    model = model or Path(os.environ["FINSENTRY_MODEL__PATH"])
    scorer = Scorer.load(model)
    texts = [t["text"] for t in load_tweets(date(2015, 10, 1), date(2015, 10, 31))][: args.scorer_items]
    stream = synthetic_stream(args.items, args.tickers, args.hours)
    fanout = len(stream) / args.items
    print(f"stream: {args.items} items -> {len(stream)} keyed messages (fan-out {fanout:.2f}), {args.tickers} tickers")

    scorer_rates, agg_rates = [], []
    agg = None
    for r in range(args.rounds):
        scorer_rates.append(run_scorer(scorer, texts))
        rate, agg = run_aggregator(stream)
        agg_rates.append(rate)
        print(f"round {r + 1}: scorer {scorer_rates[-1]:.0f} items/s, aggregator {rate:.0f} keyed msgs/s")
    tickers_held = sum(k.startswith("ticker:") for k in agg.keys)
    state = MonitorState(agg, max_age=0)
    t0 = time.perf_counter()
    snap = state.snapshot()
    snapshot_s = time.perf_counter() - t0
    mem = memory_bytes(stream)
    scorer_rate, agg_rate = statistics.median(scorer_rates), statistics.median(agg_rates)
    ratio_items = agg_rate / scorer_rate
    ratio_keyed = agg_rate / (scorer_rate * fanout)
    print(f"tickers held at the end: {tickers_held}; keys {len(agg.keys)}; views of {len(snap.views)} keys")
    print(
        f"median: scorer {scorer_rate:.0f} items/s ({scorer_rate * fanout:.0f} keyed msgs/s out), "
        f"aggregator {agg_rate:.0f} keyed msgs/s"
    )
    print(f"ratio: {ratio_keyed:.1f}x the scorer's keyed output, {ratio_items:.1f}x its items/s (target >= 10x)")
    print(
        f"memory: {mem / 2**20:.1f} MiB for {len(agg.keys)} keys ({mem / len(agg.keys) / 1024:.1f} KiB/key); "
        f"snapshot (rolling views, pandas): {snapshot_s * 1000:.0f} ms"
    )
    if args.record:
        row = (
            f"| {datetime.now(UTC).date()} | {os.cpu_count()} | {Path(model).name} | {args.items} / {len(stream)} | "
            f"{tickers_held} | {scorer_rate:.0f} | {agg_rate:.0f} | {ratio_keyed:.1f}x / {ratio_items:.1f}x | "
            f"{mem / 2**20:.1f} | {snapshot_s * 1000:.0f} | {os.getloadavg()[0]:.1f} |"
        )
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        header = (
            "\n## Aggregator\n\n`python benchmarks/aggregator.py --record` (synthetic keyed stream in event-time "
            "order, default monitor settings; scorer = `Scorer.predict` on StockNet tweets, batches of 64, same "
            "process, rounds alternated; ratio = aggregator keyed msgs/s over the scorer's keyed output "
            "(items/s x fan-out) / over its items/s; memory = tracemalloc of the aggregator state; snapshot = "
            "pandas rolling views of every key and window; load avg = the machine's 1-minute load average at the end, "
            "other jobs included: the scorer suffers more from a loaded machine than the aggregator).\n\n"
            "| date | cpus | model | items / keyed msgs | tickers held | scorer items/s | aggregator msgs/s | "
            "ratio | state MiB | snapshot ms | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
        if "\n## Aggregator\n" not in text:
            text = text.rstrip("\n") + "\n" + header
        lines = text.split("\n")
        start = lines.index("## Aggregator")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        block = lines[start:end]
        while block and not block[-1].strip():
            block.pop()
        block.append(row)
        lines[start:end] = [*block, ""]
        RESULTS.write_text("\n".join(lines).rstrip("\n") + "\n")
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
