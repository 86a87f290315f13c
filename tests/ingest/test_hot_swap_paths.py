"""Hot swap: a ``models.events`` record can only name a version folder inside the registry, never a path.

The watcher is driven through its own event handler and loader (no broker: ``_on_event`` is what the event
thread calls for each record, ``_load`` what the loader thread calls for each request);
``tests/ingest/test_hot_swap.py`` does the same over a real broker.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from finsentry.ingest.hot_swap import HotSwapMetrics, ModelWatcher, SwapRefused, resolve_version_folder
from finsentry.settings import load_settings

SERVING = "serving-v1"


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    (root / "v0001").mkdir(parents=True)
    (root / "v0002").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "v0009").symlink_to(tmp_path / "elsewhere")  # a version folder that leads out of the registry
    (root / "v0008").symlink_to("v0001")  # one that stays inside
    (root / "v0007").symlink_to(".")  # the registry itself
    return root


def test_only_registry_version_names_resolve_and_only_inside_the_registry(registry_dir):
    assert resolve_version_folder(registry_dir, "v0002") == registry_dir / "v0002"
    assert resolve_version_folder(registry_dir, "v0008") == registry_dir / "v0008"
    assert resolve_version_folder(str(registry_dir), "v123456") == registry_dir / "v123456"  # missing: not_found later
    for version in (
        "/etc",
        "../v0001",
        "v0001/../../etc",
        "v0001/",
        "v001",
        "V0001",
        "v0001\n",
        " v0001",
        "",
        "v\u0660\u0660\u0660\u0661",  # Arabic-Indic digits: \d matches them, a folder name should not
        "v0009",
        "v0007",
    ):
        with pytest.raises(SwapRefused) as err:
            resolve_version_folder(registry_dir, version)
        assert err.value.reason == "outside_registry", version
    with pytest.raises(SwapRefused, match=r"v0009 resolves to .*elsewhere, outside the registry"):
        resolve_version_folder(registry_dir, "v0009")


def _watcher(registry_dir: Path) -> ModelWatcher:
    scorer = SimpleNamespace(model_version=SERVING, topic_labels=("a",), sentiment_labels=("n", "p"))
    service = SimpleNamespace(model=scorer, swap_model=lambda new: pytest.fail("nothing may be swapped in"))
    settings = load_settings(model={"registry_dir": str(registry_dir)})
    return ModelWatcher(service, settings.ingest.kafka, settings.model, HotSwapMetrics())


def _event(version: str, path: str | None) -> bytes:
    return json.dumps({"action": "promote", "version": version, "model_version": "x", "path": path}).encode()


def _requests(watcher: ModelWatcher) -> list[Path]:
    out = []
    while not watcher._requests.empty():
        out.append(watcher._requests.get_nowait())
    return out


def test_an_event_path_is_never_loaded_from(registry_dir):
    watcher = _watcher(registry_dir)
    watcher._on_event(_event("v0002", "/etc"))  # a real version with a forged path: the registry's folder
    watcher._on_event(_event("v0099", "/etc"))  # no such version here: still not /etc
    assert _requests(watcher) == [registry_dir / "v0002", registry_dir / "v0099"]
    assert watcher.refused == []


def test_an_event_naming_a_path_as_version_is_refused_with_the_log_line_and_metric(registry_dir, caplog):
    watcher = _watcher(registry_dir)
    caplog.set_level(logging.INFO, logger="finsentry.ingest.hot_swap")
    watcher._on_event(_event("/etc", "/etc"))
    watcher._on_event(_event("../../etc", None))
    assert _requests(watcher) == []
    assert watcher.refused == [("'/etc'", "outside_registry"), ("'../../etc'", "outside_registry")]
    errors = [r.getMessage() for r in caplog.records if r.name == "finsentry.ingest.hot_swap" and r.levelno >= 40]
    assert errors[0] == (
        "refusing model '/etc': version '/etc' is not a registry version name (v + 4 or more digits); only"
        f" <model.registry_dir>/vNNNN is loaded (outside_registry); still serving {SERVING}"
    )
    registry = watcher.metrics.registry
    assert registry.get_sample_value("finsentry_model_swap_refusals_total", {"reason": "outside_registry"}) == 2
    assert registry.get_sample_value("finsentry_model_swap_refusals_total", {"reason": "not_found"}) == 0


def test_a_missing_version_folder_is_refused_as_not_found_at_its_registry_path(registry_dir):
    watcher = _watcher(registry_dir)
    watcher._on_event(_event("v0099", "/etc"))
    (folder,) = _requests(watcher)
    watcher._load(folder)  # what the loader thread does with the request
    assert watcher.refused == [(str(registry_dir / "v0099"), "not_found")]
    refusals = watcher.metrics.registry.get_sample_value("finsentry_model_swap_refusals_total", {"reason": "not_found"})
    assert refusals == 1
