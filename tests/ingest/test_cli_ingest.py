"""The ingest verbs as processes: ``finsentry broker``, ``finsentry replay``, ``finsentry scorer`` errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from ingest_testkit import STOCKNET_MONTHLY, TopicReader, wait_for

from finsentry.ingest.broker import free_port
from finsentry.ingest.replay_source import load_items
from finsentry.ingest.topics import NEWS_RAW

CLI = [sys.executable, "-c", "from finsentry.cli import main; main()"]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.broker
def test_broker_verb_serves_until_sigint(tmp_path):
    port = free_port()
    proc = subprocess.Popen([*CLI, "broker", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 30, "the broker to listen")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"127.0.0.1:{port}" in err and "broker stopped" in err
    assert not port_open(port)


@pytest.mark.broker
def test_replay_verb_sends_one_message_per_tweet_in_range(broker):
    month = STOCKNET_MONTHLY / "stocknet_tweets_2014-01.csv"
    args = ["replay", str(month), "--limit-rows", "300", "--from", "2014-01-01T06:00:00Z", "--rate", "5000"]
    env = os.environ | {"FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    done = subprocess.run([*CLI, *args, "--no-progress"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = load_items([month], limit_rows=300, time_from=datetime(2014, 1, 1, 6, tzinfo=UTC))
    assert f"sent {len(expected.items)} of {len(expected.items)} items (300 rows" in done.stderr
    reader = TopicReader(broker.kafka_settings(), NEWS_RAW)
    reader.read_until(lambda r: len(r.records[NEWS_RAW]) >= len(expected.items), 30, "the replayed items")
    while reader.poll(300):
        pass
    reader.close()
    assert sorted(reader.ids(NEWS_RAW)) == sorted(i.id for i in expected.items)
    assert all(r.key.decode() == i for r, i in zip(reader.records[NEWS_RAW], reader.ids(NEWS_RAW), strict=True))


def test_scorer_verb_with_a_missing_model_names_the_setting(tmp_path):
    env = os.environ | {"FINSENTRY_MODEL__PATH": str(tmp_path / "no-model")}
    done = subprocess.run([*CLI, "scorer"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "model.path (env FINSENTRY_MODEL__PATH)" in done.stderr


def test_replay_verb_rejects_speedup_with_rate():
    done = subprocess.run(
        [*CLI, "replay", str(STOCKNET_MONTHLY), "--speedup", "10", "--rate", "5"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "either --speedup or --rate" in done.stderr


def test_replay_verb_that_matches_nothing_exits_2_and_says_why(tmp_path):
    month = STOCKNET_MONTHLY / "stocknet_tweets_2014-01.csv"
    env = os.environ | {"FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}  # no broker there
    cases = [
        (
            ["--from", "2016-01-01T00:00Z"],
            "no item matched: of 50 rows read (read only the first 50 rows: --limit-rows), 50 rows fall outside the "
            "time range 2016-01-01T00:00:00Z .. (open) of --from/--to (end exclusive); the event times read run from "
            "2014-01-01T00:00:48Z to 2014-01-01T15:01:12Z",
        ),
        (
            ["--time-column", "when"],
            "no item matched: of 50 rows read (read only the first 50 rows: --limit-rows), 50 rows have no readable "
            "event time in column 'when' (columns: created_at_utc, ticker, tweet_id, is_retweet, lang, text; map it "
            "with --map published_at=COLUMN or --time-column, and add --assume-utc for times without a zone)",
        ),
        (
            ["--map", "text=headline"],
            "no item has a text: none of the 21 items has a value in text column 'headline' (columns: created_at_utc, "
            "ticker, tweet_id, is_retweet, lang, text); map it with --map text=COLUMN",
        ),
    ]
    for extra, why in cases:
        args = [*CLI, "replay", str(month), "--limit-rows", "50", "--no-progress", *extra]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines()[-1] == f"error: nothing to replay from {month}: {why}"
        assert "Traceback" not in done.stderr


@pytest.mark.broker
def test_replay_verb_refuses_rows_the_scorer_would_dead_letter_and_sends_the_rest(broker, tmp_path):
    """Runs after the StockNet replay above (same module broker): it reads only its own ids from news.raw."""
    from finsentry.ingest.replay_source import derived_id

    at = "2015-08-24T10:00:00Z"
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(
        b"\xef\xbb\xbf"  # a BOM before line 1
        + json.dumps({"id": "rf-good", "text": "Shares plunge", "published_at": at}).encode()
        + b"\n"
        + json.dumps({"id": {"a": 1}, "text": "x", "published_at": at}).encode()
        + b"\n"
        + json.dumps({"id": "rf-lang", "text": "x", "published_at": at, "lang": 5}).encode()
        + b"\n{not json\n"
        + json.dumps({"text": "Refused-test item without an id", "published_at": at}).encode()
        + b"\n"
    )
    env = os.environ | {"FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    done = subprocess.run(
        [*CLI, "replay", str(src), "--no-progress"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-4:] == [
        f"  {src}:2: id must be text or a whole number, got an object",
        f"  {src}:3: lang must be text, got a number",
        f"  {src}:4: not JSON (Expecting property name enclosed in double quotes)",
        "refused 3 rows (not sent: the scorer would dead-letter them); fix them and replay those rows",
    ]
    sent = "sent 2 of 2 items (5 rows, 0 merged, skipped 3 (bad_line 1, invalid_id 1, wrong_type 1), failed 0) in "
    assert any(line.startswith(sent) for line in lines), lines  # counts by reason, not a Python dict
    derived = derived_id(at, "Refused-test item without an id")
    reader = TopicReader(broker.kafka_settings(), NEWS_RAW)
    mine = {"rf-good", derived}
    reader.read_until(lambda r: mine <= set(r.ids(NEWS_RAW)), 30, "the two good items")
    reader.close()
    records = {json.loads(r.value)["id"]: r for r in reader.records[NEWS_RAW]}
    assert records[derived].key.decode() == derived and records["rf-good"].key == b"rf-good"
    assert not {"rf-lang"} & set(records)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speedup", "1e-300"], "error: --speedup must be a finite number from 0.001 to 1e+09, got 1e-300"),
        (["--speedup", "nan"], "error: --speedup must be a finite number from 0.001 to 1e+09, got nan"),
        (["--rate", "inf"], "error: --rate must be a finite number from 0.001 to 1e+07, got inf"),
        (["--rate", "nan"], "error: --rate must be a finite number from 0.001 to 1e+07, got nan"),
    ],
)
def test_replay_verb_refuses_pacing_that_is_not_finite_or_out_of_range(args, message):
    month = STOCKNET_MONTHLY / "stocknet_tweets_2014-01.csv"
    env = os.environ | {"FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}  # never reached
    done = subprocess.run([*CLI, "replay", str(month), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == message


def test_replay_help_documents_derived_ids_refused_rows_and_exit_codes():
    done = subprocess.run([*CLI, "replay", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "auto- + the first 16 hex digits of sha256(published_at + newline + text)" in text
    assert "are refused, not sent, and listed as FILE:LINE: reason" in text
    assert "Exit 0: everything sent; 1: some rows refused or some produces failed; 2: bad options" in text
