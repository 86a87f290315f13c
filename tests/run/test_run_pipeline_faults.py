"""``finsentry run`` under hostile options and inputs: what the pipeline prints and refuses, without starting the
services (tests/run/test_cli_run.py runs the CLI itself)."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_cli_run import _finsentry

from finsentry.run_console import Console
from finsentry.run_options import RunOptions
from finsentry.run_pipeline import Pipeline
from finsentry.settings import Settings
from finsentry.supervisor import Supervisor

SVB = "data/events/svb2023_cnbc.jsonl"


def _pipeline(tmp_path: Path, **options) -> Pipeline:
    return Pipeline(Settings(), RunOptions(workdir=tmp_path, **options), Console(), Supervisor())


def test_the_banner_names_the_spike_settings_of_the_monitor_spike_group(tmp_path: Path) -> None:
    """The spike settings moved to monitor.spike (scales, start_z, end_z); the banner still read the old flat
    names and every ``finsentry run`` stopped with an AttributeError traceback once all services had started."""
    pipeline = _pipeline(tmp_path)
    pipeline.services = {k: f"http://x/{k}" for k in ("dashboard", "monitor_api", "monitor_metrics", "scorer_metrics")}
    pipeline.services |= {"relay": "http://x/webhook", "kafka": "127.0.0.1:1"}
    pipeline.scorer = SimpleNamespace(model=SimpleNamespace(model_version="m-1"))
    lines = pipeline.banner()
    assert "  windows 5m, 1h, 1d over 1-min buckets; spike scales 1h, 1d, z >= 3 starts, < 1.5 ends" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # 9999-12-31 is a date, but the end of it is not: an OverflowError traceback
        (["--to", "9999-12-31"], "--to '9999-12-31' is past the last day that can be replayed"),
        # the bound not given is the demo's: name it rather than print None
        (["--from", "2023-04-01"], "--to (2023-03-25 00:00 UTC, the svb demo's end) must be after --from (2023-04-01)"),
        (
            ["--demo", "stocknet", "--to", "2015-01-01"],
            "--to (2015-01-01) must be after --from (2015-08-17 00:00 UTC, the stocknet demo's start)",
        ),
        # --demo names a stream replayed without --source: with one, it was ignored without a word
        (["--demo", "stocknet", "--source", SVB], "--demo and --source: give one"),
        # an empty file: no window was asked for, so none is quoted ('falls in None .. None')
        (["--source", "{empty}"], "--source: no valid item in {empty} (rows read 0, skipped 0)"),
        (["--source", "{invalid}"], "--source: no valid item in {invalid} (rows read 2, skipped 2 (bad_line 1, "),
        (["--source", "{invalid}", "--to", "2023-01-01"], "falls before 2023-01-02 00:00:00+00:00"),
        # one file named twice (or also through its folder) was read twice: every item replayed twice, 'sent 1024
        # of 1024 items' for a file of 512, the second copies counted as the scorer's duplicates
        (["--source", SVB, "--source", SVB], f"--source: {SVB} is given twice (directly or through its folder)"),
        (["--source", SVB, "--source", "data/events"], f"--source: {SVB} is given twice"),
        # a --workdir that cannot hold the run's files: a FileExistsError / FileNotFoundError traceback
        (["--workdir", "{empty}"], "error: --workdir {empty}: cannot hold the run's logs and token (File exists)"),
        (["--workdir", "/proc/nope/x"], "error: --workdir /proc/nope/x: cannot hold the run's logs and token ("),
        # the demo's StockNet months: the message named --source, which was not given
        (["--demo", "stocknet", "--from", "2030-01-01", "--to", "2030-01-02"], "error: --demo stocknet: no StockNet"),
    ],
)
def test_run_refuses_odd_options_and_unusable_files_in_one_line(args, message, tmp_path: Path, model_dir) -> None:
    files = {"empty": tmp_path / "empty.jsonl", "invalid": tmp_path / "invalid.jsonl"}
    files["empty"].write_text("", encoding="utf-8")
    files["invalid"].write_text('not json\n{"id": "1", "text": "no time"}\n', encoding="utf-8")
    args = [a.format(**files) for a in args]
    message = message.format(**files)
    result = _finsentry("run", "--broker-port", "0", *args, env={"FINSENTRY_MODEL__PATH": str(model_dir)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.replace("│", " ").split()), result.stderr  # rich wraps in a box
    assert "Traceback" not in result.stderr


HOURS = [*range(3 * 24), 3 * 24 + 12, 4 * 24 + 12]
"""Items of 2023-03-01 .. 03-03, one an hour, then two to pass the ends of those days."""


@pytest.mark.parametrize("fed_before_the_poll", [len(HOURS), 30], ids=["all-before-the-poll", "most-during-the-poll"])
def test_day_lines_count_every_item_when_days_pass_faster_than_the_console_polls(
    tmp_path: Path, fed_before_the_poll: int
) -> None:
    """At --speed 1000000 the SVB replay printed 19 items for 2023-03-03 (of 20), 5 for 03-12 (of 11) and no line
    for 03-04, with every item aggregated (no late event): the day totals were sampled from the buckets the
    aggregator still held every 0.25 s, and it drops a day's buckets about when the day is due; a day that passes
    between two polls (here: in one batch) lost its early buckets. They are now taken as each bucket closes, and
    how far they are closed is read before they are taken: the other way round, a batch the aggregator ran in
    between made days due whose buckets were not taken yet (9 items for 03-10 of 33)."""
    from finsentry.ingest.contract import KeyedItem
    from finsentry.monitor.aggregator import Aggregator
    from finsentry.monitor.queries import MonitorState

    out = io.StringIO()
    pipeline = Pipeline(Settings(), RunOptions(workdir=tmp_path), Console(out), Supervisor())
    aggregator = Aggregator(pipeline.settings.monitor)
    state = MonitorState(aggregator)
    pipeline.aggregator = SimpleNamespace(aggregator=aggregator, state=state)
    pipeline.follow_days(aggregator)
    start = datetime(2023, 3, 1, tzinfo=UTC)
    items = [
        KeyedItem(
            id=f"i{h}",
            key="all",
            published_at=start + timedelta(hours=h),
            sentiment="negative" if h % 4 == 0 else "neutral",
            sentiment_score=-0.5 if h % 4 == 0 else 0.0,
        )
        for h in HOURS
    ]
    for item in items[:fed_before_the_poll]:
        aggregator.process(item, 0, None)  # in one go: no poll of the console in between
    rest, queued = items[fed_before_the_poll:], pipeline._closed

    class _BatchDuringThePoll:  # the aggregator's thread runs a batch while the console takes the closed buckets
        def empty(self) -> bool:
            while rest:
                aggregator.process(rest.pop(0), 0, None)
            return queued.empty()

        def get(self) -> dict:
            return queued.get()

        def put(self, bucket: dict) -> None:
            queued.put(bucket)

    pipeline._closed = _BatchDuringThePoll()  # type: ignore[assignment]
    pipeline._report_days()
    pipeline._report_days()  # the next poll
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "day 2023-03-01 (Wed)",
        "day 2023-03-02 (Thu)",
        "day 2023-03-03 (Fri)",
        "day 2023-03-04 (Sat)",
    ]
    assert all(" 24 items, 25% negative, mean score -0.12;" in line for line in lines[:3]), lines
    assert " 1 item, 100% negative, mean score -0.50;" in lines[3]


def test_a_day_line_does_not_wait_for_a_partition_that_gets_no_more_records(tmp_path: Path) -> None:
    """The SVB replay with --to 2023-03-12 never printed 2023-03-10 nor 03-11, though every item up to 03-12 23:19
    was aggregated: the lines waited for the instance watermark, the slowest partition of sentiment.keyed that has
    seen data, and a partition whose ticker keys got their last item on 03-10 holds it there for good. Only the
    last day may stay open (docs/demo.md); a day is now due once the all key has closed its buckets."""
    from finsentry.ingest.contract import KeyedItem
    from finsentry.monitor.aggregator import Aggregator
    from finsentry.monitor.queries import MonitorState

    out = io.StringIO()
    pipeline = Pipeline(Settings(), RunOptions(workdir=tmp_path), Console(out), Supervisor())
    aggregator = Aggregator(pipeline.settings.monitor)
    pipeline.aggregator = SimpleNamespace(aggregator=aggregator, state=MonitorState(aggregator))
    pipeline.follow_days(aggregator)
    start = datetime(2023, 3, 1, tzinfo=UTC)
    one = {"sentiment": "neutral", "sentiment_score": 0.0}
    aggregator.process(KeyedItem(id="t", key="topic:earnings", published_at=start, **one), 1, None)  # then idle
    for h in range(3 * 24 + 1):
        aggregator.process(KeyedItem(id=f"i{h}", key="all", published_at=start + timedelta(hours=h), **one), 0, None)
    pipeline._report_days()
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        "day 2023-03-01 (Wed): 24 items",
        "day 2023-03-02 (Thu): 24 items",
    ]


def test_the_replay_thread_stops_in_bounded_time_when_the_broker_is_gone(tmp_path: Path) -> None:
    """finsentry run with its embedded broker killed: the replay thread flushed its sent items for up to 60 s
    (send_items' flush) and closed its producer for 10 more, past the supervisor's 15 s ('threads left
    ['replay']', then a KafkaTimeoutError traceback at exit). Its flush now gives up once the run is stopping."""
    from finsentry.ingest.broker import EmbeddedBroker
    from finsentry.ingest.replay_source import load_items

    day = datetime(2023, 3, 10, tzinfo=UTC)
    items = load_items([SVB], time_from=day, time_to=day + timedelta(days=1)).items
    with EmbeddedBroker(port=0) as broker:
        pipeline = Pipeline(
            Settings(), RunOptions(workdir=tmp_path, speed=86400 / 20), Console(io.StringIO()), Supervisor()
        )
        pipeline._set("ingest", kafka=broker.kafka_settings())
        pipeline.items = items  # 33 items over 20 s of wall clock
        pipeline.start_replay()
        deadline = time.monotonic() + 30
        while pipeline.progress.sent < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.stop()
        time.sleep(2)  # items sent to a broker that is gone: the flush at the end waits for them
        pipeline.sup.request_stop()
        report = pipeline.sup.shutdown()
    assert report.threads_left == [] and report.seconds < 12, report
