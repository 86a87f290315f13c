"""``finsentry run``: the whole monitor on one host, composed from the services the single verbs run.

Start order (each step fails fast with a message naming the setting or option): read the replay source,
load the model, start the embedded broker and create the topics (or only create the topics on
``--bootstrap-servers``), the aggregator (HTTP: ``/metrics``, the JSON API, the dashboard, plus
``/api/pipeline``), the scorer (``/metrics``), the relay (bearer token generated for the run), optionally
Alertmanager and Prometheus with the shipped rules, then the replay. Everything runs under one
:class:`~finsentry.supervisor.Supervisor`; see there for how it stops.

Without ``--source`` it replays a named demo (:mod:`finsentry.ingest.demo_streams`): by default ``svb``, CNBC's
top-news headlines of 2023-02-27 .. 2023-03-24 (512, ~20 a day) at 8,000x, one day every 10.8 s, at the
monitor's default settings: the ``all`` key spikes on 2023-03-10, the day regulators closed Silicon Valley Bank,
about 2 minutes in. ``--demo stocknet`` replays the StockNet tweets around the 2015-08-24 sell-off with the
``stocknet`` preset.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka.errors import KafkaTimeoutError

from finsentry.common.net import any_reachable
from finsentry.ingest.consume_loop import flush_until_stopped
from finsentry.ingest.contract import iso_epoch, iso_utc
from finsentry.monitor.day_totals import DayTotals
from finsentry.run_alerting import check_alerting_binaries, start_alerting
from finsentry.run_console import Console, active_at, counts_text, day_line
from finsentry.run_options import RunError, RunOptions
from finsentry.run_status import CountingProducer, PipelineStatus, ReplayProgress
from finsentry.settings import Settings
from finsentry.supervisor import Supervisor

log = logging.getLogger(__name__)

EMBEDDED_NEWS_RAW_PARTITIONS = 1
"""``news.raw`` partitions on the embedded broker of ``finsentry run``. One scorer reads them; with several, a
backlog lets one partition run ahead of another by seconds of wall clock, which at 5,000x is hours of event
time, more than the grace period, and the aggregator would drop the other partitions' items as late. With one
partition the scorer reads in event-time order. (A real deployment's replay runs near real time.)"""
ASSIGNMENT_TIMEOUT_S = 30.0
"""Longest wait for the scorer and aggregator to get their partitions before the replay starts, seconds."""
STARTUP_TIMEOUT_S = 60.0
"""Longest wait for one service to become ready, seconds."""


class Pipeline:
    """One ``finsentry run``: start with :meth:`start`, then :meth:`watch` until stopped, then :meth:`stop`.

    Args:
        settings: loaded settings (the monitor preset and the run's overrides are applied here).
        options: :class:`RunOptions`. console: where spikes and progress lines go. supervisor: the supervisor.
    """

    def __init__(self, settings: Settings, options: RunOptions, console: Console, supervisor: Supervisor) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.sup = supervisor
        self.progress = ReplayProgress(speed=options.speed)
        self._own_workdir = options.workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="finsentry-run-")) if options.workdir is None else options.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file: Path | None = None
        self.items: list[Any] = []
        self.unusable: dict[str, int] = {}  # rows of the source not replayed, by reason (time range aside)
        self.services: dict[str, str] = {}
        self.aggregator = None
        self.scorer = None
        self.relay = None
        self.prometheus = None
        self.alertmanager = None
        self._days = DayTotals()
        self._closed: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()  # the all key's closed buckets
        self._all_closed_until: float | None = None  # end of the all key's last closed bucket, epoch seconds
        self._replay_reported = False

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Start every service (see the module doc).

        Raises:
            RunError: a source, the model, a port, the broker or Prometheus could not be used.
        """
        self._apply_preset()
        if self.options.with_prometheus:
            check_alerting_binaries()
        self._load_items()
        model, companies = self._load_model()
        self._start_kafka()
        self._start_aggregator()
        self._start_scorer(model, companies)
        self._start_relay()
        if self.options.with_prometheus:
            started = start_alerting(self.workdir, self.relay.url, self.token_file, self.services, self.sup.adopt)
            self.alertmanager, self.prometheus = started.alertmanager, started.prometheus
            self.services["alertmanager"] = started.alertmanager.url
            self.services["prometheus"] = started.prometheus.url
        self._add_status_route()

    def _apply_preset(self) -> None:
        if self.options.preset is None:
            return
        from pydantic import ValidationError

        from finsentry.monitor import settings as monitor_settings

        try:
            monitor = monitor_settings.preset(self.options.preset, self.settings.monitor)
        except (KeyError, ValidationError) as exc:
            raise RunError(f"--preset: {exc}", 2) from exc
        self.settings = self.settings.model_copy(update={"monitor": monitor})

    def _load_items(self) -> None:
        from finsentry.ingest.replay_source import load_items

        o = self.options
        what = "--source" if o.sources else f"--demo {o.demo.name}"
        try:
            paths = o.sources if o.sources else o.demo.paths(o.time_from, o.time_to)
            _refuse_repeated_files(paths)
            loaded = load_items(paths, time_from=o.time_from, time_to=o.time_to)
        except (FileNotFoundError, ValueError) as exc:
            raise RunError(f"{what}: {exc}", 2) from exc
        if not loaded.items:
            files = ", ".join(map(str, paths))
            missing = "; ".join(loaded.missing_columns)
            if missing and set(loaded.skipped) == {"unreadable_event_time"}:  # not 'unreadable event times'
                raise RunError(f"{what}: {missing}", 2)
            if o.time_from is None and o.time_to is None:
                problem = f"{what}: no valid item in {files}"
            else:
                window = (
                    f"in {o.time_from} .. {o.time_to}"
                    if o.time_from and o.time_to
                    else f"at or after {o.time_from}"
                    if o.time_from
                    else f"before {o.time_to}"
                )
                problem = f"{what}/--from/--to: no item of {files} falls {window}"
            counts = f"rows read {loaded.rows}, skipped {counts_text(loaded.skipped)}"
            raise RunError(f"{problem} ({counts}{'; ' + missing if missing else ''})", 2)
        self.items = loaded.items
        self.unusable = {k: n for k, n in loaded.skipped.items() if k != "outside_time_range"}
        p = self.progress
        p.source = ", ".join(str(x) for x in paths)
        p.items = len(loaded.items)
        p.time_from = iso_utc(o.time_from or loaded.items[0].event_time)
        p.time_to = iso_utc(o.time_to) if o.time_to else iso_utc(loaded.items[-1].event_time)

    def _load_model(self) -> tuple[Any, Any]:
        """The model (settings ``model``) and the company -> ticker map (``ingest.company_table``), loaded once."""
        from finsentry.ingest.scorer_setup import CompanyTableError, load_company_table
        from finsentry.model.scorer import ModelLoadError, Scorer

        try:
            scorer = Scorer.from_settings(self.settings.model)
        except (ModelLoadError, FileNotFoundError) as exc:
            raise RunError(f"model.path (env FINSENTRY_MODEL__PATH): {exc}", 2) from exc
        try:
            companies = load_company_table(self.settings.ingest.company_table)
        except CompanyTableError as exc:
            raise RunError(f"ingest.company_table (env FINSENTRY_INGEST__COMPANY_TABLE): {exc}", 2) from exc
        return scorer, companies

    def _set(self, section: str, **values: Any) -> None:
        """Replace fields of one settings section (validated again)."""
        current = getattr(self.settings, section)
        updated = type(current)(**(current.model_dump() | values))
        self.settings = self.settings.model_copy(update={section: updated})

    def _start_kafka(self) -> None:
        from finsentry.ingest.topics import DEFAULT_PARTITIONS, NEWS_RAW

        if self.options.bootstrap_servers is not None:
            from pydantic import ValidationError

            from finsentry.ingest.kafka_clients import ensure_topics
            from finsentry.ingest.settings import KafkaSettings

            try:
                kafka = KafkaSettings(
                    **(self.settings.ingest.kafka.model_dump() | {"bootstrap_servers": self.options.bootstrap_servers})
                )
            except ValidationError as exc:
                why = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise RunError(f"--bootstrap-servers {self.options.bootstrap_servers!r}: {why}", 2) from exc
            if not any_reachable(self.options.bootstrap_servers):
                raise RunError(f"--bootstrap-servers {self.options.bootstrap_servers}: no broker accepts connections")
            try:
                ensure_topics(kafka, DEFAULT_PARTITIONS)
            except Exception as exc:
                raise RunError(f"--bootstrap-servers {self.options.bootstrap_servers}: {exc!r}") from exc
            self.services["kafka"] = self.options.bootstrap_servers
        else:
            from finsentry.ingest.broker import BrokerError, EmbeddedBroker

            broker = EmbeddedBroker(
                port=self.options.broker_port,
                partitions=DEFAULT_PARTITIONS | {NEWS_RAW: EMBEDDED_NEWS_RAW_PARTITIONS},
                log_file=self.workdir / "broker.log",
            )
            try:
                broker.start()
            except BrokerError as exc:
                raise RunError(f"embedded broker (--broker-port {self.options.broker_port}): {exc}") from exc
            self.sup.adopt("broker", broker.process)
            kafka = broker.kafka_settings(**self.settings.ingest.kafka.model_dump(exclude={"bootstrap_servers"}))
            self.services["kafka"] = f"{broker.bootstrap_servers} (embedded Tansu, memory only)"
        ingest = self.settings.ingest.model_copy(update={"kafka": kafka})
        self.settings = self.settings.model_copy(update={"ingest": ingest})

    def _wait(self, what: str, ready) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not ready():
            if self.sup.stop.is_set():
                raise RunError(f"stopped while waiting for {what}", 130)
            failure = self.sup.failure()
            if failure:
                raise RunError(f"{what} did not start: {failure}")
            if time.monotonic() > deadline:
                raise RunError(f"{what} did not start within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        failure = self.sup.failure()
        if failure:
            raise RunError(f"{what} did not start: {failure}")

    def _start_aggregator(self) -> None:
        from finsentry.monitor.service import AggregatorService

        s = self.settings
        self.aggregator = agg = AggregatorService(s.monitor, s.ingest.kafka, s.model.path, on_spike=self.console.spike)
        self.follow_days(agg.aggregator)
        self.sup.start_thread("aggregator", agg.run)
        self._wait(
            "the aggregator (--http-port, setting monitor.http_port, env FINSENTRY_MONITOR__HTTP_PORT; 0 = any free"
            " port)",
            agg.ready.is_set,
        )
        m = self.settings.monitor
        base = f"http://{m.http_host}:{agg.http_port}"
        self.services |= {"dashboard": f"{base}/", "monitor_api": f"{base}/api/", "monitor_metrics": f"{base}/metrics"}

    def _start_scorer(self, model, companies) -> None:
        from finsentry.ingest.scorer_service import ScorerService

        self.scorer = svc = ScorerService(model, self.settings.ingest, companies=companies)
        self.sup.start_thread("scorer", svc.run)
        self._wait(
            "the scorer (ingest.scorer.metrics_port, env FINSENTRY_INGEST__SCORER__METRICS_PORT)",
            lambda: svc.metrics_url is not None,
        )
        self.services["scorer_metrics"] = svc.metrics_url

    def _start_relay(self) -> None:
        from finsentry.alerts.relay import RelayConfigError, RelayService

        a = self.settings.alerts
        token_file = self.workdir / "relay-token"
        token = a.relay_token.get_secret_value() if a.relay_token is not None else None
        if token is None and a.relay_token_file is not None:
            token_file = a.relay_token_file
        else:
            token_file.write_text((token or secrets.token_urlsafe(32)) + "\n", encoding="utf-8")
            token_file.chmod(0o600)
        self.token_file = token_file
        self._set(
            "alerts",
            relay_token=None,
            relay_token_file=token_file,
            monitor_api_url=self.services["dashboard"].rstrip("/"),
        )
        self.relay = relay = RelayService(self.settings.alerts, kafka=self.settings.ingest.kafka)
        try:
            relay.start()
        except (RelayConfigError, OSError) as exc:
            raise RunError(f"relay (alerts.relay_port, env FINSENTRY_ALERTS__RELAY_PORT): {exc}") from exc
        self.sup.add_cleanup("relay", relay.stop)
        self.services["relay"] = f"{relay.url}/webhook"
        self.services["relay_metrics"] = f"{relay.url}/metrics"

    def _add_status_route(self) -> None:
        self.status = PipelineStatus(
            scorer=self.scorer,
            aggregator_registry=self.aggregator.metrics.registry,
            replay=self.progress,
            services=self.services,
            processes=lambda: [(c.name, c.pid) for c in self.sup.children],
        )
        self.aggregator.http.json_routes["/api/pipeline"] = self.status.snapshot

    # ----------------------------------------------------------------- replay
    def wait_for_assignments(self) -> bool:
        """Wait (at most :data:`ASSIGNMENT_TIMEOUT_S`) until the scorer and the aggregator hold partitions."""
        deadline = time.monotonic() + ASSIGNMENT_TIMEOUT_S
        while time.monotonic() < deadline and not self.sup.stop.is_set() and not self.sup.failure():
            consumer = self.aggregator.consumer
            if self.scorer.assigned_partitions() and consumer is not None and consumer.assignment():
                return True
            time.sleep(0.1)
        return False

    def start_replay(self) -> None:
        """Start the replay thread (it ends by itself when every item is sent)."""
        from finsentry.ingest.kafka_clients import make_producer
        from finsentry.ingest.replay import send_items

        kafka = self.settings.ingest.kafka

        def run(stop) -> None:
            producer = make_producer(kafka, client_id=f"{kafka.client_id}-replay")
            counting = CountingProducer(_FlushUntilStopped(producer, stop), self.progress, json.loads)
            try:
                report = send_items(self.items, counting, speedup=self.options.speed, stop=stop, progress=False)
            except KafkaTimeoutError:
                if not stop.is_set():
                    raise
                log.warning("replay stopped with %d items sent and not acknowledged", self.progress.sent)
                return
            finally:
                try:
                    producer.close(timeout=1 if stop.is_set() else 10)  # stopping: the broker may be gone
                except KafkaTimeoutError:
                    if not stop.is_set():
                        raise
                    log.warning("replay producer closed with items not delivered (the broker is gone?)")
            self.progress.failed = report.failed
            self.progress.done = not report.stopped

        self.sup.start_thread("replay", run, finishes=True)

    def schedule(self) -> list[str]:
        """Console lines that say when what arrives (wall seconds after the replay starts)."""
        first, last = self.items[0].event_time, self.items[-1].event_time
        speed = self.options.speed
        lines = [
            f"replay: {len(self.items)} items, {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC, "
            f"{speed:g}x (a day every {86400 / speed:.1f} s; all in ~{(last - first).total_seconds() / speed:.0f} s)"
        ]
        if self.unusable:  # rows the source holds but the replay cannot send (the reasons of replay_source)
            lines.append(f"not replayed: {counts_text(self.unusable)} unusable rows of the source")
        event = self.options.demo.event_at
        if first <= event <= last:
            lines.append(f"{self.options.demo.event_text}: ~{(event - first).total_seconds() / speed:.0f} s in")
        return lines

    # ------------------------------------------------------------------ watch
    def watch(self, poll_s: float = 0.25) -> str | None:
        """Print day summaries and the end of the replay until the stop event; returns a failure message or None."""
        while not self.sup.stop.wait(poll_s):
            failure = self.sup.failure()
            if failure:
                return failure
            self._report_days()
            if self.sup.thread_done("replay") and not self._replay_reported:
                self._replay_reported = True
                self._report_replay_end()
        return None

    def follow_days(self, aggregator: Any) -> None:
        """Take the ``all`` key's buckets for the day lines as ``aggregator`` closes them (its ``on_close`` hook for
        that key only, called on the aggregator's thread; buckets without items are left out), and how far it has
        closed them.

        Not sampled from the buckets the aggregator holds: it drops a day's early buckets about when the day is
        due, and at a high ``--speed`` a day passes between two polls of :meth:`watch` (even within one batch),
        so sampled day lines undercounted or skipped days. A replay on reassignment closes the same buckets again;
        :class:`~finsentry.monitor.day_totals.DayTotals` keeps each bucket once, by its start.
        """

        bucket_seconds = aggregator.bucket_seconds

        def closed(bucket: Any) -> None:
            if bucket.items:
                self._closed.put(
                    {
                        "start": iso_epoch(bucket.start),
                        "items": bucket.items,
                        "negative": bucket.negative,
                        "score_sum": bucket.score_sum,
                    }
                )
            end = bucket.start + bucket_seconds  # after the put: every bucket before it is queued once this is read
            if self._all_closed_until is None or end > self._all_closed_until:
                self._all_closed_until = end

        aggregator.on_close = closed
        aggregator.on_close_keys = frozenset({"all"})  # the other keys keep closing idle runs at once

    def _report_days(self) -> None:
        """A line for every UTC day whose buckets the ``all`` key has closed, with the spikes open at that day's
        end, from those buckets (:meth:`follow_days`).

        Not when the instance watermark passes the day: it is the slowest partition of ``sentiment.keyed`` that has
        seen data, and a partition whose keys get no more records (tickers last named days ago) holds it back for
        good, so days before the last were never printed. The ``all`` key gets every item: only the last day
        stays open (its buckets close when later event time arrives).
        """
        state = self.aggregator.state
        until = self._all_closed_until  # first: every bucket before it is queued by then
        closed = []
        while not self._closed.empty():
            closed.append(self._closed.get())
        self._days.update(closed)
        if until is None:
            return
        due = self._days.pop_due(datetime.fromtimestamp(until, UTC))
        if not due:
            return
        events = state.spikes("all", None, 1000)["spikes"]  # read only when a day line is due
        for day, totals in due:
            end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
            self.console.line(day_line(day, totals, active_at(events, iso_utc(end))))

    def _report_replay_end(self) -> None:
        p = self.progress
        s = self.scorer.stats
        how = "finished" if p.done else "stopped"
        self.console.line(
            f"replay {how}: sent {p.sent} of {p.items} items (failed {p.failed}); scored so far {s.scored}, "
            f"dead letters {counts_text(s.dead_letters)}; spikes started "
            f"{self.console.started}, ended {self.console.ended}",
            f"the last day stays open (its buckets close when later data arrives); dashboard still at "
            f"{self.services['dashboard']} - Ctrl-C to stop",
        )

    # ------------------------------------------------------------------- stop
    def stop(self):
        """Shut everything down (bounded; see :class:`Supervisor`); returns the report.

        A temporary workdir is removed, unless the aggregator's ledger does not balance (records read but neither
        aggregated nor counted as dropped, :mod:`finsentry.monitor.reconcile`): then its logs are kept and an
        error names the folder.
        """
        report = self.sup.shutdown()
        unreconciled = self.aggregator.unreconciled() if self.aggregator is not None else 0
        if unreconciled:
            log.error(
                "%d sentiment.keyed records were neither aggregated nor counted as dropped; logs kept in %s",
                unreconciled,
                self.workdir,
            )
        elif self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return report

    def banner(self) -> list[str]:
        """Start-up lines: where everything is."""
        s = self.services
        lines = [f"finsentry run: dashboard {s['dashboard']}"]
        lines.append(f"  JSON API {s['monitor_api']}{{health,trends,spikes,pipeline}}  metrics {s['monitor_metrics']}")
        lines.append(f"  scorer metrics {s['scorer_metrics']}  model {self.scorer.model.model_version}")
        lines.append(f"  relay {s['relay']} (bearer token in {self.token_file})  Kafka {s['kafka']}")
        if "prometheus" in s:
            lines.append(f"  Prometheus {s['prometheus']}  Alertmanager {s['alertmanager']} (shipped rules, for: 4s)")
        from finsentry.monitor.settings import window_name

        m = self.settings.monitor
        lines.append(
            f"  windows {', '.join(m.window_names)} over {m.bucket_seconds // 60}-min buckets; spike scales "
            f"{', '.join(window_name(w) for w in m.spike.scales)}, z >= {m.spike.start_z:g} starts, "
            f"< {m.spike.end_z:g} ends" + (f" (preset {self.options.preset})" if self.options.preset else "")
        )
        lines.append(f"  logs in {self.workdir}" + (" (removed at exit)" if self._own_workdir else ""))
        return lines


class _FlushUntilStopped:
    """The replay's producer, whose flush gives up once the run is stopping (:func:`flush_until_stopped`): with
    the broker gone, send_items' flush waited 60 s and kept the replay thread past the supervisor's 15 s."""

    def __init__(self, producer: Any, stop: Any) -> None:
        self.send = producer.send
        self._producer = producer
        self._stop = stop

    def flush(self, timeout: float | None = None) -> None:
        """``producer.flush``, given up on a stop (raises ``KafkaTimeoutError``)."""
        flush_until_stopped(self._producer, timeout, self._stop)


def _refuse_repeated_files(paths: Sequence[Path]) -> None:
    """Refuse a file named twice, directly or through its folder: it would be read, and each item replayed, twice.

    Raises:
        ValueError: names the file. FileNotFoundError: a path does not exist (from ``expand_paths``).
    """
    from finsentry.ingest.replay_source import expand_paths

    seen: set[Path] = set()
    for f in expand_paths(paths):
        if f.resolve() in seen:
            raise ValueError(f"{f} is given twice (directly or through its folder); each file is replayed once")
        seen.add(f.resolve())


def services_of(pipeline: Pipeline) -> Sequence[tuple[str, str]]:
    """``(name, url)`` of the running services, for tests and logs."""
    return list(pipeline.services.items())
