"""Check the import layers of ``[tool.importlinter]`` in ``pyproject.toml`` (``lint-imports``, import-linter).

import-linter finds a package's modules by walking the one folder the package is imported from, and our rooms
live in other folders (``ingest/`` is ``finsentry.ingest``; ``[tool.setuptools.package-dir]``). So this script
copies every ``.py`` file into a temporary tree laid out by import name (``finsentry/ingest/...``), read from
``package-dir`` so that a new room is checked without editing this file, and runs ``lint-imports`` on it with
the repository's configuration. Module names and line numbers in its report are those of the real files.

Usage: ``.venv/bin/python scripts/lint_imports.py [lint-imports options]`` (exit status: lint-imports').
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def build_tree(dest: Path) -> None:
    """Copy the ``.py`` files of every package in ``package-dir`` to ``dest``, one folder per import name."""
    package_dir = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in package_dir.items():
        target = dest.joinpath(*name.split("."))
        for source in (REPO_ROOT / folder).rglob("*.py"):
            relative = source.relative_to(REPO_ROOT / folder)
            if "__pycache__" in relative.parts:
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / relative)


def main(argv: list[str]) -> int:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        print(f"{lint_imports} not found: install the dev extra (scripts/setup.sh dev)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="finsentry-layers-") as tmp:
        build_tree(Path(tmp))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        command = [str(lint_imports), "--no-cache", "--no-logo", *argv, str(REPO_ROOT / "pyproject.toml")]
        return subprocess.run(command, cwd=tmp, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
