"""``finsentry run`` under hostile options and inputs: what the pipeline prints and refuses, without starting the
services (tests/run/test_cli_run.py runs the CLI itself)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from finsentry.run_console import Console
from finsentry.run_options import RunOptions
from finsentry.run_pipeline import Pipeline
from finsentry.settings import Settings
from finsentry.supervisor import Supervisor


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
