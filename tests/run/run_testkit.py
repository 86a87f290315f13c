"""Helpers of the ``finsentry run`` tests: the replay file, the live run as a subprocess, PromQL (headless
Chromium: ``browser_testkit``).

The replay file holds real StockNet tweets of 2015-08-17 .. 2015-08-21 plus real negative Financial PhraseBank
sentences (``data/splits/fpb_test.csv``, label 0) tagged with one ticker in a two-hour burst on 2015-08-20, so
that a spike on that ticker is certain. Of the FPB sentences only those the model under test also scores
negative are used (most negative first): the test is about the pipeline, not the model's accuracy, and it must
hold for a partly trained model too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from finsentry.common.paths import REPO_ROOT, SPLITS_DIR

STOCKNET_FILE = REPO_ROOT / "data" / "stocknet_tweets" / "monthly" / "stocknet_tweets_2015-08.csv"
REPLAY_FROM = datetime(2015, 8, 17, tzinfo=UTC)
REPLAY_TO = datetime(2015, 8, 22, tzinfo=UTC)
SPIKE_TICKER = "AAPL"
"""The ticker that gets the burst (the busiest StockNet ticker, so its baseline is warm by then)."""
BURST_START = datetime(2015, 8, 20, 14, 0, tzinfo=UTC)
BURST_SECONDS = 2 * 3600
BURST_ITEMS = 40
"""FPB sentences in the burst (fewer if the model calls fewer of them negative; at least MIN_BURST_ITEMS)."""
MIN_BURST_ITEMS = 25
SPEED = 25_000.0
"""Replay speed of the live test: 5 days of event time in about 17 s."""
FPB_SOURCE = "financial_phrasebank"


@dataclass
class ReplayFile:
    """The JSONL replay file and what it holds. burst_ids: ids of the FPB items (all ``fpb-...``)."""

    path: Path
    items: list[dict[str, Any]]
    burst_ids: set[str] = field(default_factory=set)


def negative_fpb_sentences(scorer, limit: int) -> list[str]:
    """FPB test sentences labelled negative that ``scorer`` also scores negative, most negative first."""
    with open(SPLITS_DIR / "fpb_test.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f) if row["label"] == "0"]
    texts = list(dict.fromkeys(texts))  # the split has a few repeated sentences
    preds = scorer.predict(texts)
    negative = [(p.sentiment_score, t) for p, t in zip(preds, texts, strict=True) if p.sentiment == "negative"]
    return [t for _s, t in sorted(negative)[:limit]]


def build_replay_file(path: Path, scorer) -> ReplayFile:
    """Write the replay file (JSONL, ``news.raw`` fields) and return what is in it.

    Raises:
        AssertionError: the model scores fewer than :data:`MIN_BURST_ITEMS` FPB negatives as negative.
    """
    from finsentry.ingest.replay_source import load_items

    loaded = load_items([STOCKNET_FILE], time_from=REPLAY_FROM, time_to=REPLAY_TO)
    items = [dict(i.value, source="stocknet") for i in loaded.items]
    sentences = negative_fpb_sentences(scorer, BURST_ITEMS)
    assert len(sentences) >= MIN_BURST_ITEMS, f"the model scores only {len(sentences)} FPB negatives as negative"
    step = BURST_SECONDS / len(sentences)
    burst = []
    for n, text in enumerate(sentences):
        at = BURST_START + timedelta(seconds=round(n * step))
        burst.append(
            {
                "id": f"fpb-{n:03d}",
                "text": text,
                "published_at": at.isoformat().replace("+00:00", "Z"),
                "tickers": [SPIKE_TICKER],
                "lang": "en",
                "source": FPB_SOURCE,
            }
        )
    everything = sorted(items + burst, key=lambda v: v["published_at"])
    with open(path, "w", encoding="utf-8") as f:
        for value in everything:
            f.write(json.dumps(value) + "\n")
    return ReplayFile(path, everything, {b["id"] for b in burst})


def http_json(url: str, timeout_s: float = 5.0) -> Any:
    """GET ``url`` and parse JSON."""
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def http_text(url: str, timeout_s: float = 5.0) -> str:
    """GET ``url`` as text."""
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read().decode("utf-8")


class LiveRun:
    """``finsentry run`` as a subprocess in its own session (process group), every port chosen free.

    Args:
        args: options after ``finsentry run``. env: extra environment. log_path: its stdout + stderr.
    """

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.env = (
            os.environ
            | {
                "FINSENTRY_MONITOR__HTTP_PORT": "0",
                "FINSENTRY_INGEST__SCORER__METRICS_PORT": "0",
                "FINSENTRY_ALERTS__RELAY_PORT": "0",
                "PYTHONUNBUFFERED": "1",
            }
            | env
        )
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.returncode: int | None = None

    def start(self, timeout_s: float = 90.0) -> LiveRun:
        """Start it and wait for the dashboard URL in its output.

        Raises:
            AssertionError: it exited or printed no URL within ``timeout_s`` (the message holds its output).
        """
        exe = str(Path(sys.executable).with_name("finsentry"))
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [exe, "run", "--broker-port", "0", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(r"dashboard (http://127\.0\.0\.1:\d+)/", self.output())
            if match:
                self.base = match.group(1)
                return self
            assert self.proc.poll() is None, f"finsentry run exited with {self.proc.returncode}:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"no dashboard URL within {timeout_s} s:\n{self.output()}")

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def api(self, path: str) -> Any:
        """GET ``path`` of the monitor service as JSON."""
        return http_json(self.base + path)

    def wait_for(self, what: str, condition, timeout_s: float = 120.0, poll_s: float = 0.5) -> Any:
        """Poll ``condition()`` until it returns something truthy; returns it.

        Raises:
            AssertionError: the run exited or ``timeout_s`` passed (the message names ``what``, holds the output).
        """
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"finsentry run exited while waiting for {what}:\n{self.output()}"
            try:
                value = condition()
                if value:
                    return value
            except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
                last_error = exc
            time.sleep(poll_s)
        raise AssertionError(f"timed out waiting for {what} (last error {last_error!r}):\n{self.output()[-6000:]}")

    def interrupt(self, timeout_s: float = 45.0) -> int:
        """SIGINT (as Ctrl-C) and wait for the exit code; kills the whole group if it hangs (and says so).

        Raises:
            AssertionError: it did not exit within ``timeout_s``.
        """
        assert self.proc is not None
        if self.returncode is not None:
            return self.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            self.returncode = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise AssertionError(f"finsentry run did not stop within {timeout_s} s of SIGINT") from exc
        return self.returncode

    def close(self) -> None:
        """Teardown: SIGINT if it still runs (unless a test already stopped it), then SIGKILL its group if it hangs."""
        if self.returncode is None:
            try:
                self.interrupt()
            finally:
                if self.proc is not None and self.proc.poll() is None:
                    self.kill()

    def kill(self) -> None:
        """SIGKILL its process group (teardown after a failure)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.returncode = self.proc.returncode


def group_alive(pgid: int) -> bool:
    """True while any process is in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


# ------------------------------------------------------------------ PromQL
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan", "atan2",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords, label names or strings.

    Strings, label matchers (``{...}``), label lists of ``by`` / ``without`` / ``on`` / ``ignoring`` /
    ``group_left`` / ``group_right``, range and subquery brackets and numbers are removed first; what is left and
    not followed by ``(`` is a metric name.

    >>> sorted(promql_metric_names('sum by (le) (rate(a_bucket{k="x"}[5m])) / on (k) b and c offset 5m'))
    ['a_bucket', 'b', 'c']
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+(\.\d+)?(e\d+)?", name):
            continue
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a ``/metrics`` page declares (families and samples: ``_total``, ``_bucket``, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        names |= {s.name for s in family.samples}
    return names
