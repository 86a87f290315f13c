"""Shared fixtures: a real embedded Kafka-protocol broker and the model artifact."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsentry.paths import SHIPPED_MODEL_DIR


@pytest.fixture(scope="module")
def broker() -> Iterator:
    """A fresh embedded Tansu broker on a free 127.0.0.1 port with finsentry's topics, one per test module."""
    from finsentry.ingest.broker import EmbeddedBroker

    with EmbeddedBroker(port=0) as b:
        yield b


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The shipped model artifact folder (override with ``FINSENTRY_TEST_MODEL_DIR``)."""
    path = Path(os.environ.get("FINSENTRY_TEST_MODEL_DIR") or SHIPPED_MODEL_DIR)
    if not (path / "model.onnx").is_file():
        raise FileNotFoundError(f"no model artifact at {path}: the shipped model must be committed")
    return path
