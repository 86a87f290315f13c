"""Fixtures of the ``finsentry run`` tests (helpers in ``run_testkit``)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from run_testkit import SPEED, LiveRun, ReplayFile, build_replay_file


@pytest.fixture(scope="session")
def run_scorer(model_dir: Path):
    """The model under test, loaded once (to pick the FPB sentences it calls negative)."""
    from finsentry.model import Scorer

    return Scorer.load(model_dir)


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory: pytest.TempPathFactory, run_scorer) -> ReplayFile:
    """Real StockNet tweets of 2015-08-17 .. 2015-08-21 plus a burst of real negative FPB sentences on one ticker."""
    return build_replay_file(tmp_path_factory.mktemp("replay") / "replay.jsonl", run_scorer)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory, replay_file: ReplayFile, model_dir: Path) -> Iterator[LiveRun]:
    """``finsentry run --source FILE --preset stocknet --with-prometheus`` on free ports, started once for the module.

    Waits until the replay is sent, every item is scored or dead-lettered and aggregated, and Prometheus has
    scraped the scorer. Teardown interrupts it (if a test has not) and kills its process group if it hangs.
    """
    if not (shutil.which("prometheus") and (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))):
        raise RuntimeError("the live run needs Debian's prometheus and prometheus-alertmanager (.ci/apt-packages.txt)")
    work = tmp_path_factory.mktemp("live")
    run = LiveRun(
        [
            *("--source", str(replay_file.path), "--preset", "stocknet", "--speed", str(SPEED)),
            *("--with-prometheus", "--workdir", str(work / "wd")),
        ],
        {"FINSENTRY_MODEL__PATH": str(model_dir)},
        work / "run.log",
    )
    run.start()
    try:
        n = len(replay_file.items)

        def settled():
            p = run.api("/api/pipeline")
            s = p["scorer"]
            return p["replay"]["done"] and s["consumed"] == n and s["scored"] + s["dead_letters_total"] == n and p

        pipeline = run.wait_for("the replay to be scored", settled, timeout_s=150)

        def aggregated():  # the records read stay put for 1.5 s (the consumer polls every 0.2 s): caught up
            first = run.api("/api/health")["records"]
            time.sleep(1.5)
            return first > 0 and run.api("/api/health")["records"] == first

        run.wait_for("the aggregator to catch up", aggregated, timeout_s=60, poll_s=1.0)
        prom = pipeline["services"]["prometheus"]
        run.wait_for(
            "Prometheus to scrape the scorer",
            lambda: _prom_value(prom, "sum(finsentry_scorer_scored_total)") == pipeline["scorer"]["scored"],
            timeout_s=60,
        )
        yield run
    finally:
        run.close()


def _prom_value(base: str, expr: str) -> float | None:
    from urllib.parse import urlencode

    from run_testkit import http_json

    result = http_json(f"{base}/api/v1/query?{urlencode({'query': expr})}")["data"]["result"]
    return float(result[0]["value"][1]) if result else None
