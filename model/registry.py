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
from collections.abc import Callable, Iterator
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

DAMAGED = "damaged"
"""Status of a version whose ``registry.json`` is not a JSON object (:attr:`ModelVersion.problem` says why);
never promoted, not even with ``force``."""

ARTIFACT_FILES = ("model.onnx", "tokenizer.json", "labels.json", "card.json")
"""Files a version needs to be promoted (``force`` does not waive them)."""


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
    problem: str | None = None
    """Why the version's ``registry.json`` cannot be used (status :data:`DAMAGED`), naming the file and the fix."""

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
        problem = None
        status_file = path / STATUS_FILE
        try:
            raw = status_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raw = None  # claimed, not yet written: incomplete
        except OSError as exc:
            raw, problem = None, f"{status_file} cannot be read ({exc.strerror or exc})"
        if raw is not None:
            try:
                loaded = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                loaded, problem = None, f"{status_file} is not JSON ({getattr(exc, 'msg', exc)})"
            if isinstance(loaded, dict):
                info = loaded
            elif problem is None:
                problem = f"{status_file} holds {_kind(loaded)}, not a JSON object"
        if problem is not None:
            problem += (
                f'; restore it (e.g. {{"version": "{name}", "status": "passed"}}) or move the folder {path} out '
                "of the registry"
            )
        model_version = None
        with contextlib.suppress(OSError, ValueError, AttributeError, RecursionError):
            found = json.loads((path / "labels.json").read_text()).get("model_version")
            model_version = found if isinstance(found, str) else None
        status = DAMAGED if problem is not None else str(info.get("status", "incomplete"))
        return ModelVersion(name, path, model_version, status, info, problem)

    def missing_files(self, name: str) -> list[str]:
        """The :data:`ARTIFACT_FILES` version ``name`` lacks (empty if it has them all).

        Raises:
            RegistryError: no such version.
        """
        path = self.version(name).path
        return [f for f in ARTIFACT_FILES if not (path / f).is_file()]

    def versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        if not self.root.is_dir():
            return []
        names = sorted((p.name for p in self.root.iterdir() if p.is_dir() and VERSION_RE.match(p.name)), key=_num)
        return [self.version(n) for n in names]

    def current(self) -> ModelVersion | None:
        """The version ``current`` points at, or None if there is no pointer yet.

        Raises:
            RegistryError: ``current`` is not a symlink to a version folder of this registry (a directory or file
                in its place, a dangling link, an absolute path, a path leaving the registry); the message names
                it and how to repair it.
        """
        link = self.root / CURRENT
        if not link.is_symlink():
            if link.exists():
                kind = "a directory" if link.is_dir() else "a file"
                raise RegistryError(
                    f"{link} is {kind}, not the symlink the registry keeps there; move it away (mv {link} "
                    f"{link}.bak) and run `finsentry model promote VERSION`"
                )
            return None
        target = os.readlink(link)
        if not VERSION_RE.match(target) or not (self.root / target).is_dir():
            known = ", ".join(v.name for v in self.versions()) or "none"
            raise RegistryError(
                f"{link} points at {target!r}, which is not a version folder of {self.root}; repair it with "
                f"`finsentry model promote VERSION` (known versions: {known})"
            )
        return self.version(target)

    def history(self) -> list[dict[str, Any]]:
        """Promote / rollback entries, oldest first (``{"at", "action", "version", "previous", "model_version"}``).

        Raises:
            RegistryError: a line of ``history.jsonl`` is not a JSON object with text ``action`` and ``version``
                (the message names the file and line).
        """
        path = self.root / HISTORY
        if not path.is_file():
            return []
        entries = []
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise RegistryError(
                    f"{path}:{n}: not JSON ({getattr(exc, 'msg', exc)}); fix or delete that line (each line is one "
                    '{"action": "promote"|"rollback", "version": "vNNNN", ...} object)'
                ) from None
            if not (
                isinstance(entry, dict)
                and entry.get("action") in ("promote", "rollback")
                and isinstance(entry.get("version"), str)
            ):
                raise RegistryError(
                    f"{path}:{n}: expected an object with action promote|rollback and a version, got "
                    f"{line.strip()[:80]!r}; fix or delete that line"
                )
            entries.append(entry)
        return entries

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

    def promote(
        self,
        name: str,
        force: bool = False,
        action: str = "promote",
        check: Callable[[Path], None] | None = None,
    ) -> dict[str, Any]:
        """Point ``current`` at version ``name``; returns the event ``{"action", "version", "model_version",
        "previous", "path", "at"}`` (also appended to ``history.jsonl``).

        ``check`` (e.g. loading the model) is called with the version folder before the pointer moves; an
        exception from it leaves the pointer where it was. A broken pointer (dangling, outside the registry) is
        replaced; ``previous`` is then None.

        Raises:
            RegistryError: unknown version; its ``registry.json`` is damaged; it lacks one of
                :data:`ARTIFACT_FILES` (``force`` does not waive that); its status is not promotable
                (``rejected``, ``candidate``) and ``force`` is False; or ``current`` is a directory or file.
        """
        version = self.version(name)
        if version.problem is not None:
            raise RegistryError(f"{name} cannot be promoted: {version.problem}")
        missing = self.missing_files(name)
        if missing:
            raise RegistryError(
                f"{name} cannot be promoted: {version.path} lacks {', '.join(missing)} (a version needs "
                f"{', '.join(ARTIFACT_FILES)}; register a complete artifact folder instead)"
            )
        if version.status not in PROMOTABLE and not force:
            raise RegistryError(
                f"{name} has status {version.status!r}; only {sorted(PROMOTABLE)} are promoted without --force"
            )
        link = self.root / CURRENT
        if link.exists() and not link.is_symlink():
            self.current()  # raises: a directory or file stands where the pointer goes
        if check is not None:
            check(version.path)
        with self._lock(".registry.lock"):
            if link.exists() and not link.is_symlink():
                self.current()
            try:
                before = self.current()
            except RegistryError:
                before = None  # a broken pointer: this promote repairs it
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

    def rollback(self, check: Callable[[Path], None] | None = None) -> dict[str, Any]:
        """Point ``current`` back at the version served before the current one (replaying ``history.jsonl``:
        a promote pushes, a rollback pops); returns the event (``action`` = ``rollback``). ``check``: as for
        :meth:`promote`.

        Raises:
            RegistryError: there is no earlier version to go back to, ``history.jsonl`` or the pointer is damaged,
                or the earlier version cannot be promoted (see :meth:`promote`).
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
        return self.promote(stack[-2], force=True, action="rollback", check=check)

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


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


__all__ = [
    "ARTIFACT_FILES",
    "CURRENT",
    "DAMAGED",
    "ModelVersion",
    "PROMOTABLE",
    "Registry",
    "RegistryBusy",
    "RegistryError",
]
