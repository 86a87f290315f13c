"""Model registry: versions, atomic pointer switch, promote / rollback, statuses, the retrain lock, CLI verbs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.model.registry import CURRENT, Registry, RegistryBusy, RegistryError
from finsentry.model.verify import file_sha256

runner = CliRunner()


def fake_artifact(folder: Path, version: str) -> Path:
    """A folder with the four files a promotable version needs (the registry library never opens the model)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx bytes of " + version.encode())
    (folder / "labels.json").write_text(json.dumps({"model_version": version, "topic": [], "sentiment": []}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "card.json").write_text(json.dumps({"model_version": version}))
    return folder


@pytest.fixture
def registry(tmp_path) -> Registry:
    reg = Registry(tmp_path / "registry")
    for i in (1, 2, 3):
        reg.add(fake_artifact(tmp_path / f"a{i}", f"m{i}"), status="passed")
    return reg


@pytest.fixture
def loadable_registry(tmp_path, model_dir) -> Registry:
    """Three versions m1..m3 of the shipped model (the CLI opens a version with the scorer before promoting it);
    each card records the sha256 of its own labels.json, as ``finsentry model eval --write-card`` would."""
    src = tmp_path / "shipped"
    src.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy2(model_dir / name, src / name)
    labels = json.loads((model_dir / "labels.json").read_text())
    card = json.loads((model_dir / "card.json").read_text())
    reg = Registry(tmp_path / "registry")
    for i in (1, 2, 3):
        (src / "labels.json").write_text(json.dumps(labels | {"model_version": f"m{i}"}))
        hashes = card["artifact_files"] | {"labels.json": file_sha256(src / "labels.json")}
        (src / "card.json").write_text(json.dumps(card | {"artifact_files": hashes}))
        reg.add(src, status="passed")
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


def test_cli_list_promote_rollback(loadable_registry, monkeypatch):
    registry = loadable_registry
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


# ---------------------------------------------------------------------------------------------- damaged registries


def test_promote_refuses_a_version_without_its_artifact_files_even_with_force(registry):
    registry.promote("v0001")
    (registry.root / "v0002" / "model.onnx").unlink()
    (registry.root / "v0002" / "card.json").unlink()
    for force in (False, True):
        with pytest.raises(RegistryError) as err:
            registry.promote("v0002", force=force)
        assert str(err.value) == (
            f"v0002 cannot be promoted: {registry.root / 'v0002'} lacks model.onnx, card.json (a version needs "
            "model.onnx, tokenizer.json, labels.json, card.json; register a complete artifact folder instead)"
        )
    assert os.readlink(registry.root / CURRENT) == "v0001"
    assert registry.missing_files("v0002") == ["model.onnx", "card.json"] and registry.missing_files("v0001") == []


def test_cli_promote_refuses_a_version_that_does_not_load(loadable_registry, monkeypatch):
    registry = loadable_registry
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
    assert runner.invoke(app, ["model", "promote", "v0001", "--no-publish"]).exit_code == 0
    onnx = registry.root / "v0002" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    result = runner.invoke(app, ["model", "promote", "v0002", "--force", "--no-publish"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: v0002 does not load, so `current` was not moved: ")
    assert "model.onnx is not a loadable ONNX model" in result.output
    assert registry.current().name == "v0001"


@pytest.mark.parametrize(
    ("content", "what"),
    [("[1, 2]", "holds a list, not a JSON object"), ('"passed"', "holds a string, not a JSON object"),
     ("{garbage", "is not JSON (Expecting property name enclosed in double quotes)")],
)  # fmt: skip
def test_a_damaged_registry_json_is_named_by_list_and_promote(registry, monkeypatch, content, what):
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
    status = registry.root / "v0002" / "registry.json"
    status.write_text(content)
    problem = (
        f'{status} {what}; restore it (e.g. {{"version": "v0002", "status": "passed"}}) or move the '
        f"folder {registry.root / 'v0002'} out of the registry"
    )
    version = registry.version("v0002")
    assert (version.status, version.problem) == ("damaged", problem)
    listed = runner.invoke(app, ["model", "list", "--json"])
    assert listed.exit_code == 2 and isinstance(listed.exception, SystemExit)
    assert [(r["version"], r["status"]) for r in json.loads(listed.stdout)] == [
        ("v0001", "passed"),
        ("v0002", "damaged"),
        ("v0003", "passed"),
    ]
    assert listed.stderr.strip() == f"error: {problem}"
    promoted = runner.invoke(app, ["model", "promote", "v0002", "--force", "--no-publish"])
    assert promoted.exit_code == 2 and promoted.output.strip() == f"error: v0002 cannot be promoted: {problem}"
    assert registry.current() is None
    registry.set_status("v0002", "passed")  # the repair: a fresh registry.json
    assert registry.version("v0002").problem is None


@pytest.mark.parametrize("target", ["v0009", "/etc", "../../../etc", "v0003/../../x"])
def test_a_broken_current_pointer_is_reported_and_promote_repairs_it(registry, monkeypatch, target):
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
    os.symlink(target, registry.root / CURRENT)
    message = (
        f"{registry.root / CURRENT} points at {target!r}, which is not a version folder of {registry.root}; repair "
        "it with `finsentry model promote VERSION` (known versions: v0001, v0002, v0003)"
    )
    with pytest.raises(RegistryError) as err:
        registry.current()
    assert str(err.value) == message
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 2 and listed.stderr.strip() == f"error: {message}"
    assert "v0003" in listed.stdout and "*" not in listed.stdout
    rolled = runner.invoke(app, ["model", "rollback", "--no-publish"])
    assert rolled.exit_code == 2 and rolled.output.strip() == f"error: {message}"
    event = registry.promote("v0002")
    assert event["previous"] is None and registry.current().name == "v0002"


def test_a_directory_where_the_pointer_goes_is_refused_with_how_to_fix_it(registry, monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
    (registry.root / CURRENT).mkdir()
    link = registry.root / CURRENT
    message = (
        f"{link} is a directory, not the symlink the registry keeps there; move it away (mv {link} {link}.bak) "
        "and run `finsentry model promote VERSION`"
    )
    with pytest.raises(RegistryError) as err:
        registry.promote("v0001")
    assert str(err.value) == message
    assert link.is_dir() and not link.is_symlink() and not list(registry.root.glob(".current.*"))
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 2 and listed.stderr.strip() == f"error: {message}"
    promoted = runner.invoke(app, ["model", "promote", "v0001", "--no-publish"])
    assert promoted.exit_code == 2 and promoted.output.strip() == f"error: {message}"


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("GARBAGE", 'not JSON (Expecting value); fix or delete that line (each line is one {"action": '
                    '"promote"|"rollback", "version": "vNNNN", ...} object)'),
        ('{"version": "v0001"}', "expected an object with action promote|rollback and a version, got "
                                 "'{\"version\": \"v0001\"}'; fix or delete that line"),
        ("[1]", "expected an object with action promote|rollback and a version, got '[1]'; fix or delete that line"),
    ],
)  # fmt: skip
def test_a_bad_history_line_is_named_by_rollback(registry, monkeypatch, line, what):
    monkeypatch.setenv("FINSENTRY_MODEL__REGISTRY_DIR", str(registry.root))
    registry.promote("v0001")
    registry.promote("v0002")
    with (registry.root / "history.jsonl").open("a") as f:
        f.write(line + "\n")
    with pytest.raises(RegistryError) as err:
        registry.rollback()
    assert str(err.value) == f"{registry.root / 'history.jsonl'}:3: {what}"
    rolled = runner.invoke(app, ["model", "rollback", "--no-publish"])
    assert rolled.exit_code == 2 and rolled.output.strip() == f"error: {err.value}"
    assert registry.current().name == "v0002"
