"""Scale-out on one machine: 1, 2 and 3 scorer processes and 2 aggregator processes on 12-partition topics.

Each configuration gets a fresh embedded broker (Tansu) whose ``news.raw``, ``news.scored`` and
``sentiment.keyed`` have 12 partitions. The workers are real ``finsentry scorer`` / ``finsentry aggregator``
processes (the same verbs the containers run), each scorer with one ONNX Runtime intra-op thread
(``FINSENTRY_MODEL__INTRA_OP_THREADS=1``). Once every worker holds partitions, ``--items`` English StockNet
tweets are replayed into ``news.raw`` as fast as the replay producer goes (in this process; the library
``send_items`` that ``finsentry replay`` uses). Measured per run:

* scorer rate: items/s between the moments 10% and 90% of the items were scored (from the scorers'
  ``finsentry_scorer_scored_total``, sampled every 0.2 s): the steady state, without start and tail;
* end-to-end rate: items / (first send -> the aggregators have taken every ``sentiment.keyed`` message);
* CPU seconds per 1,000 items of the scorer processes and of the aggregator processes (``/proc/<pid>/stat``
  utime + stime over the run), so the rate per core can be read off whatever the machine's core count;
* peak resident memory (``VmHWM``) of the largest scorer and aggregator process, for memory requests;
* cores the scorers got (their CPU seconds over the run's wall seconds) and the 1-minute load average at the
  end: on a machine shared with other jobs the wall-clock rates measure the share the scorers got, while
  items per scorer CPU-second stays a property of the scorer.

Runs go in the order ``--order`` (default 1,2,3,3,2,1: a drift in background load hits every configuration
alike); the table reports the mean per configuration and the ratio to 1 scorer.

    python benchmarks/scale.py [--items 4000] [--model DIR] [--order 1,2,3,3,2,1] [--record]

``--record`` appends the table to the "Scale-out" section of ``benchmarks/RESULTS.md``; the JSON goes to
``--out`` (default ``benchmarks/scale.json``). The worker helpers here are also used by the failover test
(``tests/deploy/test_scale_failover.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from finsentry.common.paths import DATA_DIR, REPO_ROOT
from finsentry.ingest.broker import EmbeddedBroker, free_port
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.replay import send_items
from finsentry.ingest.replay_source import ReplayItem, load_items
from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED

PARTITIONS: dict[str, int] = {**DEFAULT_PARTITIONS, NEWS_RAW: 12, NEWS_SCORED: 12, SENTIMENT_KEYED: 12}
"""Topic -> partitions of the broker the workers share: 12 for the three topics the workers split."""

RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Scale-out"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FINSENTRY = str(Path(sys.executable).parent / "finsentry")
"""The ``finsentry`` console script of the running interpreter's environment."""


def english_items(n: int) -> list[ReplayItem]:
    """The first ``n`` English StockNet tweets (one item per tweet id), in event-time order.

    Raises:
        SystemExit: the data has fewer than ``n`` English items.
    """
    loaded = load_items([DATA_DIR / "stocknet_tweets" / "monthly"], limit_rows=4 * n + 1000)
    items = [i for i in loaded.items if i.value.get("lang") == "en"][:n]
    if len(items) < n:
        raise SystemExit(f"only {len(items)} English items found")
    return items


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.1) -> float:
    """Poll ``predicate`` every ``step_s`` seconds until it holds; returns ``time.monotonic()`` then.

    Raises:
        TimeoutError: ``predicate`` did not hold within ``timeout_s`` seconds (the message names ``what``).
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(step_s)
    return time.monotonic()


ASSIGNED = re.compile(r"assigned news\.raw partitions \[([\d, ]*)\]")
RELEASED = re.compile(r"partitions \[([\d, ]*)\] (revoked|lost)")


@dataclass
class Worker:
    """One ``finsentry scorer`` or ``finsentry aggregator`` process and its HTTP port (metrics / API)."""

    verb: str
    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    def get(self, path: str, timeout_s: float = 2.0) -> bytes:
        """GET ``http://127.0.0.1:<port><path>``.

        Raises:
            OSError: the worker does not answer (not up yet, or gone).
        """
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout_s) as response:
            return response.read()

    def metric(self, name: str) -> float:
        """Sum of the samples of counter / gauge ``name`` on the worker's ``/metrics`` (0 if absent).

        Raises:
            OSError: the worker does not answer.
        """
        text = self.get("/metrics").decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    total += sample.value
        return total

    def scorer_partitions(self) -> set[int]:
        """news.raw partitions this scorer holds, from its log (assigned minus revoked / lost since)."""
        held: set[int] = set()
        for line in self.log_path.read_text(errors="replace").splitlines():
            if m := ASSIGNED.search(line):
                held |= {int(p) for p in m[1].split(",") if p.strip()}
            elif m := RELEASED.search(line):
                held -= {int(p) for p in m[1].split(",") if p.strip()}
        return held

    def aggregator_partitions(self) -> set[int]:
        """sentiment.keyed partitions this aggregator holds (``/api/health``), empty if it does not answer."""
        try:
            health = json.loads(self.get("/api/health"))
        except OSError:
            return set()
        return {int(p) for p in health.get("partitions", {})}

    def partitions(self) -> set[int]:
        """Partitions held (scorer: news.raw; aggregator: sentiment.keyed)."""
        return self.scorer_partitions() if self.verb == "scorer" else self.aggregator_partitions()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the process has used so far (``/proc/<pid>/stat``); 0 once it is gone."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the process so far, MiB (``VmHWM`` in ``/proc/<pid>/status``); 0 once gone."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        return kb / 1024

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no commit, no group leave (a crash)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (graceful: commit and leave the group), SIGKILL after ``timeout_s``; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class Cluster:
    """finsentry worker processes against one broker, with their env, logs in ``workdir``.

    ``env`` holds extra ``FINSENTRY_*`` settings for every worker (e.g. monitor windows).
    """

    broker: EmbeddedBroker
    model_dir: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    def start(self, verb: str) -> Worker:
        """Start ``finsentry <verb>`` (scorer or aggregator) on a free 127.0.0.1 port; returns at once."""
        index = sum(1 for w in self.workers if w.verb == verb)
        name = f"{verb}-{index}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
        env |= {
            "FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "FINSENTRY_INGEST__KAFKA__CLIENT_ID": name,
            "FINSENTRY_MODEL__PATH": str(self.model_dir),
            "FINSENTRY_MODEL__INTRA_OP_THREADS": "1",
            "FINSENTRY_INGEST__SCORER__METRICS_PORT": str(port),
            "FINSENTRY_MONITOR__HTTP_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            **self.env,
        }
        log_path = self.workdir / f"{name}.log"
        out = log_path.open("ab")
        process = subprocess.Popen(
            [FINSENTRY, "--log-level", "INFO", verb],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        worker = Worker(verb, name, process, port, log_path)
        self.workers.append(worker)
        return worker

    def live(self, verb: str) -> list[Worker]:
        """Running workers of ``verb``."""
        return [w for w in self.workers if w.verb == verb and w.process.poll() is None]

    def check_alive(self) -> None:
        """Raise RuntimeError with the log tail of any worker that exited although nobody stopped it."""
        for w in self.workers:
            if w.process.poll() is not None and not getattr(w, "_stopped", False):
                tail = "\n".join(w.log_path.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"{w.name} exited with {w.process.returncode}:\n{tail}")

    def balanced(self, verb: str, partitions: int) -> bool:
        """Every live ``verb`` worker holds partitions, and together exactly all ``partitions`` once each."""
        self.check_alive()
        held = [w.partitions() for w in self.live(verb)]
        union = set().union(*held) if held else set()
        return bool(held) and all(held) and union == set(range(partitions)) and sum(map(len, held)) == partitions

    def total(self, verb: str, metric: str) -> float:
        """Sum of ``metric`` over the live ``verb`` workers (a worker that does not answer counts 0).

        Raises:
            RuntimeError: a worker died unexpectedly (see :meth:`check_alive`).
        """
        self.check_alive()
        out = 0.0
        for w in self.live(verb):
            with contextlib.suppress(OSError):  # a worker that does not answer counts 0
                out += w.metric(metric)
        return out

    def kill9(self, worker: Worker) -> None:
        """Crash ``worker`` (SIGKILL) and remember it was on purpose."""
        worker._stopped = True  # type: ignore[attr-defined]
        worker.kill9()

    def stop_all(self) -> None:
        """Stop every worker gracefully (SIGTERM), in reverse start order."""
        for w in reversed(self.workers):
            w._stopped = True  # type: ignore[attr-defined]
            w.stop()


def aggregator_processed(cluster: Cluster) -> float:
    """sentiment.keyed messages the live aggregators have taken: aggregated + late + duplicates + rejected."""
    return sum(
        cluster.total("aggregator", m)
        for m in (
            "finsentry_aggregated_messages_total",
            "finsentry_late_events_total",
            "finsentry_aggregator_duplicates_total",
            "finsentry_aggregator_rejected_messages_total",
        )
    )


def count_records(broker: EmbeddedBroker, topic: str, timeout_s: float = 60.0, idle_s: float = 2.0) -> int:
    """Records on ``topic`` (all partitions), read from the start until nothing new came for ``idle_s``."""
    consumer = make_consumer(broker.kafka_settings(), None, topic)
    count, last_new, deadline = 0, time.monotonic(), time.monotonic() + timeout_s
    try:
        while time.monotonic() - last_new < idle_s and time.monotonic() < deadline:
            batch = consumer.poll(200)
            n = sum(len(records) for records in batch.values())
            if n:
                count += n
                last_new = time.monotonic()
    finally:
        consumer.close(autocommit=False)
    return count


def crossing(series: list[tuple[float, float]], level: float) -> float:
    """First time at which the non-decreasing ``series`` of (time, value) reaches ``level`` (linear between samples).

    >>> crossing([(0.0, 0.0), (1.0, 10.0), (2.0, 30.0)], 20.0)
    1.5

    Raises:
        ValueError: the series never reaches ``level``.
    """
    prev_t, prev_v = series[0]
    if prev_v >= level:
        return prev_t
    for t, v in series[1:]:
        if v >= level:
            return prev_t + (t - prev_t) * (level - prev_v) / (v - prev_v)
        prev_t, prev_v = t, v
    raise ValueError(f"the series never reaches {level}")


@dataclass
class RunResult:
    """One configuration's run: rates in items/s, CPU in seconds per 1,000 items."""

    scorers: int
    items: int
    keyed: int
    scorer_rate: float
    end_to_end_rate: float
    send_s: float
    scorer_cpu_per_1k: float
    aggregator_cpu_per_1k: float
    scorer_peak_rss_mb: float
    aggregator_peak_rss_mb: float
    scorer_cores: float
    load_avg: float


def run_config(scorers: int, items: list[ReplayItem], model_dir: Path, timeout_s: float = 600.0) -> RunResult:
    """One measured run with ``scorers`` scorer processes and 2 aggregator processes (see the module doc)."""
    with (
        tempfile.TemporaryDirectory(prefix="finsentry-scale-") as tmp,
        EmbeddedBroker(port=0, partitions=PARTITIONS) as broker,
    ):
        cluster = Cluster(broker, model_dir, Path(tmp))
        try:
            for _ in range(2):
                cluster.start("aggregator")
            for _ in range(scorers):
                cluster.start("scorer")
            wait_for(
                lambda: cluster.balanced("scorer", PARTITIONS[NEWS_RAW]),
                120,
                f"{scorers} scorers to share news.raw",
                0.5,
            )
            wait_for(
                lambda: cluster.balanced("aggregator", PARTITIONS[SENTIMENT_KEYED]),
                120,
                "2 aggregators to share sentiment.keyed",
                0.5,
            )
            cpu0 = {w.name: w.cpu_seconds() for w in cluster.workers}
            producer = make_producer(broker.kafka_settings())
            series: list[tuple[float, float]] = [(time.monotonic(), 0.0)]
            t_start = time.monotonic()
            report = send_items(items, producer, progress=False)
            producer.close()
            send_s = time.monotonic() - t_start
            if report.sent != len(items):
                raise RuntimeError(f"replay sent {report.sent} of {len(items)}")

            taken: list[tuple[float, float]] = [(t_start, 0.0)]

            def all_scored() -> bool:
                now = time.monotonic()
                series.append((now, cluster.total("scorer", "finsentry_scorer_scored_total")))
                taken.append((now, aggregator_processed(cluster)))
                return series[-1][1] >= len(items)

            wait_for(all_scored, timeout_s, "every item to be scored", 0.2)
            keyed = count_records(broker, SENTIMENT_KEYED)

            def all_taken() -> bool:
                taken.append((time.monotonic(), aggregator_processed(cluster)))
                return taken[-1][1] >= keyed

            wait_for(all_taken, timeout_s, "the aggregators to catch up", 0.2)
            t_done = crossing(taken, keyed)
            cpu = {w.name: w.cpu_seconds() - cpu0[w.name] for w in cluster.workers}
            cpu_wall = time.monotonic() - t_start
            load_avg = os.getloadavg()[0]
            rss = {w.name: w.peak_rss_mb() for w in cluster.workers}
        finally:
            cluster.stop_all()
    t10, t90 = crossing(series, 0.1 * len(items)), crossing(series, 0.9 * len(items))
    per_1k = 1000 / len(items)
    return RunResult(
        scorers=scorers,
        items=len(items),
        keyed=keyed,
        scorer_rate=0.8 * len(items) / (t90 - t10),
        end_to_end_rate=len(items) / (t_done - t_start),
        send_s=send_s,
        scorer_cpu_per_1k=per_1k * sum(v for k, v in cpu.items() if k.startswith("scorer")),
        aggregator_cpu_per_1k=per_1k * sum(v for k, v in cpu.items() if k.startswith("aggregator")),
        scorer_peak_rss_mb=max(v for k, v in rss.items() if k.startswith("scorer")),
        aggregator_peak_rss_mb=max(v for k, v in rss.items() if k.startswith("aggregator")),
        scorer_cores=sum(v for k, v in cpu.items() if k.startswith("scorer")) / cpu_wall,
        load_avg=load_avg,
    )


def summarize(runs: list[RunResult]) -> list[dict]:
    """Mean per scorer count, with the ratio of each mean scorer rate to the 1-scorer mean."""
    rows = []
    for k in sorted({r.scorers for r in runs}):
        mine = [r for r in runs if r.scorers == k]
        rows.append(
            {
                "scorers": k,
                "runs": len(mine),
                "scorer_rate": statistics.mean(r.scorer_rate for r in mine),
                "end_to_end_rate": statistics.mean(r.end_to_end_rate for r in mine),
                "scorer_cpu_per_1k": statistics.mean(r.scorer_cpu_per_1k for r in mine),
                "aggregator_cpu_per_1k": statistics.mean(r.aggregator_cpu_per_1k for r in mine),
                "scorer_peak_rss_mb": max(r.scorer_peak_rss_mb for r in mine),
                "aggregator_peak_rss_mb": max(r.aggregator_peak_rss_mb for r in mine),
                "scorer_cores": statistics.mean(r.scorer_cores for r in mine),
                "load_avg": statistics.mean(r.load_avg for r in mine),
            }
        )
    base = next((r for r in rows if r["scorers"] == 1), rows[0])
    for r in rows:
        r["ratio"] = r["scorer_rate"] / base["scorer_rate"]
        r["items_per_scorer_cpu_s"] = 1000 / r["scorer_cpu_per_1k"]
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    """The Scale-out table."""
    lines = [
        f"{meta['date']}: {meta['cpu']}; load avg {meta['load_avg']:.2f} at start; model {meta['model_version']}; "
        f"{meta['items']} English StockNet tweets per run; order {meta['order']}; 2 aggregators, 12 partitions.",
        "",
        "| scorers | runs | scorer items/s (10-90%) | ratio to 1 | end-to-end items/s | scorer CPU s / 1k items "
        "| items per scorer CPU-second | cores the scorers got | aggregator CPU s / 1k items "
        "| peak RSS scorer / aggregator MiB | load avg (1 min) at the end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scorers']} | {r['runs']} | {r['scorer_rate']:.0f} | {r['ratio']:.2f} | {r['end_to_end_rate']:.0f} "
            f"| {r['scorer_cpu_per_1k']:.2f} | {r['items_per_scorer_cpu_s']:.0f} | {r['scorer_cores']:.2f} "
            f"| {r['aggregator_cpu_per_1k']:.2f} | {r['scorer_peak_rss_mb']:.0f} / {r['aggregator_peak_rss_mb']:.0f} "
            f"| {r['load_avg']:.1f} |"
        )
    return "\n".join(lines)


def record(table: str) -> None:
    """Append ``table`` under the "Scale-out" section of RESULTS.md (section created at the end if missing)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    intro = (
        f"{SECTION}\n\n`python benchmarks/scale.py --record`: real `finsentry scorer` / `finsentry aggregator`"
        " processes (1 intra-op thread per scorer) on the embedded broker, 12-partition topics; see docs/scaling.md.\n"
    )
    if SECTION not in text:
        text = text.rstrip("\n") + "\n\n" + intro
    nxt = text.find("\n## ", text.index(SECTION) + 1)
    if nxt < 0:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    else:
        text = text[:nxt].rstrip("\n") + "\n\n" + table + "\n" + text[nxt:]
    RESULTS.write_text(text)


def cpu_model() -> str:
    """CPU model name and core count."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    from finsentry.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000, help="items replayed per run")
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: settings model.path)")
    parser.add_argument("--order", default="1,2,3,3,2,1", help="scorer counts, one run each, in this order")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "scale.json")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    model_dir = args.model or load_settings().model.path
    labels = json.loads((Path(model_dir) / "labels.json").read_text())
    order = [int(k) for k in args.order.split(",")]
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "load_avg": os.getloadavg()[0],
        "model_version": labels.get("model_version"),
        "items": args.items,
        "order": args.order,
    }
    items = english_items(args.items)
    runs = []
    for k in order:
        result = run_config(k, items, Path(model_dir))
        print(f"{k} scorer(s): {result}", file=sys.stderr)
        runs.append(result)
    rows = summarize(runs)
    table = markdown(rows, meta)
    args.out.write_text(
        json.dumps({"meta": meta, "runs": [r.__dict__ for r in runs], "summary": rows}, indent=2) + "\n"
    )
    print(table)
    if args.record:
        record(table)


if __name__ == "__main__":
    main()
