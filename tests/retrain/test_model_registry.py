"""Model registry: versions, atomic pointer switch, promote / rollback, statuses, the retrain lock, CLI verbs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.model.registry import CURRENT, Registry, RegistryBusy, RegistryError

runner = CliRunner()


def fake_artifact(folder: Path, version: str) -> Path:
    """A folder with the two files the registry requires (the registry never opens the model)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx bytes of " + version.encode())
    (folder / "labels.json").write_text(json.dumps({"model_version": version, "topic": [], "sentiment": []}))
    return folder


@pytest.fixture
def registry(tmp_path) -> Registry:
    reg = Registry(tmp_path / "registry")
    for i in (1, 2, 3):
        reg.add(fake_artifact(tmp_path / f"a{i}", f"m{i}"), status="passed")
    return reg


def test_versions_are_numbered_and_copied(registry, tmp_path):
    assert [(v.name, v.model_version, v.status) for v in registry.versions()] == [
        ("v0001", "m1", "passed"),
        ("v0002", "m2", "passed"),
        ("v0003", "m3", "passed"),
    ]
    assert (registry.root / "v0002" / "model.onnx").read_bytes() == b"onnx bytes of m2"
    assert registry.current() is None
    with pytest.raises(RegistryError, match="not a model artifact"):
        registry.add(tmp_path)


def test_concurrent_claims_get_distinct_versions(tmp_path):
    reg = Registry(tmp_path / "r")
    claimed: list[str] = []
    threads = [threading.Thread(target=lambda: claimed.append(reg.claim_version().name)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(claimed) == [f"v{i:04d}" for i in range(1, 9)]


def test_promote_and_rollback_move_the_pointer(registry):
    events = [registry.promote(n) for n in ("v0001", "v0002", "v0003")]
    assert [(e["version"], e["previous"]) for e in events] == [("v0001", None), ("v0002", "v0001"), ("v0003", "v0002")]
    assert os.readlink(registry.root / CURRENT) == "v0003"
    assert (registry.root / CURRENT / "model.onnx").read_bytes() == b"onnx bytes of m3"
    back = registry.rollback()
    assert (back["action"], back["version"], back["previous"]) == ("rollback", "v0002", "v0003")
    assert registry.current().name == "v0002"
    assert registry.rollback()["version"] == "v0001"  # a second rollback goes further back, not forward
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert [e["action"] for e in registry.history()] == ["promote"] * 3 + ["rollback"] * 2


def test_rejected_versions_need_force(registry):
    registry.set_status("v0002", "rejected", gate={"decision": "reject"})
    with pytest.raises(RegistryError, match="has status 'rejected'"):
        registry.promote("v0002")
    assert registry.promote("v0002", force=True)["version"] == "v0002"
    with pytest.raises(RegistryError, match="no version 'v0009'"):
        registry.promote("v0009")


def test_pointer_switch_is_atomic_for_readers(registry):
    """A reader resolving `current` while 300 promotes run never finds it missing or pointing nowhere."""
    registry.promote("v0001")
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add((registry.root / CURRENT / "model.onnx").read_bytes().decode())
            except OSError as exc:  # FileNotFoundError if the pointer were ever absent
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(300):
        registry.promote(f"v000{1 + i % 3}")
    stop.set()
    t.join(10)
    assert errors == []
    assert seen <= {"onnx bytes of m1", "onnx bytes of m2", "onnx bytes of m3"} and len(seen) >= 2
    assert not list(registry.root.glob(".current.*"))


def test_retrain_lock_excludes_a_second_process(tmp_path):
    reg = Registry(tmp_path / "r")
    script = (
        "import sys\nfrom finsentry.model.registry import Registry, RegistryBusy\n"
        f"try:\n    Registry({str(reg.root)!r}).retrain_lock().__enter__()\n"
        "except RegistryBusy as e:\n    print(e); sys.exit(5)\n"
    )
    with reg.retrain_lock():
        with pytest.raises(RegistryBusy, match=f"pid {os.getpid()}"):
            reg.retrain_lock().__enter__()
        other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert other.returncode == 5 and "another retrain holds" in other.stdout
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert other.returncode == 0, other.stdout + other.stderr  # released when the holder leaves


def test_cli_list_promote_rollback(registry, monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
    registry.set_status("v0003", "rejected")
    result = runner.invoke(app, ["model", "promote", "v0001", "--no-publish"])
    assert result.exit_code == 0, result.output
    assert "current -> v0001 (m1), was None" in result.output
    assert runner.invoke(app, ["model", "promote", "v0002", "--no-publish"]).exit_code == 0
    result = runner.invoke(app, ["model", "promote", "v0003", "--no-publish"])
    assert result.exit_code == 2 and "has status 'rejected'" in result.output

    result = runner.invoke(app, ["model", "list", "--json"])
    rows = json.loads(result.output)
    assert [(r["version"], r["status"], r["current"]) for r in rows] == [
        ("v0001", "passed", False),
        ("v0002", "passed", True),
        ("v0003", "rejected", False),
    ]
    text = runner.invoke(app, ["model", "list"]).output
    assert "* v0002" in text

    result = runner.invoke(app, ["model", "rollback", "--no-publish"])
    assert result.exit_code == 0 and "current -> v0001 (m1), was v0002" in result.output
    assert registry.current().name == "v0001"


def test_cli_retrain_exits_5_while_another_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(tmp_path / "registry"))
    registry = Registry(tmp_path / "registry")
    with registry.retrain_lock():
        result = runner.invoke(app, ["model", "retrain", "--no-publish"])
    assert result.exit_code == 5
    assert f"another retrain holds {tmp_path / 'registry' / '.retrain.lock'} (pid {os.getpid()}" in result.output


def test_cli_retrain_exits_3_with_no_labels(tmp_path, monkeypatch):
    """An empty label store: the shipped model is imported as v0001 (the champion), then nothing to train on."""
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("FINSENTRY_MODEL__RETRAIN__LABELS_DIR", str(tmp_path / "labels"))
    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(fake_artifact(tmp_path / "shipped", "shipped-1")))
    result = runner.invoke(app, ["model", "retrain", "--no-publish"])
    assert result.exit_code == 3
    assert "nothing new to train on: 0 label(s)" in result.output
    registry = Registry(tmp_path / "registry")
    assert registry.current().name == "v0001" and registry.current().model_version == "shipped-1"
