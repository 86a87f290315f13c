"""Filesystem locations of the repository's data and the shipped model artifact."""

from __future__ import annotations

from pathlib import Path

COMMON_DIR = Path(__file__).resolve().parent
"""The ``common/`` folder (``finsentry.common``)."""

REPO_ROOT = COMMON_DIR.parent
"""Repository root (the package is installed editable from a clone)."""

DATA_DIR = REPO_ROOT / "data"
"""Committed datasets and split files."""

SPLITS_DIR = DATA_DIR / "splits"
"""Fixed split CSVs written by ``finsentry.model.splits``."""

SHIPPED_MODEL_DIR = REPO_ROOT / "model" / "artifacts" / "current"
"""The shipped CPU INT8 model artifact (``model.onnx``, ``tokenizer.json``, ``labels.json``, card)."""
