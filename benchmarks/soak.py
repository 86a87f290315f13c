"""Soak: no news lost. Real processes, real news, crashes, a long scorer outage and a fast source clock (issue 15).

What runs (every process bound to 127.0.0.1, all stopped at the end, on Ctrl-C and on errors):

* the embedded Tansu broker (what ``finsentry broker`` runs; :class:`~finsentry.ingest.broker.EmbeddedBroker`) with
  ``--partitions`` partitions (default 6, as compose and Kubernetes) for ``news.raw``, ``news.scored`` and
  ``sentiment.keyed``;
* ``--scorers`` ``finsentry scorer`` and ``--aggregators`` ``finsentry aggregator`` processes at their default
  settings (the worker helpers of ``benchmarks/scale.py``: one ONNX Runtime intra-op thread per scorer;
  ``--set KEY=VALUE`` adds ``FINSENTRY_*`` settings);
* a producer process (``python benchmarks/soak.py produce ...``) that sends ``--items`` real news items at a
  steady ``--rate`` and stamps each with the wall clock at send time (``published_at`` = now), as a live feed
  would: the StockNet tweets of ``data/stocknet_tweets/`` (MIT, non-English ones included: the scorer
  dead-letters them as ``unsupported_language``), then, if more are asked for, the headlines of
  ``../shared/data/events/`` (read by path, never copied into the repository: see the licences in its README),
  then the same texts again; every item gets a unique id (``<sequence>-<original id>``).
  One source's clock is ``--skew-seconds`` fast: a ``--skew-fraction`` of the items (chosen by the seeded RNG,
  sent during ``--skew-span`` of the production period) is dated now + skew, ``source`` = ``fast-clock``;
* a tap in this process that reads ``news.raw``, ``news.scored``, ``news.dlq`` and ``sentiment.keyed`` from the
  start (no consumer group) all along, and writes every ``news.scored`` record to ``news.scored.jsonl``.

Disturbances, planned by a seeded RNG (``--seed``) over the production period: ``--kills`` kill -9 of a scorer or an
aggregator (50/50; an aggregator while no scorer runs) at random moments in its middle 90 %, each followed by a
restart after a pause of 1-5 s; one outage of *all* scorers of ``--outage-seconds`` starting at ``--outage-at`` of the
production period (``--outage-signal``: ``kill``, kill -9 as a lost node, the default; or ``term``, a graceful stop
in which every member leaves the group), then the scorers are started again; the table says how long the new
scorers took to hold every ``news.raw`` partition. A worker that exits by itself is reported and restarted.

Why kill by default: on the embedded Tansu broker a group that every member has *left* (LeaveGroup) sometimes does
not re-form: the new members loop in JoinGroup / SyncGroup ("coordinator rebalance") without a leader for 15 s to
minutes (a 6,000-item smoke run on 2026-12-07 stayed without scorers for 3.5 min after the outage, 3,612 items
unscored); a group whose members died and expired re-formed in 3-4 s every time. That is the broker, not finsentry
(plain kafka-python consumers do the same); ``--outage-signal term`` shows it.

At the end, once the producer is done: wait (at most ``--drain-timeout`` s) until every sent id is on
``news.scored`` or ``news.dlq`` and every ``sentiment.keyed`` partition has been read to its end by its
aggregator; then

* **missing**: ids sent but neither on ``news.scored`` nor dead-lettered (target 0); dead letters by reason;
  **duplicates** on ``news.scored`` (records minus distinct ids) and how many of them were re-scored to another
  topic or sentiment (a re-scored copy can differ: INT8 activation scales are computed per micro-batch);
* **aggregates**: per key (``all``, ``topic:*``, ``ticker:*``), items and negative / neutral / positive counts of
  the live aggregators (``/api/trends`` over the longest window, which must span the run) against a clean offline
  run of the same aggregation code over the same scored items (``finsentry.monitor.report.backfill`` over the first
  copy of each id on ``news.scored``, same monitor settings, as ``finsentry report --input news.scored.jsonl``
  would); the counters of ``/metrics`` (late, duplicates, rejected by reason, and any counter whose name speaks of
  drops, expiry or reconciliation) summed over every aggregator process of the run (each is read just before it is
  killed or stopped: a restarted aggregator starts its counters at 0 and its rebuild by replay counts nothing).

The Markdown table goes to stdout (exit status 0 only when no news was lost); ``--record LABEL`` writes it into
``benchmarks/RESULTS.md`` under "Soak: no news lost" (a block of the same label is replaced); ``--table-from DIR``
prints (and records) the table of a finished run again. Everything (worker logs, the producer's items,
``news.scored.jsonl``, ``soak.json`` with every key's counts) stays in ``--workdir`` (default
``runs/soak-<UTC time>/``, git-ignored). ``--code DIR`` runs the workers and the offline reference from another source
tree, e.g. a commit while the working tree is being edited: ``git archive REV | tar -x -C DIR``.

    python benchmarks/soak.py --items 3000 --rate 25 --kills 4 --outage-seconds 30          # smoke, ~2.5 min
    python benchmarks/soak.py --record LABEL                                                # full: 100,000 items

Full size (defaults): 100,000 items at 20/s = 83 min of production, 20 kills, a 300 s outage, a source 300 s
fast; about 90 min in all on the 2-core development machine. A run in which an item never reaches ``news.scored``
waits ``--stall-seconds`` (120 s) longer before it reports it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from finsentry.common.net import stop_process
from finsentry.common.paths import DATA_DIR, REPO_ROOT
from finsentry.ingest.broker import EmbeddedBroker
from finsentry.ingest.contract import iso_utc
from finsentry.ingest.kafka_clients import make_consumer, make_producer
from finsentry.ingest.replay_source import load_items
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_DLQ, NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Soak: no news lost"
EVENTS_DIR = REPO_ROOT.parent / "shared" / "data" / "events"
FAST_SOURCE = "fast-clock"
"""``source`` of the items the fast-clock source sends."""
RESTART_PAUSE_S = (1.0, 5.0)
"""A killed worker is restarted after a pause drawn uniformly from this range (seconds)."""
KILL_SPAN = (0.05, 0.95)
"""Kills fall in this part of the production period."""
SCRAPE_EVERY_S = 10.0
"""Seconds between two reads of every worker's counters (besides the read just before a kill or stop)."""
COUNTER_WORDS = ("late", "drop", "expir", "reconcil", "lost", "evict", "missing")
"""Aggregator metrics whose name holds one of these are reported besides the fixed ones (gauges too: e.g. a
reconciliation gauge that must read 0)."""


LAUNCHER = """\
import importlib.machinery, importlib.util, runpy, sys
ROOT = {root!r}
ROOMS = {{"finsentry": "finsentry", "finsentry.alerts": "alerts", "finsentry.ingest": "ingest",
         "finsentry.model": "model", "finsentry.monitor": "monitor"}}


class Redirect:
    \"\"\"Import finsentry from ROOT, ahead of the editable install's finder.\"\"\"

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname in ROOMS:
            folder = f"{{ROOT}}/{{ROOMS[fullname]}}"
            return importlib.util.spec_from_file_location(
                fullname, f"{{folder}}/__init__.py", submodule_search_locations=[folder]
            )
        parent = fullname.rpartition(".")[0]
        if parent in ROOMS:
            return importlib.machinery.PathFinder.find_spec(fullname, [f"{{ROOT}}/{{ROOMS[parent]}}"])
        return None


sys.meta_path.insert(0, Redirect)
if len(sys.argv) > 1 and sys.argv[1].endswith(".py"):
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    from finsentry.cli import main

    sys.exit(main())
"""
"""A ``finsentry`` entry point that imports the package from another source tree (``--code``); with a ``.py`` file
as its first argument it runs that script instead."""


def write_launcher(code: Path, path: Path) -> Path:
    """An executable ``finsentry`` for the source tree ``code`` (a checkout or ``git archive`` of this repository),
    run by this interpreter (so with this environment's dependencies)."""
    path.write_text(f"#!{sys.executable}\n" + LAUNCHER.format(root=str(code.resolve())), encoding="utf-8")
    path.chmod(0o755)
    return path


def sibling(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (benchmarks are scripts, not a package), once per process."""
    mod_name = f"finsentry_{name}_bench"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


scale = sibling("scale")


# ----------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Action:
    """One planned disturbance, ``t`` seconds after the producer starts.

    ``kind``: ``kill`` (kill -9 one ``verb`` worker, restart it ``pause`` s later), ``outage_start`` /
    ``outage_end`` (stop all scorers / start them again).
    """

    t: float
    kind: str
    verb: str = "scorer"
    pause: float = 0.0


def plan(rng: random.Random, production_s: float, kills: int, outage_at: float, outage_s: float) -> list[Action]:
    """The run's disturbances in time order: ``kills`` kills at random moments of the middle 90 % of the production
    period (victim kind 50/50; a scorer kill that falls in the outage becomes an aggregator kill) and the outage.

    >>> [(a.t, a.kind, a.verb) for a in plan(random.Random(3), 100.0, 2, 0.5, 10.0)]  # doctest: +NORMALIZE_WHITESPACE
    [(26.417, 'kill', 'scorer'), (50.0, 'outage_start', 'scorer'), (59.353, 'kill', 'aggregator'),
     (60.0, 'outage_end', 'scorer')]
    """
    actions = []
    outage = (outage_at * production_s, outage_at * production_s + outage_s) if outage_s > 0 else None
    for _ in range(kills):
        t = rng.uniform(KILL_SPAN[0] * production_s, KILL_SPAN[1] * production_s)
        verb = rng.choice(("scorer", "aggregator"))
        if verb == "scorer" and outage and outage[0] <= t <= outage[1]:
            verb = "aggregator"
        actions.append(Action(round(t, 3), "kill", verb, round(rng.uniform(*RESTART_PAUSE_S), 3)))
    if outage:
        actions += [Action(outage[0], "outage_start"), Action(outage[1], "outage_end")]
    return sorted(actions, key=lambda a: a.t)


# ----------------------------------------------------------------------------------------------- the items
def pool_rows(limit: int, events_dir: Path = EVENTS_DIR) -> Iterator[dict[str, Any]]:
    """Real items without times (``id, text`` and ``source``, ``lang``, ``tickers``, ``url`` where known): StockNet
    tweets in event-time order, then the event streams' headlines (if ``events_dir`` exists), then again from the
    start; ``limit`` items in all."""
    sources: list[list[dict[str, Any]]] = []
    loaded = load_items([DATA_DIR / "stocknet_tweets" / "monthly"])
    stocknet = [{k: v for k, v in i.value.items() if k != "published_at"} for i in loaded.items]
    sources.append([row | {"source": "stocknet"} for row in stocknet])
    if limit > len(sources[0]) and events_dir.is_dir():
        events = sibling("events")
        for path in sorted(events_dir.glob("*.csv*")):
            rows = events.load_rows(path)
            sources.append([{k: v for k, v in r.items() if k != "published_at" and v is not None} for r in rows])
    flat = [row for rows in sources for row in rows]
    if not flat:
        raise SystemExit("no items found under data/stocknet_tweets/monthly")
    for n in range(limit):
        yield flat[n % len(flat)]


def soak_items(
    rows: Iterable[dict[str, Any]], rng: random.Random, skew_fraction: float, skew_span: tuple[float, float]
) -> list[dict[str, Any]]:
    """``news.raw`` items (without ``published_at``, which the producer stamps) with unique ids
    ``<sequence>-<original id>``; a ``skew_fraction`` of those in the ``skew_span`` part of the sequence is marked
    ``fast`` (dated ahead by the producer) with ``source`` = :data:`FAST_SOURCE`.

    >>> items = soak_items([{"id": "a", "text": "x"}] * 4, random.Random(0), 1.0, (0.5, 1.0))
    >>> [(i["id"], i.get("source"), i["fast"]) for i in items]  # doctest: +NORMALIZE_WHITESPACE
    [('000000-a', None, False), ('000001-a', None, False), ('000002-a', 'fast-clock', True),
     ('000003-a', 'fast-clock', True)]
    """
    rows = list(rows)
    lo, hi = skew_span[0] * len(rows), skew_span[1] * len(rows)
    out = []
    for n, row in enumerate(rows):
        fast = lo <= n < hi and rng.random() < skew_fraction
        item = dict(row) | {"id": f"{n:06d}-{row['id']}", "fast": fast}
        if fast:
            item["source"] = FAST_SOURCE
        out.append(item)
    return out


# ----------------------------------------------------------------------------------------------- the producer
def produce(argv: list[str]) -> int:
    """The producer process: ``produce --bootstrap HOST:PORT --items FILE --rate R --skew-seconds S --out FILE``.

    Sends the items of FILE (JSON lines of :func:`soak_items`) to ``news.raw``, item *i* ``i / R`` s after the
    start, ``published_at`` = the wall clock at send time (+ S for ``fast`` items); writes its progress to
    ``--out`` every second and a final summary (sent, acknowledged, failed ids) when done or on SIGTERM.
    """
    parser = argparse.ArgumentParser(prog="soak.py produce")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--skew-seconds", type=float, default=0.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    items = [json.loads(line) for line in args.items.read_text(encoding="utf-8").splitlines()]
    producer = make_producer(KafkaSettings(bootstrap_servers=args.bootstrap))
    lock = threading.Lock()
    acked, failed = [0], []
    state: dict[str, Any] = {"items": len(items), "sent": 0, "fast": 0, "done": False}

    def on_ack(_meta: Any) -> None:
        with lock:
            acked[0] += 1

    def write(final: bool = False) -> None:
        with lock:
            body = state | {"acked": acked[0], "failed_ids": list(failed), "done": final}
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(body), encoding="utf-8")
        tmp.replace(args.out)

    start, last_write = time.monotonic(), 0.0
    state["started_at"] = iso_utc(datetime.now(UTC))
    for n, item in enumerate(items):
        due = start + n / args.rate
        while (wait := due - time.monotonic()) > 0 and not stop.is_set():
            stop.wait(min(wait, 1.0))
        if stop.is_set():
            break
        now = datetime.now(UTC).replace(microsecond=0)
        fast = item.pop("fast", False)
        value = item | {"published_at": iso_utc(now + timedelta(seconds=args.skew_seconds) if fast else now)}
        future = producer.send(NEWS_RAW, key=item["id"].encode(), value=json.dumps(value).encode())
        item_id = item["id"]
        future.add_callback(on_ack)
        future.add_errback(lambda _exc, i=item_id: failed.append(i))
        state["sent"] += 1
        state["fast"] += int(fast)
        if time.monotonic() - last_write >= 1.0:
            last_write = time.monotonic()
            write()
    producer.flush(timeout=60)
    producer.close(timeout=10)
    state["elapsed_s"] = round(time.monotonic() - start, 1)
    state["stopped"] = stop.is_set()
    write(final=True)
    return 0


# ----------------------------------------------------------------------------------------------- the tap
class Tap(threading.Thread):
    """Reads ``news.raw``, ``news.scored``, ``news.dlq`` and ``sentiment.keyed`` from the start, without a group.

    Keeps the ids seen on each topic, writes every ``news.scored`` value to ``scored_path`` (one per line, in
    partition order: the copies of one id share its partition), remembers each id's first topic and sentiment and
    the ids whose later copies differ, the dead letters' reasons and the end offset of every keyed partition.
    """

    def __init__(self, broker: EmbeddedBroker, scored_path: Path) -> None:
        super().__init__(name="soak-tap", daemon=True)
        self.broker = broker
        self.scored_path = scored_path
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.raw_ids: set[str] = set()
        self.scored_copies: Counter[str] = Counter()
        self.first_label: dict[str, tuple[Any, Any]] = {}
        self.relabelled: set[str] = set()
        self.dlq_ids: dict[str, str] = {}
        self.dlq_other: Counter[str] = Counter()
        self.keyed_end: dict[int, int] = {}
        self.keyed_records = 0
        self.last_record = time.monotonic()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Poll until :meth:`stop`; the consumer is closed on the way out."""
        try:
            consumer = make_consumer(
                self.broker.kafka_settings(), None, NEWS_RAW, NEWS_SCORED, NEWS_DLQ, SENTIMENT_KEYED
            )
            with self.scored_path.open("ab") as out:
                try:
                    while not self.stop_event.is_set():
                        batch = consumer.poll(timeout_ms=500, max_records=5000)
                        with self.lock:
                            for tp, records in batch.items():
                                self._take(tp.topic, tp.partition, records, out)
                        out.flush()
                finally:
                    consumer.close(autocommit=False)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _take(self, topic: str, partition: int, records: list, out) -> None:
        if records:
            self.last_record = time.monotonic()
        for rec in records:
            if topic == NEWS_RAW:
                self.raw_ids.add(rec.key.decode("utf-8", "replace") if rec.key else "")
            elif topic == NEWS_SCORED:
                out.write(rec.value + b"\n")
                value = json.loads(rec.value)
                item_id = value["id"]
                self.scored_copies[item_id] += 1
                label = (value.get("topic"), value.get("sentiment"))
                if self.first_label.setdefault(item_id, label) != label:
                    self.relabelled.add(item_id)
            elif topic == NEWS_DLQ:
                headers = {k: v.decode("utf-8", "replace") for k, v in rec.headers or []}
                item_id = rec.key.decode("utf-8", "replace") if rec.key else dlq_id(rec.value)
                if headers.get("source_topic") == NEWS_RAW and item_id:
                    self.dlq_ids.setdefault(item_id, headers.get("reason", "?"))
                else:
                    self.dlq_other[f"{headers.get('source_topic', '?')}:{headers.get('reason', '?')}"] += 1
            else:
                self.keyed_records += 1
                self.keyed_end[partition] = max(self.keyed_end.get(partition, 0), rec.offset + 1)

    def stop(self) -> None:
        """Ask the thread to end and wait for it (bounded)."""
        self.stop_event.set()
        self.join(timeout=10)

    def covered(self, ids: set[str]) -> int:
        """How many of ``ids`` are on ``news.scored`` or dead-lettered from ``news.raw``."""
        with self.lock:
            return sum(1 for i in ids if i in self.scored_copies or i in self.dlq_ids)


def dlq_id(value: bytes | None) -> str | None:
    """The ``id`` of a dead letter's original bytes, if they are a JSON object with one.

    >>> dlq_id(b'{"id": "7", "text": "x"}'), dlq_id(b"not json"), dlq_id(None)
    ('7', None, None)
    """
    try:
        obj = json.loads(value or b"")
    except ValueError:
        return None
    return str(obj["id"]) if isinstance(obj, dict) and "id" in obj else None


# ----------------------------------------------------------------------------------------------- counting
Counts = tuple[int, int, int, int]
"""items, negative, neutral, positive."""


def fan_out_totals(records: Iterable[dict[str, Any]]) -> dict[str, Counts]:
    """Per aggregate key, the counts of ``news.scored`` records fanned out as the scorer does (no aggregator).

    >>> fan_out_totals([{"topic": "Markets", "tickers": ["AAPL"], "sentiment": "negative"}])["ticker:AAPL"]
    (1, 1, 0, 0)
    """
    from finsentry.ingest.contract import aggregate_keys

    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    col = {"negative": 1, "neutral": 2, "positive": 3}
    for r in records:
        for key in aggregate_keys(r.get("topic"), r.get("tickers")):
            c = out[key]
            c[0] += 1
            c[col[r["sentiment"]]] += 1
    return {k: tuple(v) for k, v in out.items()}  # type: ignore[misc]


def closed_totals(closed: Iterable[Any]) -> dict[str, Counts]:
    """Per key, the sums of closed buckets (objects with ``key, items, negative, neutral, positive``)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for c in closed:
        v = out[c.key]
        v[0] += c.items
        v[1] += c.negative
        v[2] += c.neutral
        v[3] += c.positive
    return {k: tuple(v) for k, v in out.items() if v[0]}  # type: ignore[misc]


@dataclass
class Comparison:
    """Live against offline counts, per key."""

    keys_live: int
    keys_offline: int
    equal: int
    differing: list[dict[str, Any]]
    items_live: int
    items_offline: int

    @property
    def missing_keys(self) -> int:
        """Keys the offline run has and the live aggregators do not."""
        return sum(1 for d in self.differing if d["live"] is None)


def compare(live: dict[str, Counts], offline: dict[str, Counts]) -> Comparison:
    """Every key of either side; ``differing`` sorted by the size of the item difference, largest first.

    >>> live = {"all": (3, 1, 1, 1), "k": (1, 0, 1, 0)}
    >>> c = compare(live, {"all": (4, 2, 1, 1), "k": (1, 0, 1, 0), "x": (2, 0, 2, 0)})
    >>> c.equal, [(d["key"], d["delta"]) for d in c.differing], c.missing_keys
    (1, [('x', (-2, 0, -2, 0)), ('all', (-1, -1, 0, 0))], 1)
    """
    differing = []
    equal = 0
    for key in sorted(set(live) | set(offline)):
        a, b = live.get(key), offline.get(key)
        if a == b:
            equal += 1
            continue
        delta = tuple((x or 0) - (y or 0) for x, y in zip(a or (0,) * 4, b or (0,) * 4, strict=True))
        differing.append({"key": key, "live": a, "offline": b, "delta": delta})
    differing.sort(key=lambda d: (-abs(d["delta"][0]), -sum(map(abs, d["delta"])), d["key"]))
    return Comparison(
        keys_live=len(live),
        keys_offline=len(offline),
        equal=equal,
        differing=differing,
        items_live=sum(v[0] for v in live.values()),
        items_offline=sum(v[0] for v in offline.values()),
    )


def metric_samples(text: str) -> dict[str, float]:
    """``name{label=value,...}`` -> value of every ``*_total`` sample of a Prometheus exposition, and of every sample
    whose name holds one of :data:`COUNTER_WORDS`.

    >>> text = '# TYPE x counter\\nx_total{reason="a"} 2.0\\nx_created 9.0\\n# TYPE g gauge\\ng 1.0\\nlost_g 3.0\\n'
    >>> metric_samples(text)
    {'x_total{reason=a}': 2.0, 'lost_g': 3.0}
    """
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            if s.name.endswith("_total") or any(w in s.name for w in COUNTER_WORDS):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                name = f"{s.name}{{{labels}}}" if labels else s.name
                out[name] = out.get(name, 0.0) + s.value
    return out


def label_values(samples: dict[str, float], name: str, label: str) -> dict[str, float]:
    """Value of ``label`` -> sum of the samples of ``name`` carrying it.

    >>> label_values({"x_total{key=all}": 2.0, "x_total{key=all,p=1}": 1.0, "x_total": 4.0}, "x_total", "key")
    {'all': 3.0}
    """
    out: dict[str, float] = {}
    for series, v in samples.items():
        if not series.startswith(name + "{"):
            continue
        for pair in series[len(name) + 1 : -1].split(","):
            k, _, value = pair.partition("=")
            if k == label:
                out[value] = out.get(value, 0.0) + v
    return out


def sum_counters(lives: Iterable[dict[str, float]]) -> dict[str, float]:
    """Series -> sum over process lives.

    >>> sum_counters([{"a": 1.0}, {"a": 2.0, "b": 1.0}])
    {'a': 3.0, 'b': 1.0}
    """
    out: dict[str, float] = {}
    for life in lives:
        for k, v in life.items():
            out[k] = out.get(k, 0.0) + v
    return out


def by_name(counters: dict[str, float], name: str) -> float:
    """Sum of every label set of counter ``name``.

    >>> by_name({"x_total{reason=a}": 2.0, "x_total{reason=b}": 1.0, "xy_total": 5.0}, "x_total")
    3.0
    """
    return sum(v for k, v in counters.items() if k == name or k.startswith(name + "{"))


def upsert_block(text: str, head: str, block: str, intro: str) -> str:
    """``text`` (a Markdown file) with ``block`` (starting ``### LABEL``) replacing the block of the same label under
    section ``head``, or appended at the end of that section; the section (``head`` + ``intro``) is created at the
    end of the file if missing.

    >>> t = upsert_block("# R\\n\\n## A\\n\\nx\\n", "## S", "### one\\n\\n1", "intro")
    >>> t = upsert_block(t, "## S", "### two\\n\\n2", "intro")
    >>> print(upsert_block(t, "## S", "### one\\n\\n3", "intro"))
    # R
    <BLANKLINE>
    ## A
    <BLANKLINE>
    x
    <BLANKLINE>
    ## S
    <BLANKLINE>
    intro
    <BLANKLINE>
    ### one
    <BLANKLINE>
    3
    <BLANKLINE>
    ### two
    <BLANKLINE>
    2
    <BLANKLINE>
    """
    if head not in text.splitlines():
        text = text.rstrip("\n") + f"\n\n{head}\n\n{intro}\n"
    at = text.index(head)
    section_end = text.find("\n## ", at + len(head))
    section_end = len(text) if section_end < 0 else section_end + 1
    section = text[at:section_end]
    label_line = block.splitlines()[0]
    start = section.find(label_line + "\n")
    if start >= 0:
        stop = section.find("\n### ", start + 1)
        stop = len(section) if stop < 0 else stop + 1
        section = section[:start] + block.rstrip("\n") + "\n\n" + section[stop:].lstrip("\n")
    else:
        section = section.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"
    section = section.rstrip("\n") + "\n" + ("\n" if section_end < len(text) else "")
    return text[:at] + section + text[section_end:]


# ----------------------------------------------------------------------------------------------- the run
@dataclass
class Soak:
    """One soak run: the cluster, the plan, what happened."""

    args: argparse.Namespace
    workdir: Path
    env: dict[str, str]
    log: list[dict[str, Any]] = field(default_factory=list)
    lives: dict[str, dict[str, float]] = field(default_factory=dict)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    cluster: Any = None
    t0: float = 0.0
    reform_from: float | None = None
    reform_s: float | None = None

    def check_reform(self) -> None:
        """After the outage: note when the new scorers hold every ``news.raw`` partition (from their logs)."""
        if self.reform_from is None or self.reform_s is not None:
            return
        held = set().union(*(w.scorer_partitions() for w in self.live("scorer")))
        if held == set(range(self.args.partitions)):
            self.reform_s = round(time.monotonic() - self.reform_from, 1)
            self.event("scorer group re-formed", seconds=self.reform_s)

    def say(self, msg: str) -> None:
        """Progress line on stderr, with the seconds since the producer started."""
        t = time.monotonic() - self.t0 if self.t0 else 0.0
        print(f"[soak {t:7.1f} s] {msg}", file=sys.stderr, flush=True)

    def event(self, kind: str, **what: Any) -> None:
        """Log an event of the run (kept in soak.json)."""
        self.log.append({"t": round(time.monotonic() - self.t0, 1) if self.t0 else 0.0, "kind": kind, **what})
        self.say(f"{kind} {what}")

    def scrape(self, worker: Any) -> None:
        """Remember the worker's counters (its last answer counts for its life)."""
        with contextlib.suppress(OSError, ValueError):
            self.lives[worker.name] = metric_samples(worker.get("/metrics", timeout_s=3.0).decode())

    def live(self, verb: str) -> list[Any]:
        """Running workers of ``verb``."""
        return self.cluster.live(verb)

    def top_up(self, verb: str, want: int) -> None:
        """Start ``verb`` workers until ``want`` run."""
        for _ in range(want - len(self.live(verb))):
            w = self.cluster.start(verb)
            self.event("start", worker=w.name)

    def kill(self, verb: str, rng: random.Random) -> str | None:
        """kill -9 a random live ``verb`` worker (the other kind if none runs); returns its name."""
        victims = self.live(verb) or self.live("aggregator" if verb == "scorer" else "scorer")
        if not victims:
            return None
        victim = rng.choice(victims)
        self.scrape(victim)
        self.cluster.kill9(victim)
        self.event("kill -9", worker=victim.name)
        return victim.verb

    def stop_verb(self, verb: str, how: str = "term") -> None:
        """Stop every ``verb`` worker at once, counters read first: ``term`` gracefully (SIGTERM; SIGKILL after
        20 s), ``kill`` with kill -9."""
        victims = self.live(verb)
        for w in victims:
            self.scrape(w)
            w._stopped = True
            if how == "kill":
                w.process.kill()
            else:
                w.process.terminate()
        for w in victims:
            try:
                w.process.wait(20)
            except subprocess.TimeoutExpired:
                w.kill9()
            self.event("stop", worker=w.name, returncode=w.process.returncode)

    def check_workers(self, pending: list[tuple[float, str]], now: float) -> None:
        """Report and schedule a restart of any worker that exited without being told to."""
        for w in self.cluster.workers:
            if w.process.poll() is not None and not getattr(w, "_stopped", False):
                w._stopped = True
                tail = w.log_path.read_text(errors="replace").splitlines()[-8:]
                self.unexpected.append({"worker": w.name, "returncode": w.process.returncode, "log_tail": tail})
                self.event("unexpected exit", worker=w.name, returncode=w.process.returncode)
                pending.append((now + RESTART_PAUSE_S[0], w.verb))


def caught_up(aggregators: list[Any], ends: dict[int, int], partitions: int) -> bool:
    """Every ``sentiment.keyed`` partition is held by exactly one of ``aggregators``, read to ``ends[p]`` and not
    replaying (``/api/health``)."""
    held: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for w in aggregators:
        try:
            health = json.loads(w.get("/api/health", timeout_s=3.0))
        except (OSError, ValueError):
            return False
        for p, info in health.get("partitions", {}).items():
            held[int(p)].append(info)
    for p in range(partitions):
        infos = held.get(p, [])
        if len(infos) != 1 or infos[0].get("replaying") or infos[0].get("offset", -1) < ends.get(p, 0):
            return False
    return True


def live_totals(aggregators: list[Any], window: str) -> dict[str, Counts] | None:
    """Per key, the counts of the ``window`` view of ``/api/trends`` over ``aggregators``; None while a key is on
    two of them (a rebalance) or one does not answer."""
    out: dict[str, Counts] = {}
    for w in aggregators:
        try:
            keys = json.loads(w.get(f"/api/trends?window={window}&limit={API_MAX_KEYS}", timeout_s=30.0))["keys"]
        except (OSError, ValueError, KeyError):
            return None
        for key, views in keys.items():
            if key in out:
                return None
            v = views[window]
            out[key] = (v["items"], v["negative"], v["neutral"], v["positive"])
    return out


def monitor_settings(env: dict[str, str]) -> Any:
    """The monitor settings the workers run with: defaults plus ``env`` (the ``--set`` values), nothing else."""
    from finsentry.settings import load_settings

    saved = {k: v for k, v in os.environ.items() if k.startswith("FINSENTRY_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update(env)
        return load_settings().monitor
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)


def offline_totals(scored_path: Path, settings: Any) -> dict[str, Any]:
    """The clean offline run: the first copy of each id on ``news.scored`` through
    :func:`finsentry.monitor.report.backfill`; per key the sums of its closed buckets (``offline``), the plain fan-out
    count of the same records (``plain``), and the backfill's ``stats``."""
    from finsentry.monitor.report import backfill

    first: dict[str, dict[str, Any]] = {}
    with scored_path.open("rb") as f:
        for line in f:
            rec = json.loads(line)
            first.setdefault(rec["id"], rec)
    records = list(first.values())
    result = backfill(records, settings)
    return {"offline": closed_totals(result.closed), "plain": fan_out_totals(records), "stats": dict(result.stats)}


def helper(argv: list[str]) -> int:
    """Steps run in a child process with the workers' code (``--code``): ``settings [--set K=V ...]`` prints the
    monitor settings as JSON; ``offline --scored FILE [--set K=V ...]`` prints :func:`offline_totals`."""
    parser = argparse.ArgumentParser(prog="soak.py " + argv[0])
    parser.add_argument("--scored", type=Path)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv[1:])
    settings = monitor_settings(dict(kv.split("=", 1) for kv in args.set))
    if argv[0] == "settings":
        out = settings.model_dump(mode="json") | {"window_names": settings.window_names}
    else:
        out = offline_totals(args.scored, settings)
    json.dump(out, sys.stdout)
    return 0


def in_workers_code(python: list[str], step: str, *extra: str, sets: Iterable[str] = ()) -> dict[str, Any]:
    """Run :func:`helper` ``step`` with the workers' code (``python``: this interpreter or the ``--code`` launcher).

    Raises:
        RuntimeError: the step failed (its stderr tail in the message).
    """
    cmd = [*python, str(Path(__file__).resolve()), step, *extra, *(f"--set={kv}" for kv in sets)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(f"soak.py {step} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


API_MAX_KEYS = 100_000
"""``monitor.api_max_keys`` of the soak's aggregators and the ``limit`` it asks for: every key, not the busiest 500."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak (module doc); returns everything the table and ``soak.json`` need."""
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    # every key must be listed by /api/trends (its answer is capped at monitor.api_max_keys, default 500)
    args.set = [f"FINSENTRY_MONITOR__API_MAX_KEYS={API_MAX_KEYS}", *args.set]
    env = dict(kv.split("=", 1) for kv in args.set)
    python = [sys.executable]
    if args.code is not None:
        python = [str(write_launcher(args.code, workdir / "finsentry-code"))]
        scale.FINSENTRY = python[0]  # the workers Cluster.start launches
    settings = in_workers_code(python, "settings", sets=args.set)
    windows = settings["window_names"]
    window = max(windows, key=windows.get)
    production_s = args.items / args.rate
    if windows[window] < production_s + args.outage_seconds + args.skew_seconds + 600:
        raise SystemExit(f"the longest window ({window}) must span the run; add a longer one with --set")
    rng = random.Random(args.seed)
    items = soak_items(pool_rows(args.items, args.events), rng, args.skew_fraction, tuple(args.skew_span))
    items_path = workdir / "items.jsonl"
    items_path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    sent_ids = {i["id"] for i in items}
    actions = plan(rng, production_s, args.kills, args.outage_at, args.outage_seconds)
    partitions = DEFAULT_PARTITIONS | dict.fromkeys((NEWS_RAW, NEWS_SCORED, SENTIMENT_KEYED), args.partitions)
    soak = Soak(args, workdir, env)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": os.getloadavg()[0],
        "window": window,
        "grace_seconds": settings["grace_seconds"],
        "bucket_seconds": settings["bucket_seconds"],
        "max_future_seconds": settings["max_future_seconds"],
        "code": code_description(args.code),
        "fast_items": sum(i["fast"] for i in items),
        "texts": len({i["text"] for i in items}),
    }
    producer: subprocess.Popen | None = None
    tap: Tap | None = None
    wall0 = time.monotonic()
    broker = EmbeddedBroker(port=0, partitions=partitions, log_file=workdir / "broker.log")
    soak.cluster = scale.Cluster(broker, args.model, workdir, env)
    try:
        broker.start()
        tap = Tap(broker, workdir / "news.scored.jsonl")
        tap.start()
        soak.top_up("aggregator", args.aggregators)
        soak.top_up("scorer", args.scorers)
        scale.wait_for(lambda: soak.cluster.balanced("scorer", args.partitions), 300, "scorers to share", 1.0)
        scale.wait_for(lambda: soak.cluster.balanced("aggregator", args.partitions), 300, "aggregators", 1.0)
        progress_path = workdir / "producer.json"
        producer = subprocess.Popen(
            [sys.executable, __file__, "produce", "--bootstrap", broker.bootstrap_servers, "--items",
             str(items_path), "--rate", str(args.rate), "--skew-seconds", str(args.skew_seconds), "--out",
             str(progress_path)],
            stdout=(workdir / "producer.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        soak.t0 = time.monotonic()
        soak.event("producer started", items=len(items), rate=args.rate, planned=len(actions))
        meta["disturbed"] = soak_loop(soak, actions, producer, rng, production_s, tap)
        meta["producer"] = json.loads(progress_path.read_text()) if progress_path.exists() else {}
        drained = drain(soak, tap, sent_ids - set(meta["producer"].get("failed_ids", [])), args)
        meta.update(drained)
        meta["outage_reform_s"] = soak.reform_s
        aggs = soak.live("aggregator")
        live = None
        for _ in range(20):
            live = live_totals(aggs, window)
            if live is not None:
                break
            time.sleep(2)
        meta["health"] = {}
        for w in aggs:
            with contextlib.suppress(OSError, ValueError):
                h = json.loads(w.get("/api/health", timeout_s=5.0))
                meta["health"][w.name] = {k: h.get(k) for k in ("records", "accepted", "late", "duplicates", "future")}
        for w in soak.cluster.workers:
            if w.process.poll() is None:
                soak.scrape(w)
                meta.setdefault("final_workers", []).append(w.name)
    finally:
        with signals_ignored():  # a second Ctrl-C must not leave workers behind
            if producer is not None:
                stop_process(producer, 10)
            stop_workers(soak.cluster.workers)
            if tap is not None:
                tap.stop()
            broker.stop()
    meta["wall_s"] = round(time.monotonic() - wall0)
    meta["load_end"] = os.getloadavg()[0]
    if tap.error is not None:
        raise RuntimeError(f"the tap failed: {tap.error!r}")
    soak.say("offline backfill over news.scored ...")
    ref = in_workers_code(python, "offline", "--scored", str(workdir / "news.scored.jsonl"), sets=args.set)
    offline = {k: tuple(v) for k, v in ref["offline"].items()}
    plain = {k: tuple(v) for k, v in ref["plain"].items()}
    stats = ref["stats"]
    comparison = compare(live or {}, offline)
    scorer_lives = [v for k, v in soak.lives.items() if k.startswith("scorer")]
    agg_lives = [v for k, v in soak.lives.items() if k.startswith("aggregator")]
    final_aggs = [v for k, v in soak.lives.items() if k.startswith("aggregator") and k in meta.get("final_workers", [])]
    acked = sent_ids - set(meta["producer"].get("failed_ids", []))
    return {
        "meta": meta,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "sent": meta["producer"].get("acked", 0),
        "raw_distinct": len(tap.raw_ids & sent_ids),
        "scored_records": sum(tap.scored_copies.values()),
        "scored_distinct": len(tap.scored_copies),
        "relabelled": len(tap.relabelled),
        "dlq": dict(Counter(tap.dlq_ids.values())),
        "dlq_other": dict(tap.dlq_other),
        "missing": sorted(i for i in acked if i not in tap.scored_copies and i not in tap.dlq_ids),
        "scored_and_dlq": len(set(tap.scored_copies) & set(tap.dlq_ids)),
        "keyed_records": tap.keyed_records,
        "live_read": live is not None,
        "comparison": asdict(comparison) | {"missing_keys": comparison.missing_keys},
        "offline_equals_fan_out": offline == plain,
        "offline_stats": stats,
        "aggregator_counters": {k: v for k, v in sum_counters(agg_lives).items() if k.split("{")[0].endswith("_total")},
        "aggregator_gauges_final": {
            k: v for k, v in sum_counters(final_aggs).items() if not k.split("{")[0].endswith("_total")
        },
        "aggregator_lives": len(agg_lives),
        "scorer_counters": {k: v for k, v in sum_counters(scorer_lives).items() if "bucket" not in k},
        "scorer_lives": len(scorer_lives),
        "log": soak.log,
        "unexpected_exits": soak.unexpected,
    }


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside (the main thread's cleanup), the previous handlers restored after."""
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def stop_workers(workers: list[Any], timeout_s: float = 20.0) -> None:
    """SIGTERM every running worker at once (graceful: commit, leave the group), SIGKILL what is left after
    ``timeout_s``; each worker is waited for."""
    running = [w for w in workers if w.process.poll() is None]
    for w in running:
        w._stopped = True
        w.process.terminate()
    deadline = time.monotonic() + timeout_s
    for w in running:
        try:
            w.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait(10)


def soak_loop(
    soak: Soak, actions: list[Action], producer: subprocess.Popen, rng: random.Random, production_s: float, tap: Tap
) -> dict[str, int]:
    """Carry out ``actions`` while the producer runs; returns how many kills hit each kind. Bounded: the producer is
    stopped if it has not finished ``production_s`` + outage + 10 minutes after it started."""
    args = soak.args
    todo = list(actions)
    pending: list[tuple[float, str]] = []  # (time, verb) of restarts
    outage = False
    kills: Counter[str] = Counter()
    last_scrape = last_say = 0.0
    deadline = production_s + args.outage_seconds + 600
    while True:
        now = time.monotonic() - soak.t0
        if tap.error is not None:
            raise RuntimeError(f"the tap failed: {tap.error!r}")
        soak.check_workers(pending, now)
        while todo and todo[0].t <= now:
            a = todo.pop(0)
            if a.kind == "kill":
                verb = soak.kill(a.verb, rng)
                if verb:
                    kills[verb] += 1
                    pending.append((now + a.pause, verb))
            elif a.kind == "outage_start":
                outage = True
                soak.event("outage start", seconds=args.outage_seconds, signal=args.outage_signal)
                soak.stop_verb("scorer", args.outage_signal)
            else:
                outage = False
                soak.event("outage end")
                soak.top_up("scorer", args.scorers)
                soak.reform_from = time.monotonic()
        soak.check_reform()
        for entry in [p for p in pending if p[0] <= now]:
            pending.remove(entry)
            if not (outage and entry[1] == "scorer"):
                soak.top_up(entry[1], args.scorers if entry[1] == "scorer" else args.aggregators)
        if now - last_scrape >= SCRAPE_EVERY_S:
            last_scrape = now
            for w in soak.cluster.workers:
                if w.process.poll() is None:
                    soak.scrape(w)
        if now - last_say >= 30:
            last_say = now
            with tap.lock:
                scored, dlq, keyed = len(tap.scored_copies), len(tap.dlq_ids), tap.keyed_records
            soak.say(
                f"raw {len(tap.raw_ids)} scored {scored} dlq {dlq} keyed {keyed}; scorers {len(soak.live('scorer'))}"
                f" aggregators {len(soak.live('aggregator'))}; load {os.getloadavg()[0]:.1f}"
            )
        if producer.poll() is not None and not todo and not pending:
            break
        if now > deadline and producer.poll() is None:
            soak.event("producer overdue: stopped")
            producer.terminate()
        time.sleep(0.25)
    soak.event("producer done", returncode=producer.returncode)
    return dict(kills)


def drain(soak: Soak, tap: Tap, ids: set[str], args: argparse.Namespace) -> dict[str, Any]:
    """Wait until every id in ``ids`` is scored or dead-lettered (at most ``--drain-timeout`` s, and no longer than
    ``--stall-seconds`` without one more), then until ``sentiment.keyed`` has been quiet for 5 s and the aggregators
    have read every partition to its end (at most ``--drain-timeout`` s again). Returns the waits."""
    out: dict[str, Any] = {"scored_drained": False, "aggregators_drained": False}
    pending: list[tuple[float, str]] = []

    def keep_workers() -> None:
        soak.check_reform()
        soak.check_workers(pending, 0.0)
        for verb in {v for _, v in pending}:
            soak.top_up(verb, args.scorers if verb == "scorer" else args.aggregators)
        pending.clear()

    t_start = last_change = last_say = time.monotonic()
    covered = -1
    while time.monotonic() < t_start + args.drain_timeout and time.monotonic() < last_change + args.stall_seconds:
        keep_workers()
        now_covered = tap.covered(ids)
        if now_covered != covered:
            covered, last_change = now_covered, time.monotonic()
        if covered == len(ids):
            out["scored_drained"] = True
            break
        if time.monotonic() - last_say >= 30:
            last_say = time.monotonic()
            soak.say(f"waiting for news.scored / news.dlq: {covered} of {len(ids)} ids")
        time.sleep(1.0)
    out["scored_drain_s"] = round(time.monotonic() - t_start, 1)
    soak.event("scored drain", done=out["scored_drained"], covered=covered, of=len(ids))
    t_agg = last_say = time.monotonic()
    while time.monotonic() < t_agg + args.drain_timeout:
        keep_workers()
        with tap.lock:
            quiet = time.monotonic() - tap.last_record >= 5.0
            ends = dict(tap.keyed_end)
        if quiet and caught_up(soak.live("aggregator"), ends, args.partitions):
            out["aggregators_drained"] = True
            break
        if time.monotonic() - last_say >= 30:
            last_say = time.monotonic()
            soak.say("waiting for the aggregators to read sentiment.keyed to its end")
        time.sleep(1.0)
    out["aggregator_drain_s"] = round(time.monotonic() - t_agg, 1)
    soak.event("aggregator drain", done=out["aggregators_drained"])
    return out


# ----------------------------------------------------------------------------------------------- the table
def fmt_counts(c: Counts | None) -> str:
    """``items (neg/neu/pos)`` or ``-``.

    >>> fmt_counts((10, 2, 5, 3)), fmt_counts(None)
    ('10 (2/5/3)', '-')
    """
    return "-" if c is None else f"{c[0]} ({c[1]}/{c[2]}/{c[3]})"


def no_news_lost(r: dict[str, Any]) -> bool:
    """The verdict: nothing missing from ``news.scored`` (less dead letters) and every key's live counts equal to the
    offline run's (read from aggregators that had drained)."""
    drained = r["meta"].get("aggregators_drained", False)
    return not r["missing"] and not r["comparison"]["differing"] and r["live_read"] and drained


def markdown(r: dict[str, Any], label: str, top: int = 12) -> str:
    """The run's Markdown block (``r``: the run's ``soak.json``): a settings line, the checks table and the keys that
    differ most."""
    m, a, c = r["meta"], r["args"], r["comparison"]
    cpu, model_version = m.get("cpu") or cpu_description(), m.get("model_version", "?")
    agg = r["aggregator_counters"]
    missing = len(r["missing"])
    dup = r["scored_records"] - r["scored_distinct"]
    dlq_total = sum(r["dlq"].values())
    dlq_reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["dlq"].items())) or "none"
    rejected = {k.split("reason=")[1].rstrip("}"): v for k, v in agg.items() if "rejected_messages_total{" in k}
    names = {k.split("{")[0] for k in agg} - {"finsentry_late_events_total"}
    extra = {n: by_name(agg, n) for n in sorted(names) if any(w in n for w in COUNTER_WORDS)}
    gauges = r.get("aggregator_gauges_final", {})
    gauge_sums = {n: by_name(gauges, n) for n in sorted({k.split("{")[0] for k in gauges})}
    late_by_key = label_values(agg, "finsentry_late_events_total", "key")
    sc = r["scorer_counters"]
    kills = m.get("disturbed", {})
    reform_s = m.get("outage_reform_s")
    reform = "no outage" if not a["outage_seconds"] else "NEVER" if reform_s is None else f"after {reform_s:.0f} s"
    ok = no_news_lost(r)
    lines = [
        f"### {label}",
        "",
        f"{m['date']}; {cpu}; load avg {m['load_start']:.1f} at start, {m['load_end']:.1f} at the end; model "
        f"{model_version}; {a['partitions']} partitions; {a['scorers']} scorers, {a['aggregators']} aggregators "
        f"(defaults{', ' + ', '.join(a['set']) if a['set'] else ''}: bucket {m['bucket_seconds']} s, grace "
        f"{m['grace_seconds']} s, future tolerance {m['max_future_seconds']} s); {r['sent']} items at "
        f"{a['rate']:g}/s ({m['texts']} distinct real texts), seed {a['seed']}; kill -9: "
        f"{kills.get('scorer', 0)} scorer, {kills.get('aggregator', 0)} aggregator; outage of all scorers: "
        f"{a['outage_seconds']:g} s ({a.get('outage_signal', 'term')}) at {a['outage_at']:.0%} of the production "
        "period; fast source: "
        f"{m['fast_items']} items dated +{a['skew_seconds']:g} s; code: {m['code']}; wall time "
        f"{m['wall_s'] / 60:.0f} min.",
        "",
        "| check | result |",
        "|---|---|",
        f"| items sent (acknowledged) / distinct ids on news.raw | {r['sent']} / {r['raw_distinct']} |",
        f"| dead letters (news.dlq, by reason) | {dlq_total} ({dlq_reasons}) |",
        f"| distinct ids on news.scored | {r['scored_distinct']} |",
        f"| **missing** (sent, neither scored nor dead-lettered) | **{missing}** |",
        f"| duplicates on news.scored (records - distinct ids) | {dup} of {r['scored_records']} records "
        f"({r['relabelled']} ids re-scored to another topic or sentiment) |",
        f"| drained (scored / aggregators) | {'yes' if m['scored_drained'] else 'NO'} in {m['scored_drain_s']:.0f} s"
        f" / {'yes' if m['aggregators_drained'] else 'NO'} in {m['aggregator_drain_s']:.0f} s |",
        f"| scorers hold every news.raw partition again after the outage | {reform} |",
        f"| keys live / offline | {c['keys_live']} / {c['keys_offline']} |",
        f"| **keys whose counts differ from the offline run** | **{len(c['differing'])}** "
        f"({sum(1 for d in c['differing'] if d['live'] is None)} missing live) |",
        f"| items summed over keys, live / offline | {c['items_live']} / {c['items_offline']} "
        f"({c['items_live'] - c['items_offline']:+d}) |",
        f"| `/metrics` over {r['aggregator_lives']} aggregator lives: aggregated / **late** / duplicates | "
        f"{by_name(agg, 'finsentry_aggregated_messages_total'):.0f} / "
        f"**{by_name(agg, 'finsentry_late_events_total'):.0f}** / "
        f"{by_name(agg, 'finsentry_aggregator_duplicates_total'):.0f} |",
        f"| `/metrics` rejected by reason (future_event_time: dated beyond the tolerance) | "
        f"{', '.join(f'{k} {v:.0f}' for k, v in sorted(rejected.items())) or 'none'} |",
        f"| scorer `/metrics` over {r['scorer_lives']} scorer lives (read before each kill / stop): scored / dead "
        f"letters / duplicates skipped | "
        f"{by_name(sc, 'finsentry_scorer_scored_total'):.0f} / {by_name(sc, 'finsentry_dead_letters_total'):.0f} / "
        f"{by_name(sc, 'finsentry_scorer_duplicates_total'):.0f} |",
    ]
    if extra:
        lines.append(f"| other drop counters | {', '.join(f'`{k}` {v:.0f}' for k, v in extra.items())} |")
    if gauge_sums:
        lines.append(
            f"| drop / reconciliation gauges of the final aggregators | "
            f"{', '.join(f'`{k}` {v:.0f}' for k, v in gauge_sums.items())} |"
        )
    health = m.get("health", {})
    if health:
        late = sum(h.get("late") or 0 for h in health.values())
        future = sum(h.get("future") or 0 for h in health.values())
        lines.append(f"| `/api/health` of the final aggregators (rebuilt state): late / future | {late} / {future} |")
    if r["unexpected_exits"]:
        names = ", ".join(f"{u['worker']} (rc {u['returncode']})" for u in r["unexpected_exits"])
        lines.append(f"| workers that exited by themselves (restarted) | {names} |")
    if not r["offline_equals_fan_out"]:
        lines.append("| offline backfill vs plain fan-out count of the same records | DIFFER |")
    lines += ["", f"Verdict: **{'no news lost' if ok else 'news lost or miscounted'}**.", ""]
    if c["differing"]:
        all_row = [d for d in c["differing"] if d["key"] == "all"]
        rows = all_row + [d for d in c["differing"] if d["key"] != "all"][: top - len(all_row)]
        lines += [
            f"Keys that differ (`all` first, then the largest item differences; {len(c['differing'])} in all, every "
            "one in `soak.json`): items (negative/neutral/positive).",
            "",
            "| key | live | offline | difference |" + (" late counted for the key |" if late_by_key else ""),
            "|---|---|---|---|" + ("---|" if late_by_key else ""),
        ]
        for d in rows:
            late = f" {late_by_key.get(d['key'], 0):.0f} |" if late_by_key else ""
            lines.append(
                f"| `{d['key']}` | {fmt_counts(d['live'])} | {fmt_counts(d['offline'])} | "
                f"{d['delta'][0]:+d} ({d['delta'][1]:+d}/{d['delta'][2]:+d}/{d['delta'][3]:+d}) |{late}"
            )
    return "\n".join(lines)


def code_description(code: Path | None) -> str:
    """Which code the workers ran: ``--code DIR`` (with its git commit when it is a checkout) or the working tree at
    its commit, "+ uncommitted changes" when it has some."""
    root = code or REPO_ROOT

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *cmd], capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    if code is not None and not (code / ".git").exists():
        return f"source tree {code}"
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git(
        "status", "--porcelain", "--untracked-files=no", "--", "finsentry", "common", "ingest", "model", "monitor"
    )
    return f"{'source tree ' + str(code) + ' at ' if code else 'working tree at '}{head}" + (
        " + uncommitted changes" if dirty else ""
    )


def cpu_description() -> str:
    """CPU model, cores and SIMD flags (``benchmarks/pipeline.py``'s helper), or model and cores if it cannot load."""
    try:
        return sibling("pipeline").cpu_flags()
    except Exception:  # pipeline.py imports the scorer service; the soak does not need it to run
        return scale.cpu_model()


def main(argv: list[str] | None = None) -> int:
    """Command line (module doc); ``produce ...`` runs the producer process."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["produce"]:
        return produce(argv[1:])
    if argv[:1] in (["settings"], ["offline"]):
        return helper(argv)
    from finsentry.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items sent (default 100000)")
    parser.add_argument("--rate", type=float, default=20.0, help="items per second the producer sends (20)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of scorers and aggregators (20)")
    parser.add_argument("--outage-seconds", type=float, default=300.0, help="outage of all scorers, s (300; 0: none)")
    parser.add_argument("--outage-at", type=float, default=0.4, help="outage start, share of the production period")
    parser.add_argument(
        "--outage-signal", choices=("kill", "term"), default="kill",
        help="how the outage stops the scorers: kill -9 (default) or SIGTERM (graceful: they leave the group)",
    )  # fmt: skip
    parser.add_argument("--skew-seconds", type=float, default=300.0, help="how far the fast source's clock is ahead")
    parser.add_argument("--skew-fraction", type=float, default=0.02, help="share of items the fast source sends")
    parser.add_argument(
        "--skew-span", type=float, nargs=2, default=(0.0, 1.0), metavar=("FROM", "TO"),
        help="part of the production period the fast source sends in (shares; default 0 1: all of it)",
    )  # fmt: skip
    parser.add_argument("--partitions", type=int, default=6, help="partitions of news.raw/scored, sentiment.keyed")
    parser.add_argument("--scorers", type=int, default=2)
    parser.add_argument("--aggregators", type=int, default=2)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--drain-timeout", type=float, default=1200.0, help="longest wait for each end check, s")
    parser.add_argument(
        "--stall-seconds", type=float, default=120.0, help="stop waiting for news.scored after this long without news"
    )
    parser.add_argument("--set", action="append", default=[], metavar="FINSENTRY_X=V", help="worker setting")
    parser.add_argument(
        "--code", type=Path, default=None, metavar="DIR",
        help="run the workers and the offline reference from this source tree (e.g. `git archive HEAD | tar -x -C "
        "DIR`) instead of the working tree; this environment's dependencies",
    )  # fmt: skip
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: the code's shipped one)")
    parser.add_argument("--events", type=Path, default=EVENTS_DIR, help="extra real items beyond StockNet")
    parser.add_argument("--workdir", type=Path, default=None, help="default runs/soak-<UTC time>/")
    parser.add_argument("--record", metavar="LABEL", default=None, help="write the table into RESULTS.md")
    parser.add_argument("--top", type=int, default=12, help="keys listed in the table of differing keys (12)")
    parser.add_argument(
        "--table-from", type=Path, default=None, metavar="DIR", help="no run: the table of DIR/soak.json"
    )
    args = parser.parse_args(argv)
    if args.table_from is not None:
        result = json.loads((args.table_from / "soak.json").read_text(encoding="utf-8"))
        return report(result, args.record, args.top)
    if args.items < 1 or args.rate <= 0 or args.partitions < 1 or args.scorers < 1 or args.aggregators < 1:
        parser.error("--items, --rate, --partitions, --scorers and --aggregators must be positive")
    if not all(kv.startswith("FINSENTRY_") and "=" in kv for kv in args.set):
        parser.error("--set takes FINSENTRY_<SECTION>__<KEY>=VALUE")
    if args.code is not None and not (args.code / "finsentry" / "cli.py").is_file():
        parser.error(f"--code {args.code}: not a finsentry source tree (no finsentry/cli.py)")
    default_model = args.code / "model" / "artifacts" / "current" if args.code else load_settings().model.path
    args.model = Path(args.model or default_model).resolve()
    args.workdir = args.workdir or REPO_ROOT / "runs" / f"soak-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    labels = json.loads((args.model / "labels.json").read_text(encoding="utf-8"))
    cpu = cpu_description()

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background, where it is ignored
    result = run(args)
    result["meta"] |= {"cpu": cpu, "model_version": str(labels.get("model_version"))}
    (args.workdir / "soak.json").write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"work folder: {args.workdir}", file=sys.stderr)
    return report(result, args.record, args.top)


def report(result: dict[str, Any], label: str | None, top: int = 12) -> int:
    """Print the run's table (``top`` differing keys); with ``label``, write it into RESULTS.md (its own block
    replaced if there)."""
    md = markdown(result, label or "run", top)
    print(md)
    if label:
        intro = textwrap.fill(
            "Written by `python benchmarks/soak.py --record LABEL` (issue 15): real `finsentry scorer` / "
            "`finsentry aggregator` processes on the embedded broker, real news stamped with the wall clock by a "
            "producer process at a steady rate, kill -9 of workers at random moments, an outage of all scorers and a "
            "source whose clock is fast; the live aggregates are compared key by key with an offline run of the "
            "same aggregation over the same scored items (method: the module doc).",
            width=115,
        )
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
        RESULTS.write_text(upsert_block(text, SECTION, md, intro), encoding="utf-8")
    return 0 if no_news_lost(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
