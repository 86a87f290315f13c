"""The import layers of pyproject.toml's [tool.importlinter] hold (scripts/lint_imports.py; also run by .ci/run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_import_layers_are_kept():
    if not (Path(sys.executable).parent / "lint-imports").exists():
        pytest.skip("import-linter (dev extra) is not installed")
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "lint_imports.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
