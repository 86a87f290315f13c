"""kill -9 the scorer process at random points, restart it: no id is lost (duplicates are counted)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from ingest_testkit import TopicReader, good_items, produce_items

from finsentry.ingest.topics import NEWS_SCORED

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ITEMS = 600
KILLS = 4


def start_scorer(broker, model_dir, log_path) -> subprocess.Popen:
    """``finsentry scorer`` as a child process (small batches: more commit points to crash between)."""
    env = os.environ | {
        "FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "FINSENTRY_INGEST__KAFKA__SESSION_TIMEOUT_MS": "2000",
        "FINSENTRY_INGEST__KAFKA__HEARTBEAT_INTERVAL_MS": "300",
        "FINSENTRY_INGEST__SCORER__GROUP_ID": "crash",
        "FINSENTRY_INGEST__SCORER__METRICS_PORT": "0",
        "FINSENTRY_INGEST__SCORER__MAX_BATCH_ITEMS": "32",
        "FINSENTRY_MODEL__PATH": str(model_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from finsentry.cli import main; main()", "scorer"],
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_kill_9_at_random_points_loses_no_id(broker, model_dir, tmp_path, record_property):
    items = good_items(ITEMS, prefix="k")
    produce_items(broker.kafka_settings(), items)
    expected = {i["id"] for i in items}
    reader = TopicReader(broker.kafka_settings(), NEWS_SCORED)
    rng = random.Random(20140101)
    log_path = tmp_path / "scorer.log"
    kill_points = []
    try:
        for _ in range(KILLS):
            before = len(reader.records[NEWS_SCORED])
            proc = start_scorer(broker, model_dir, log_path)
            try:
                reader.read_until(lambda r, b=before: len(r.records[NEWS_SCORED]) > b, 240, "the scorer to produce")
                time.sleep(rng.uniform(0.0, 0.6))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            assert proc.returncode == -signal.SIGKILL
            reader.poll(100)
            kill_points.append(len(set(reader.ids())))
        assert kill_points[-1] < ITEMS, "the kills must land before the stream is done"

        proc = start_scorer(broker, model_dir, log_path)
        try:
            reader.read_until(lambda r: set(r.ids()) >= expected, 600, f"all {ITEMS} ids after restarts")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assert proc.returncode == 0, log_path.read_text()[-3000:]
        while reader.poll(300):
            pass
    finally:
        reader.close()

    ids = reader.ids()
    duplicates = len(ids) - len(set(ids))
    record_property("scored_messages", len(ids))
    record_property("duplicates_after_kill_9", duplicates)
    print(f"kill -9 x{KILLS} at {kill_points} distinct ids: {len(ids)} messages, {duplicates} duplicates, 0 lost")
    assert set(ids) == expected, f"lost: {sorted(expected - set(ids))[:10]}"
    assert all(a <= b for a, b in zip(kill_points, kill_points[1:], strict=False))
