"""Fixtures of the ingest tests: a loaded Scorer and a broker per test (for modules with several broker tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def scorer(model_dir: Path):
    """The model artifact loaded once (ONNX Runtime CPU session)."""
    from finsentry.model import Scorer

    return Scorer.load(model_dir)


@pytest.fixture
def fresh_broker() -> Iterator:
    """An embedded Tansu broker of its own for one test (empty topics, no committed offsets)."""
    from finsentry.ingest.broker import EmbeddedBroker

    with EmbeddedBroker(port=0) as b:
        yield b
