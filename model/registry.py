"""The model registry: a folder of versioned artifacts and a ``current`` pointer.

Layout::

    <registry_dir>/v0001/            an artifact folder (model.onnx, tokenizer.json, labels.json, card.json, ...)
    <registry_dir>/v0001/registry.json   status of that version (imported, candidate, passed, rejected) and notes
    <registry_dir>/current -> v0002  the served version: a relative symlink
    <registry_dir>/history.jsonl     every promote / rollback, append-only
    <registry_dir>/.retrain.lock     held (flock) while a retrain runs

The pointer is switched atomically: a new symlink is written under a temporary name and renamed over
``current`` (``rename(2)`` replaces it in one step), so a reader sees either the old or the new version,
never a missing or half-written pointer. Scorers can point ``model.path`` at ``<registry_dir>/current``.

A version number is claimed by ``mkdir`` (atomic), so two writers never get the same one. Versions are never
deleted by this module: a rejected challenger stays for inspection.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION_RE = re.compile(r"^v(\d{4,})$")
"""Version folder names: ``v`` + at least four digits."""

CURRENT = "current"
HISTORY = "history.jsonl"
STATUS_FILE = "registry.json"

PROMOTABLE = frozenset({"imported", "passed"})
"""Statuses :meth:`Registry.promote` accepts without ``force``."""


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, nothing to roll back to, ...); the message says why."""


class RegistryBusy(RegistryError):
    """Another process holds the retrain lock."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version folder: ``name`` (``v0002``), ``path``, ``model_version`` (from labels.json), ``status`` and the
    rest of ``registry.json`` in ``info``."""

    name: str
    path: Path
    model_version: str | None
    status: str
    info: dict[str, Any]

    @property
    def number(self) -> int:
        """The integer of the name (``v0002`` -> 2)."""
        return int(self.name[1:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


class Registry:
    """The registry under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ reading

    def version(self, name: str) -> ModelVersion:
        """The version folder ``name``.

        Raises:
            RegistryError: no such version.
        """
        path = self.root / name
        if not VERSION_RE.match(name) or not path.is_dir():
            known = ", ".join(v.name for v in self.versions()) or "none"
            raise RegistryError(f"no version {name!r} in {self.root} (known: {known})")
        info: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((path / STATUS_FILE).read_text())
        model_version = None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            model_version = json.loads((path / "labels.json").read_text()).get("model_version")
        return ModelVersion(name, path, model_version, str(info.get("status", "incomplete")), info)

    def versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        if not self.root.is_dir():
            return []
        names = sorted((p.name for p in self.root.iterdir() if p.is_dir() and VERSION_RE.match(p.name)), key=_num)
        return [self.version(n) for n in names]

    def current(self) -> ModelVersion | None:
        """The version ``current`` points at, or None if there is no pointer yet."""
        link = self.root / CURRENT
        if not link.is_symlink():
            return None
        return self.version(os.readlink(link))

    def history(self) -> list[dict[str, Any]]:
        """Promote / rollback entries, oldest first (``{"at", "action", "version", "previous", "model_version"}``)."""
        path = self.root / HISTORY
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ------------------------------------------------------------------ writing

    def claim_version(self) -> Path:
        """Create the next version folder (``mkdir`` is atomic, so concurrent callers get distinct ones)."""
        self.root.mkdir(parents=True, exist_ok=True)
        n = max((v.number for v in self.versions()), default=0) + 1
        while True:
            path = self.root / f"v{n:04d}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                n += 1

    def set_status(self, name: str, status: str, **info: Any) -> ModelVersion:
        """Write ``registry.json`` of version ``name`` (status + ``info`` merged over what is there), atomically."""
        version = self.version(name)
        data = dict(version.info) | info | {"version": name, "status": status, "updated_at": _now()}
        data.setdefault("created_at", data["updated_at"])
        _write_json_atomic(version.path / STATUS_FILE, data)
        return self.version(name)

    def add(self, artifact_dir: Path, status: str = "imported", **info: Any) -> ModelVersion:
        """Copy an artifact folder into a new version (real copies: a later rebuild of the source folder, which
        rewrites its files in place, must not change a registered version).

        Raises:
            RegistryError: ``artifact_dir`` has no ``model.onnx`` or ``labels.json``.
        """
        artifact_dir = Path(artifact_dir)
        missing = [f for f in ("model.onnx", "labels.json") if not (artifact_dir / f).is_file()]
        if missing:
            raise RegistryError(f"{artifact_dir} is not a model artifact (missing {', '.join(missing)})")
        path = self.claim_version()
        for src in sorted(artifact_dir.iterdir()):
            if src.is_file() and not src.name.startswith("."):
                shutil.copy2(src, path / src.name)
        return self.set_status(path.name, status, source=str(artifact_dir.resolve()), **info)

    def promote(self, name: str, force: bool = False, action: str = "promote") -> dict[str, Any]:
        """Point ``current`` at version ``name``; returns the event ``{"action", "version", "model_version",
        "previous", "path", "at"}`` (also appended to ``history.jsonl``).

        Raises:
            RegistryError: unknown version, or its status is not promotable (``rejected``, ``candidate``) and
                ``force`` is False.
        """
        version = self.version(name)
        if version.status not in PROMOTABLE and not force:
            raise RegistryError(
                f"{name} has status {version.status!r}; only {sorted(PROMOTABLE)} are promoted without --force"
            )
        with self._lock(".registry.lock"):
            before = self.current()
            self._point_at(name)
            event = {
                "action": action,
                "version": name,
                "model_version": version.model_version,
                "previous": before.name if before else None,
                "path": str(version.path.resolve()),
                "at": _now(),
            }
            with (self.root / HISTORY).open("a") as f:
                f.write(json.dumps(event) + "\n")
        return event

    def rollback(self) -> dict[str, Any]:
        """Point ``current`` back at the version served before the current one (replaying ``history.jsonl``:
        a promote pushes, a rollback pops); returns the event (``action`` = ``rollback``).

        Raises:
            RegistryError: there is no earlier version to go back to.
        """
        stack: list[str] = []
        for entry in self.history():
            if entry["action"] == "rollback":
                if stack:
                    stack.pop()
            elif not stack or stack[-1] != entry["version"]:
                stack.append(entry["version"])
        current = self.current()
        if current is not None and (not stack or stack[-1] != current.name):
            stack.append(current.name)  # the pointer was moved by hand: trust it
        if len(stack) < 2:
            raise RegistryError("nothing to roll back to: only one version has been served")
        return self.promote(stack[-2], force=True, action="rollback")

    def _point_at(self, name: str) -> None:
        tmp = self.root / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        os.symlink(name, tmp)
        os.replace(tmp, self.root / CURRENT)

    @contextlib.contextmanager
    def _lock(self, name: str, wait: bool = True) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / name, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise RegistryBusy(f"another retrain holds {self.root / name} ({holder})") from exc
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} since {_now()}")
            f.flush()
            try:
                yield
            finally:
                f.truncate(0)
                fcntl.flock(f, fcntl.LOCK_UN)

    def retrain_lock(self) -> contextlib.AbstractContextManager[None]:
        """Context manager holding the retrain lock (``flock``, released when the process dies).

        Raises:
            RegistryBusy: another process holds it (the message gives its pid and start time).
        """
        return self._lock(".retrain.lock", wait=False)


def _num(name: str) -> int:
    return int(name[1:])


__all__ = ["CURRENT", "ModelVersion", "PROMOTABLE", "Registry", "RegistryBusy", "RegistryError"]
