"""Pipeline speed: news.raw -> scorer service -> news.scored against the bare ``Scorer``, in one run.

1. Bare scorer: ``Scorer.predict`` over the same normalized texts, in micro-batches of the service's size
   (``--batch-items``).
2. Pipeline at full load: ``--items`` English StockNet tweets are preloaded on ``news.raw`` of a fresh embedded
   broker; one :class:`ScorerService` (same ``Scorer`` object, in this process) consumes them. Items/s from its
   first consumed record to the last acknowledged produce (validation, normalization, JSON, the ``news.scored``
   + ``sentiment.keyed`` produces and the offset commits included; the group join excluded).
   Steps 1 and 2 alternate for ``--rounds`` rounds (bare, pipeline, bare, pipeline, ..., bare): each round's
   ratio is its pipeline rate over the mean of the bare runs on either side, so load from other jobs on a
   shared machine hits both sides alike; the median ratio is reported. Rates are given per wall second and per
   CPU second of this process (``time.process_time``, all threads); on a loaded machine the wall-clock rates
   swing by +-30 % between back-to-back runs, while CPU time per item (the overhead the pipeline adds) is
   far steadier, so the CPU-time ratio is the figure to trust there.
3. Latency at half load: a second fresh broker, the service joined first, ``--latency-seconds`` of items sent at
   half the rate measured in step 2 (the replay producer's fixed-rate mode). Per item: ``news.scored`` record
   timestamp - ``news.raw`` record timestamp (both producer CreateTime, ms, same host clock); p50 / p99.

    python benchmarks/pipeline.py [--items 2000] [--model DIR] [--record]

``--record`` adds a row to the "Pipeline" section of ``benchmarks/RESULTS.md`` (created if missing).
Targets (issue 4): pipeline >= 0.9x bare scorer; p99 <= 250 ms at half load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from finsentry.common.paths import DATA_DIR, REPO_ROOT
from finsentry.ingest.broker import EmbeddedBroker
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.replay import send_items
from finsentry.ingest.replay_source import load_items
from finsentry.ingest.scorer_service import ScorerService
from finsentry.ingest.settings import IngestSettings
from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_RAW, NEWS_SCORED
from finsentry.ingest.validation import validate_news_raw
from finsentry.model.scorer import Scorer
from finsentry.settings import load_settings

RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Pipeline"
TABLE_HEADER = (
    "| date (UTC) | model | CPU | load avg | rounds x items | batch / wait | bare items/s | pipeline items/s "
    "| wall ratio | CPU-time ratio | half-load rate msg/s | p50 ms | p99 ms |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
SECTION_INTRO = (
    f"{SECTION}\n\n"
    "`python benchmarks/pipeline.py --record` (scorer service in-process on the embedded Tansu broker; bare =\n"
    "`Scorer.predict` on the same texts in the same micro-batches; bare and pipeline runs alternate, each ratio is a\n"
    "pipeline run over the mean of the bare runs on either side, per wall second and per CPU second of the process\n"
    "(steadier on a loaded machine); latency =\n"
    "news.raw -> news.scored record timestamps at half the measured maximum rate).\n"
    "Targets: ratio >= 0.9, p99 <= 250 ms.\n"
    "The machine is shared with other jobs; `load avg` is the 1-minute load when the run started.\n\n" + TABLE_HEADER
)


def cpu_flags() -> str:
    """Model name and the SIMD flags that matter for INT8 inference (avx*, fma, vnni, amx) from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    keep = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} cores; {' '.join(keep)}"


def english_items(n: int) -> list:
    """The first ``n`` English StockNet tweets (one item per tweet id), in event-time order."""
    loaded = load_items([DATA_DIR / "stocknet_tweets" / "monthly"], limit_rows=4 * n + 1000)
    items = [i for i in loaded.items if i.value.get("lang") == "en"][:n]
    if len(items) < n:
        raise SystemExit(f"only {len(items)} English items found")
    return items


def bare_rate(scorer: Scorer, texts: list[str], batch: int) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process) of ``scorer.predict`` in chunks of ``batch``."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), batch):
        scorer.predict(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start), len(texts) / (time.process_time() - cpu)


def settings_for(broker: EmbeddedBroker, batch: int, wait_ms: int, group: str) -> IngestSettings:
    kafka = broker.kafka_settings(session_timeout_ms=2000, heartbeat_interval_ms=300)
    return IngestSettings(
        kafka=kafka, scorer={"group_id": group, "max_batch_items": batch, "max_batch_wait_ms": wait_ms}
    )


def wait(predicate, timeout_s: float, what: str, step_s: float = 0.002) -> tuple[float, float]:
    """Poll ``predicate`` every ``step_s``; returns (time.perf_counter(), time.process_time()) when it held."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(step_s)
    return time.perf_counter(), time.process_time()


def pipeline_rate(scorer: Scorer, items: list, batch: int, wait_ms: int) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process) of the scorer service over ``items``
    preloaded on news.raw (join time excluded; the broker is another process and not counted)."""
    with EmbeddedBroker(port=0) as broker:
        settings = settings_for(broker, batch, wait_ms, "bench-max")
        producer = make_producer(settings.kafka)
        report = send_items(items, producer, progress=False)
        producer.close()
        assert report.sent == len(items), report
        service = ScorerService(scorer, settings, serve_metrics=False)
        service.start_thread()
        try:
            t0 = wait(lambda: service.stats.consumed > 0, 60, "the first batch")
            t1 = wait(lambda: service.stats.scored >= len(items), 600, "all items scored")
        finally:
            service.stop_and_join()
        if service.stats.dead_letters:
            raise SystemExit(f"unexpected dead letters: {dict(service.stats.dead_letters)}")
        return len(items) / (t1[0] - t0[0]), len(items) / (t1[1] - t0[1])


def latency_at(scorer: Scorer, items: list, rate: float, batch: int, wait_ms: int) -> np.ndarray:
    """Produce->scored latency in seconds of each item sent at ``rate`` msg/s to an idle, joined scorer."""
    with EmbeddedBroker(port=0) as broker:
        settings = settings_for(broker, batch, wait_ms, "bench-latency")
        service = ScorerService(scorer, settings, serve_metrics=False)
        service.start_thread()
        everything = set(range(DEFAULT_PARTITIONS[NEWS_RAW]))
        try:
            wait(lambda: service.assigned_partitions() == everything, 60, "the scorer to join", 0.05)
            producer = make_producer(settings.kafka)
            report = send_items(items, producer, rate=rate, progress=False)
            producer.close()
            assert report.sent == len(items), report
            wait(lambda: service.stats.scored >= len(items), 120, "all items scored", 0.05)
        finally:
            service.stop_and_join()
        consumer = make_consumer(settings.kafka, None, NEWS_RAW, NEWS_SCORED)
        stamps: dict[str, dict[str, int]] = {NEWS_RAW: {}, NEWS_SCORED: {}}
        deadline = time.monotonic() + 60
        while min(len(v) for v in stamps.values()) < len(items) and time.monotonic() < deadline:
            for tp, records in consumer.poll(200).items():
                for r in records:
                    stamps[tp.topic][r.key.decode()] = r.timestamp
        consumer.close(autocommit=False)
        raw, scored = stamps[NEWS_RAW], stamps[NEWS_SCORED]
        return np.array([(scored[k] - raw[k]) / 1000 for k in raw if k in scored])


def record_row(row: str) -> None:
    """Add ``row`` after the last row of the last results table (:data:`TABLE_HEADER`) of the Pipeline section of
    RESULTS.md (creating the file, the section or the table).

    After that table's last row, not at the section's end nor after any table: a row appended after a paragraph
    of notes would stand outside any table, and one after a notes table (other columns) in the wrong one.
    """
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + SECTION_INTRO + row + "\n")
        return
    start = text.index(SECTION)
    end = text.find("\n## ", start + 1)
    end = len(text) if end < 0 else end
    lines = text[start:end].split("\n")
    header = TABLE_HEADER.split("\n")[0]
    heads = [i for i, line in enumerate(lines) if line == header]
    if not heads:  # a section without a results table yet
        section = text[start:end].rstrip("\n") + "\n\n" + TABLE_HEADER + row + "\n"
    else:
        last = heads[-1]
        while last + 1 < len(lines) and lines[last + 1].startswith("|"):
            last += 1
        section = "\n".join([*lines[: last + 1], row, *lines[last + 1 :]])
    RESULTS.write_text(text[:start] + section + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="items per full-load round")
    parser.add_argument("--rounds", type=int, default=3, help="pipeline runs, each between two bare runs")
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: settings model.path)")
    parser.add_argument("--batch-items", type=int, default=64, help="micro-batch size, items")
    parser.add_argument("--max-wait-ms", type=int, default=20, help="micro-batch wait, ms")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="duration of the half-load run, s")
    parser.add_argument("--record", action="store_true", help="add a row to benchmarks/RESULTS.md")
    args = parser.parse_args()

    model_dir = args.model or load_settings().model.path
    load_avg = os.getloadavg()[0]
    scorer = Scorer.load(model_dir)
    items = english_items(args.items)
    texts = [validate_news_raw(json.dumps(i.value).encode()).text for i in items]
    scorer.predict(texts[:64])  # warm-up

    bares = [bare_rate(scorer, texts, args.batch_items)]
    pipes = []
    for _ in range(args.rounds):
        pipes.append(pipeline_rate(scorer, items, args.batch_items, args.max_wait_ms))
        bares.append(bare_rate(scorer, texts, args.batch_items))
    ratios = [p[0] / ((bares[k][0] + bares[k + 1][0]) / 2) for k, p in enumerate(pipes)]
    cpu_ratios = [p[1] / ((bares[k][1] + bares[k + 1][1]) / 2) for k, p in enumerate(pipes)]
    ratio, cpu_ratio = float(np.median(ratios)), float(np.median(cpu_ratios))
    pipe = float(np.median([p[0] for p in pipes]))
    half = pipe / 2
    n_latency = max(50, int(half * args.latency_seconds))
    latency_items = english_items(args.items + n_latency)[args.items :]
    lat = latency_at(scorer, latency_items, half, args.batch_items, args.max_wait_ms)
    p50, p99 = (float(np.percentile(lat, q)) * 1000 for q in (50, 99))

    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "model": f"{Path(model_dir).name} ({scorer.model_version})",
        "cpu": cpu_flags(),
        "load_avg_1m": round(load_avg, 2),
        "items": args.items,
        "batch_items": args.batch_items,
        "max_wait_ms": args.max_wait_ms,
        "rounds": args.rounds,
        "bare_items_per_s": [round(b[0], 1) for b in bares],
        "pipeline_items_per_s": [round(p[0], 1) for p in pipes],
        "ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(ratio, 3),
        "bare_items_per_cpu_s": [round(b[1], 1) for b in bares],
        "pipeline_items_per_cpu_s": [round(p[1], 1) for p in pipes],
        "cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "median_cpu_ratio": round(cpu_ratio, 3),
        "half_load_rate": round(half, 1),
        "latency_items": int(lat.size),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
    }
    print(json.dumps(result, indent=2))
    if args.record:
        row = (
            f"| {result['date']} | {result['model']} | {result['cpu']} | {result['load_avg_1m']} "
            f"| {args.rounds} x {args.items} | {args.batch_items} / {args.max_wait_ms} ms "
            f"| {' '.join(f'{b[0]:.0f}' for b in bares)} | {' '.join(f'{p[0]:.0f}' for p in pipes)} "
            f"| {' '.join(f'{r:.2f}' for r in ratios)} (median {ratio:.2f}) "
            f"| {' '.join(f'{r:.2f}' for r in cpu_ratios)} (median {cpu_ratio:.2f}) "
            f"| {half:.0f} | {p50:.0f} | {p99:.0f} |"
        )
        record_row(row)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
